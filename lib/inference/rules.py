"""The verdicts a claim can get and the rule that gives each, in words: what the report's pages print (light: no
numerics, so that the index builds without loading scipy). lib.inference.verdicts applies the rule."""

VERDICTS = ("supported", "not supported", "negligible", "explained by dimension alone", "not testable",
            "inconclusive")
RULES = (
    ("supported", "the test against the margin is significant after Holm (difference: the effect lies beyond the "
                  "margin on the predicted side; equivalence: within ±margin)"),
    ("negligible", "not supported, the test of no effect significant after Holm, and the whole 95% interval inside "
                   "the negligible band: real, too small to matter"),
    ("not supported", "the 95% interval lies entirely on the wrong side of no effect; or, not significant, inside the "
                      "band (a precise null) where the control is not a random subspace; equivalence: the interval "
                      "lies entirely outside the band"),
    ("explained by dimension alone", "a precise null (not significant, interval inside the band) against a random "
                                     "subspace of the same dimension"),
    ("not testable", "more than the allowed share of images is undecided (failed attacks whose bounds straddle no "
                     "effect), or the control's attacks mostly fail at this budget"),
    ("inconclusive", "anything else: too few images, an interval straddling the margin, or a check that says the "
                     "verdict could change (failed attacks bounded as far as they may reach move an equivalence out of "
                     "its margin; censoring differs between the compared splits; the longer attack lowers a defence's "
                     "robust accuracy by more than half the margin)"),
)
