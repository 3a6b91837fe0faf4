"""The verdicts a claim can get and the rule that gives each, in words: what the report's pages print (light: no
numerics, so that the index builds without loading scipy). lib.inference.verdicts applies the rule."""

VERDICTS = ("supported", "contradicted", "precise null", "negligible", "explained by dimension alone", "not testable",
            "inconclusive")
RULES = (
    ("supported", "the test against the margin is significant after Holm (difference: the effect lies beyond the "
                  "margin on the predicted side; equivalence: within ±margin), whichever side the failed attacks lie"),
    ("contradicted", "the effect points the other way: the whole 95% interval lies on the wrong side of no effect "
                     "(equivalence: entirely outside the band)"),
    ("precise null", "not significant and the whole 95% interval inside the negligible band, against a control that is "
                     "not a random subspace: no effect, measured precisely enough to say so"),
    ("negligible", "the test of no effect significant after Holm, and the whole 95% interval inside the negligible "
                   "band: real, too small to matter"),
    ("explained by dimension alone", "a precise null (not significant, interval inside the band) against a random "
                                     "subspace of the same dimension"),
    ("not testable", "more than the allowed share of images is undecided (failed attacks whose bounds straddle no "
                     "effect), or the control's attacks mostly fail at this budget"),
    ("inconclusive", "anything else: too few images, an interval straddling the margin, or a check that says the "
                     "verdict could change (failed attacks counted for the claim would make it supported; failed "
                     "attacks bounded as far as they may reach move an equivalence out of its margin; censoring "
                     "differs between the compared splits; the longer attack lowers a defence's robust accuracy by "
                     "more than half the margin)"),
)
