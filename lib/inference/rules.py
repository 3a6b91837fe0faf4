"""The verdicts a claim can get and the rule that gives each, in words: what the report's pages print (light: no
numerics, so that the index builds without loading scipy). lib.inference.verdicts applies the rule."""

from enum import StrEnum


class Verdict(StrEnum):
    """The verdicts a row can get (a str: pages, tables and JSON show the words themselves)."""

    SUPPORTED = "supported"
    CONTRADICTED = "contradicted"
    PRECISE_NULL = "precise null"
    NEGLIGIBLE = "negligible"
    DIMENSION = "explained by dimension alone"
    NOT_TESTABLE = "not testable"
    INCONCLUSIVE = "inconclusive"


VERDICTS = tuple(Verdict)
# One colour per verdict, for every figure and table that shows verdicts.
COLOURS = {Verdict.SUPPORTED: "#2a9d3a", Verdict.CONTRADICTED: "#c0392b", Verdict.PRECISE_NULL: "#8e2c6b",
           Verdict.NEGLIGIBLE: "#7a5cb8", Verdict.DIMENSION: "#e69500", Verdict.NOT_TESTABLE: "#4a90c2",
           Verdict.INCONCLUSIVE: "#888888"}
RULES = (
    (Verdict.SUPPORTED, "the test against the margin is significant after Holm (difference: the effect lies beyond "
                        "the margin on the predicted side; equivalence: within ±margin), whichever side the failed "
                        "attacks lie"),
    (Verdict.CONTRADICTED, "the effect points the other way: the whole 95% interval lies on the wrong side of no "
                           "effect (equivalence: entirely outside the band)"),
    (Verdict.PRECISE_NULL, "not significant and the whole 95% interval inside the negligible band, against a "
                           "control that is not a random subspace: no effect, measured precisely enough to say so"),
    (Verdict.NEGLIGIBLE, "the test of no effect significant after Holm, and the whole 95% interval inside the "
                         "negligible band: real, too small to matter"),
    (Verdict.DIMENSION, "a precise null (not significant, interval inside the band) against a random subspace of "
                        "the same dimension"),
    (Verdict.NOT_TESTABLE, "more than the allowed share of images is undecided (failed attacks whose bounds "
                           "straddle no effect), or the control's attacks mostly fail at this budget"),
    (Verdict.INCONCLUSIVE, "anything else: too few images, an interval straddling the margin, or a check that says "
                           "the verdict could change (failed attacks counted for the claim would make it supported;"
                           " failed attacks bounded as far as they may reach move an equivalence out of its margin;"
                           " censoring differs between the compared splits; the longer attack lowers a defence's "
                           "robust accuracy by more than half the margin)"),
)
