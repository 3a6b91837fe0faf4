"""Notebook 07's claims about the Isometric-Autoencoder defence, as lib.inference.verdicts Rows in one Holm family.

Robust accuracy is judged on the worst case per image: an image is robust under a defence at a budget only if
no attack the notebook ran on that defence broke it there (transfer, adaptive PGD, the longer convergence run,
on- and off-manifold PGD). Differences of paired robust accuracies are tested against the margin with Tango's
score test, so "supported" means "more robust by more than the margin", Holm-adjusted. A row whose defences'
attack had not converged (the longer run moved robust accuracy by more than half the margin) is inconclusive.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from lib.inference import power, stats, verdicts

FAMILY = "07 · defence"
CLAIMS = {
    "07a": (
        "07a I-AE closer to isometry",
        "The I-AE's decoder is closer to an isometry than the plain autoencoder's "
        "(per-image spread mean|log σ| of J_D's singular values, plain − I-AE)",
    ),
    "07b": (
        "07b I-AE isometric within ±25%",
        "The I-AE's per-image spread mean|log σ| lies below log 1.25 by more "
        "than the negligible band (log 1.1), as every row's effect must clear its "
        "margin",
    ),
    "07c": (
        "07c I-AE stops off-manifold PGD",
        "The I-AE defence withstands off-manifold PGD better than on-manifold PGD (ε = {eps:g})",
    ),
    "07d": (
        "07d I-AE more robust than {other}",
        "The I-AE defence is more robust than {other} (worst case over every attack run, ε = {eps:g})",
    ),
}
DEFENCE_COLUMNS = ["defence", "attack", "eps", "image", "broken"]


def worst_case(records: pd.DataFrame, eps: float) -> pd.DataFrame:
    """Images (rows) x defences (columns): robust (True) unless some attack broke the image at this budget."""
    r = records[np.isclose(records["eps"].astype(float), eps)]
    return ~r.groupby(["image", "defence"])["broken"].any().unstack("defence").sort_index().astype(bool)


def not_converged(main: dict, strong: dict, margin: float) -> set:
    """Defences whose longer, restarted attack lowered robust accuracy by more than half the margin."""
    return {d for d in main if d in strong and main[d] - strong[d] > margin / 2}


def paired_row(cid, short, claim, dataset, ok_a, ok_b, margin, robust=True, images=None, **notes) -> verdicts.Row:
    """Robust accuracy under a minus under b on the same images, > margin: Agresti-Min 95% interval; one-sided
    tests of no difference (McNemar's exact mid-p where discordant pairs are few, else Tango's score test;
    stats.paired_proportion_test) and of the margin (Tango's score test); power of the latter. The per-image
    differences ok_a - ok_b (-1, 0, 1; their mean is the effect) stay on the row (Row.per_image, indexed by `images`,
    default 0, 1, ...) for pooling over training seeds that attack the same images (lib.inference.pooling)."""
    ok_a, ok_b = np.asarray(ok_a, bool), np.asarray(ok_b, bool)
    per_image = pd.Series(ok_a.astype(float) - ok_b.astype(float),
                          index=np.arange(len(ok_a)) if images is None else np.asarray(images))
    diff, lo, hi = stats.paired_difference_ci(ok_a, ok_b)
    _, p, test = stats.paired_proportion_test(ok_a, ok_b, 0.0)
    _, p_margin = stats.paired_proportion_score_test(ok_a, ok_b, margin)
    n10, n01 = int((ok_a & ~ok_b).sum()), int((~ok_a & ok_b).sum())
    return verdicts.Row(cid, short, claim, dataset, "test", kind="difference", scale="points", margin=margin,
                        effect=diff, ci_low=lo, ci_high=hi, p=p, p_margin=p_margin, n=len(ok_a),
                        statistic=f"{test} (no difference), Tango score test (margin), one-sided ({n10} images "
                                  f"robust only under the first, {n01} only under the second)",
                        robust_to_failures=robust, per_image=(per_image, per_image),
                        notes={"robust accuracies": f"{ok_a.mean():.0%} vs {ok_b.mean():.0%}", **notes},
                        power_at=lambda a: power.power_paired_proportions(ok_a, ok_b, margin, a))


def isometry_rows(dataset: str, spread_plain, spread_iae) -> list[verdicts.Row]:
    """07a (paired sign tests of plain − I-AE spread beyond log 1.1) and 07b (spread − log 1.25 below −log 1.1: a
    margin like every other row's, so that a spread just under log 1.25 is not called isometric). The spreads are
    per image, in one order of images (kept on the rows for pooling over seeds measured at the same images)."""
    iae_spread = pd.Series(np.asarray(spread_iae, float))
    diff = pd.Series(np.asarray(spread_plain, float)) - iae_spread
    a = verdicts.location_row("07a", *CLAIMS["07a"], dataset, "test", diff, diff, scale="difference",
                              margin=float(np.log(1.1)))
    b = verdicts.location_row("07b", *CLAIMS["07b"], dataset, "test", iae_spread - np.log(1.25),
                              iae_spread - np.log(1.25), scale="difference", predicted="less",
                              margin=float(np.log(1.1)))
    return [a, b]


def defence_rows(dataset: str, records: pd.DataFrame, verdict_eps, margin: float, unconverged=frozenset(),
                 others=("plain AE", "pca", "none")) -> list[verdicts.Row]:
    """07c (I-AE: off- vs on-manifold PGD) and 07d (I-AE vs each other defence, worst case) at each budget.
    records: every attack's per-image records of this data set (DEFENCE_COLUMNS)."""
    rows = []
    for eps in verdict_eps:
        r = records[np.isclose(records["eps"].astype(float), eps) & (records["defence"] == "I-AE")]
        by = {a: g.sort_values("image") for a, g in r.groupby("attack")}
        if {"on-manifold", "off-manifold"} <= set(by):
            short, text = CLAIMS["07c"]
            off, on = (by[a]["broken"].to_numpy(bool) for a in ("off-manifold", "on-manifold"))
            rows.append(paired_row("07c", short, text.format(eps=eps), dataset, ~off, ~on, margin,
                                   "I-AE" not in unconverged, by["on-manifold"]["image"].to_numpy(), eps=eps))
        robust = worst_case(records, eps)
        for other in others:
            if "I-AE" in robust and other in robust:
                short, text = CLAIMS["07d"]
                rows.append(paired_row(f"07d/{other}", short.format(other=other), text.format(other=other, eps=eps),
                                       dataset, robust["I-AE"], robust[other], margin,
                                       not ({"I-AE", other} & set(unconverged)), robust.index.to_numpy(), eps=eps,
                                       other=other))
    return rows
