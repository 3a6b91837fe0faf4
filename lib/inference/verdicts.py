"""The report's verdicts: one typed row per claim, one rule, one judge.

A notebook's claims each become a ``Row`` (``location_row`` builds the common kind from per-image values);
``judge`` takes a notebook's rows as one Holm family and returns the verdict table. Every verdict of the
report goes through ``verdict``; its vocabulary and rules are stated there and in ``RULES`` (shown on the
pages beside the tables).

Two tests per row. ``p`` tests "no effect" (effect = 0); ``p_margin`` tests the hypothesis whose rejection
makes the row *supported*: for a difference, H0 "the effect is at most the margin" in the predicted direction;
for an equivalence, H0 "the effect lies outside +-margin" (two one-sided tests). Each is Holm-adjusted over
the family, so the family-wise rate of a false "supported" is at most alpha even where every effect sits
exactly at its margin (an interval at 95% beside a Holm-adjusted p would not be).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Callable, Literal, get_args

import numpy as np
import pandas as pd

from lib.inference import power, stats
from lib.inference.rules import RULES, VERDICTS, Verdict  # noqa: F401  (the verdicts and the rule in words)

RowKind = Literal["difference", "equivalence"]  # what a row claims: an effect beyond the margin, or within it
Scale = Literal["ratio", "difference", "points"]  # effects on the log scale shown as ratios; differences; proportions
Predicted = Literal["greater", "less"]  # the side of no effect the claim predicts
ROW_KINDS, SCALES, PREDICTED = get_args(RowKind), get_args(Scale), get_args(Predicted)



def verdict(row: "Row", p_holm: float, p_margin_holm: float, alpha: float = stats.ALPHA,
            robust_to_failures: bool | None = None) -> Verdict:
    """The verdict of one row (``RULES`` in words); first match wins.

    p_holm: Holm-adjusted p of "no effect" (difference rows); p_margin_holm: Holm-adjusted p of the test
    against the margin; the row's [ci_low, ci_high]: the effect's 95% interval on the additive scale (log ratio or
    difference); the negligible band is [-margin, margin]. robust_to_failures: the row's own, unless the judge found
    that undecided images counted for the claim would make it supported.

    | kind        | condition                                                     | verdict          |
    |-------------|---------------------------------------------------------------|------------------|
    | any         | the row is not testable                                       | not testable     |
    | any         | no p or no interval                                           | inconclusive     |
    | any         | not robust to failures (failures or an unconverged attack     |                  |
    |             | could change it; judge: undecided images counted for the      |                  |
    |             | claim would make it supported)                                | inconclusive     |
    | any         | p_margin_holm < alpha                                         | supported        |
    | difference  | interval entirely on the wrong side of 0                      | contradicted     |
    | difference  | interval inside the band, p_holm < alpha                      | negligible       |
    | difference  | interval inside the band, p_holm >= alpha                     | the row's null_verdict |
    | equivalence | interval entirely outside the band                            | contradicted     |
    | any         | otherwise                                                     | inconclusive     |
    """
    lo, hi, margin = row.ci_low, row.ci_high, row.margin
    robust = row.robust_to_failures if robust_to_failures is None else robust_to_failures
    if not row.testable:
        return Verdict.NOT_TESTABLE
    if np.isnan(p_margin_holm) or np.isnan(lo) or np.isnan(hi) or (row.kind == "difference" and np.isnan(p_holm)):
        return Verdict.INCONCLUSIVE
    if not robust:
        return Verdict.INCONCLUSIVE
    if p_margin_holm < alpha:
        return Verdict.SUPPORTED
    inside = -margin <= lo and hi <= margin
    if row.kind == "difference":
        s = 1 if row.predicted == "greater" else -1
        if max(s * lo, s * hi) < 0:
            return Verdict.CONTRADICTED
        if inside:
            return Verdict.NEGLIGIBLE if p_holm < alpha else row.null_verdict
        return Verdict.INCONCLUSIVE
    return Verdict.CONTRADICTED if (lo > margin or hi < -margin) else Verdict.INCONCLUSIVE


@dataclass(frozen=True)
class Row:
    """One claim on one data set and split: what is claimed, the effect and its interval (additive scale), the
    two tests, and what the rule needs. ``power_at(alpha)`` gives the stats.Power of the test against the
    margin at a level (the judge asks at Holm's first-step level); ``notes`` holds display-only columns."""
    claim_id: str
    short: str
    claim: str
    dataset: str
    split: str
    kind: RowKind
    scale: Scale
    margin: float
    effect: float
    ci_low: float
    ci_high: float
    p: float
    p_margin: float
    n: int
    statistic: str
    predicted: Predicted = "greater"
    ci_level: float = 0.95
    clip: bool | None = None   # attack rows: whether x + delta was clipped to [0, 1]
    n_censored: int = 0
    n_undecided: int = 0
    testable: bool = True
    robust_to_failures: bool = True
    null_verdict: Verdict = Verdict.PRECISE_NULL  # a precise null's name: against a random subspace, DIMENSION
    discriminating: bool = False
    p_margin_best: float = float("nan")  # p_margin with undecided images counted for the claim (the best case)
    dmm_effect: float = float("nan")     # the effect (additive scale) at which ``power_at`` gives the power
    notes: dict = field(default_factory=dict)
    power_at: Callable | None = field(default=None, compare=False, repr=False)
    per_image: tuple | None = field(default=None, compare=False, repr=False)  # (low, high) Series, images as index

    def __post_init__(self):
        stats.check_choice(self.kind, ROW_KINDS, "kind")
        stats.check_choice(self.scale, SCALES, "scale")
        stats.check_choice(self.predicted, PREDICTED, "predicted")
        stats.check_choice(self.null_verdict, (Verdict.PRECISE_NULL, Verdict.DIMENSION), "null_verdict")
        if self.margin < 0:
            raise ValueError(f"{self.claim_id}: margin must be >= 0; got {self.margin}")


# A verdict table's columns, in order: what `judge` returns first and what every notebook's results keep (`results`),
# then whatever display columns its rows carry in Row.notes (the control subspace, the failed attacks, tau², ...).
COLUMNS = ["family", "claim_id", "short", "claim", "dataset", "split", "clip", "statistic", "effect_text", "effect",
           "ci_low", "ci_high", "margin_text", "p", "p_holm", "p_margin", "p_margin_holm", "n", "n_censored",
           "n_undecided", "power", "n_needed", "verdict", "discriminating"]


def judge(rows: list[Row], family: str, alpha: float = stats.ALPHA) -> pd.DataFrame:
    """The verdict table of one Holm family: Holm over the testable rows' p and, separately, p_margin; power of
    each row's test against the margin at alpha / m (Holm's first step, so a lower bound of the power the
    procedure has; m the family's testable rows) with the N it would need; ``verdict``; ratios shown as ratios."""
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    skip = ("notes", "power_at", "per_image")
    t = pd.DataFrame([{f.name: getattr(r, f.name) for f in fields(r) if f.name not in skip} | r.notes for r in rows])
    testable = t["testable"].astype(bool)
    t["p_holm"] = stats.holm(t["p"].where(testable))
    t["p_margin_holm"] = stats.holm(t["p_margin"].where(testable))
    # the best case (undecided images for the claim) adjusted as the family's worst case is: at the same step
    best = t["p_margin_best"].where(testable & t["p_margin_best"].notna(), t["p_margin"].where(testable))
    t["p_margin_best_holm"] = stats.holm(best)
    m = max(1, int((testable & t["p_margin"].notna()).sum()))
    powers = [r.power_at(alpha / m) if r.power_at and r.testable else None for r in rows]
    t["power"] = [p.power if p else np.nan for p in powers]
    t["n_needed"] = [p.n_needed if p else np.nan for p in powers]
    t["verdict"] = [verdict(r, ph, pm, alpha, r.robust_to_failures and not (pm >= alpha and pb < alpha))
                    for r, ph, pm, pb in zip(rows, t["p_holm"], t["p_margin_holm"], t["p_margin_best_holm"])]
    ratio = t["scale"] == "ratio"
    for col in ("effect", "ci_low", "ci_high"):
        t[col] = t[col].astype(float)
        t.loc[ratio, col] = np.exp(t.loc[ratio, col])
    t["effect_text"] = [effect_text(r) for r in t.to_dict("records")]
    t["margin_text"] = [margin_text(r["scale"], r["margin"]) for r in t.to_dict("records")]
    t["family"] = family
    return t[COLUMNS + [c for c in t.columns if c not in COLUMNS]]


# What `judge` adds for the rule's own use: not kept in a notebook's results.
WORKING_COLUMNS = ("kind", "scale", "predicted", "ci_level", "testable", "robust_to_failures", "null_verdict",
                   "p_margin_best", "p_margin_best_holm", "dmm_effect", "power_at", "per_image")


def results(table: pd.DataFrame) -> list[dict]:
    """A verdict table as a notebook's results keep it (results/<notebook>.json, which the index reads): COLUMNS, then
    the display columns its rows carry (Row.notes), one dict per row."""
    if not len(table):
        return []
    extra = [c for c in table.columns if c not in COLUMNS and c not in WORKING_COLUMNS]
    return table[[c for c in COLUMNS if c in table] + extra].to_dict(orient="records")


def margin_text(scale: str, margin: float) -> str:
    """The negligible band in the row's own units."""
    if scale == "ratio":
        return f"×/÷ {np.exp(margin):.3g}"
    if scale == "points":
        return f"± {100 * margin:.3g} points"
    return f"± {margin:.3g}"


def effect_text(r: dict) -> str:
    """The effect with its interval, in the row's units (ratios as ratios, proportions as points)."""
    lvl = f"{r['ci_level']:.0%} CI"
    if r["scale"] == "ratio" and r["effect"] in (0.0, np.inf):  # the median is a censored (one-sided) value
        bound = f" [{r['ci_low']:.3g}, {r['ci_high']:.3g}]" if pd.notna(r["ci_high"]) else ""
        return f"{'→ 0' if r['effect'] == 0 else '→ ∞'}{bound} (most images censored: the median is a bound)"
    fmt = {"ratio": lambda v: f"{v:.3g}×", "difference": lambda v: f"{v:+.3g}",
           "points": lambda v: f"{100 * v:+.0f} points"}[r["scale"]]
    if any(pd.isna(r[c]) for c in ("effect", "ci_low", "ci_high")):
        return f"{'–' if pd.isna(r['effect']) else fmt(r['effect'])} (too few images for an interval)"
    bounds = {"ratio": lambda v: f"{v:.3g}", "difference": lambda v: f"{v:+.3g}",
              "points": lambda v: f"{100 * v:+.0f}"}[r["scale"]]
    prefix = "Δ " if r["scale"] == "difference" else ""
    return f"{prefix}{fmt(r['effect'])} [{bounds(r['ci_low'])}, {bounds(r['ci_high'])}] ({lvl})"


# ---------------------------------------------------------------- the common row: a location on per-image values

def location_test(low, high, predicted: str, margin: float, dmm_effect: float | None = None) -> dict:
    """The statistics of a "difference" row on per-image values (intervals where censored; see lib.inference.stats),
    all about one parameter, the median: one-sided exact sign tests toward ``predicted`` of no effect (p) and of the
    margin (p_margin), the median with its distribution-free 95% interval (order statistics), and the power of the
    margin test as a function of alpha.

    Why the sign test and not Wilcoxon's signed-rank test: the signed-rank test is about the pseudo-median (the
    median of the pairwise means), which differs from the median wherever the per-image values are skewed (they are:
    log ratios of shares and of norms have long tails), so a median shown at the margin beside a signed-rank p was
    called supported far more often than alpha (tests/test_stats.py simulates it).

    An undecided image (censored, its interval contains the null) counts against the claim, the worst case, so the
    test stays valid; ``p_margin_best`` counts it for the claim (the best case): where the two disagree the failed
    attacks decide the row (lib.inference.verdicts.judge then says inconclusive).

    Power: of the margin test at this N, where the median per-image effect is ``dmm_effect`` (what DMM predicts, on
    the additive scale with its sign; None: twice the margin on the predicted side), the values' observed shape kept
    (shifted so that their median sits there)."""
    low, high = np.asarray(low, float), np.asarray(high, float)
    keep = ~(np.isnan(low) | np.isnan(high))
    low, high = low[keep], high[keep]
    s = 1 if predicted == "greater" else -1
    med, lo, hi = stats.median_ci(low, 0.95, high)
    undecided = int(((low <= 0) & (high >= 0) & (low < high)).sum())
    up, down, und, p = stats.sign_test(low, predicted, high)
    p_margin = stats.sign_test(low, predicted, high, null=s * margin)[3]
    p_margin_best = stats.sign_test(high if s > 0 else low, predicted, null=s * margin)[3]
    statistic = (f"sign test of the median, one-sided ({predicted}): {up} above, {down} below"
                 + (f", {und} undecided (failed attacks; counted against the claim)" if und else ""))
    target = 2 * s * margin if dmm_effect is None else float(dmm_effect)
    shift = target - med if np.isfinite(med) else np.nan
    power_at = lambda a: power.power_sign(low + shift, high + shift, s * margin, predicted, a)
    return {"effect": med, "ci_low": lo, "ci_high": hi, "p": p, "p_margin": p_margin, "p_margin_best": p_margin_best,
            "n": len(low), "n_censored": int((low < high).sum()), "n_undecided": undecided, "statistic": statistic,
            "predicted": predicted, "margin": margin, "kind": "difference", "power_at": power_at,
            "dmm_effect": target}


def location_row(claim_id: str, short: str, claim: str, dataset: str, split: str, low, high=None, *,
                 predicted: str = "greater", margin: float = float(np.log(1.1)), scale: str = "ratio",
                 dmm_effect: float | None = None, max_undecided: float = 0.5, **more) -> Row:
    """A "difference" Row from per-image values (``high`` for censored intervals; pandas Series indexed by image keep
    their values on the row, ``per_image``, for pooling over networks that share the images). More than
    ``max_undecided`` of the images undecided makes it not testable: no test of their sign could then decide."""
    high = low if high is None else high
    per_image = (low, high) if isinstance(low, pd.Series) and isinstance(high, pd.Series) else None
    fields = location_test(low, high, predicted, margin, dmm_effect)
    testable = more.pop("testable", True) and fields["n_undecided"] <= max_undecided * max(1, fields["n"])
    return Row(claim_id=claim_id, short=short, claim=claim, dataset=dataset, split=split, scale=scale,
               testable=testable, per_image=per_image, **fields, **more)


def rules_markdown(family: str, margins: str = "") -> str:
    """The rule in words for a page that shows verdicts: the family, the margins, every verdict's condition."""
    head = (f"**How these verdicts are reached.** Holm family *{family}*: every row's p-values are adjusted over "
            f"this family only. {margins + ' ' if margins else ''}*p (margin, Holm)* tests the hypothesis whose "
            "rejection makes a row *supported*; *power* is that test's at Holm's first-step level α/m (a lower "
            "bound) at the row's N, where the effect is the one DMM predicts (*dmm effect*; where the page states "
            "none, twice the margin), not at the observed effect.")
    return head + "\n\n" + "\n".join(f"* **{v}**: {why};" for v, why in RULES)
