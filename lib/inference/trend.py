"""Does a claim's effect move as the models improve? A trend over points of one series (checkpoints of a training run,
or models trained on more data), every point measured on the same images, as a lib.inference.verdicts.Row.

Each point j has a quality coordinate x_j (decades of improvement: -log10 of the test reconstruction error or of the
test error rate, or log10 of the training images) and the claim's median per-image effect y_j (a log ratio or a
difference of cosines). The trend is the least-squares slope b of y on x: the change of the effect per tenfold
improvement. Two sources of uncertainty, as in lib.inference.pooling.pool_shared_images:
- the images: every point is measured on the same images, so the points' medians share sampling error. Their
  covariance Sigma comes from a bootstrap over images that keeps each image's values across the points together;
  the slope, a fixed linear combination w'y of the medians, has image variance w' Sigma w;
- the training: the points scatter about a line by more than the images explain (a checkpoint happens to be better
  or worse). With the residual sum of squares RSS, E[RSS] = tau^2 (J - 2) + tr((I - H) Sigma) (H the hat matrix of
  the fit), so tau^2 = max(0, (RSS - tr((I - H) Sigma)) / (J - 2)) estimates the scatter, and it adds tau^2 / Sxx.
The test uses t with Satterthwaite's df: J - 2 where the scatter is all of the variance, more where the images'
covariance (known from many images) is most of it. The slope speaks of this series of models (one training run, one
set of data sizes), as notebook 05's medians speak of one network.
"""
from __future__ import annotations

import numpy as np
from scipy import stats as sps

from lib.inference import power as power_lib
from lib.inference import verdicts
from lib.inference.pooling import bootstrap_medians, shared_values


def fit(values, x, alpha: float = 0.05, n_boot: int = 2000, seed: int = 0) -> dict:
    """The trend of the column medians of ``values`` (images x points; exact values or one-sided bounds at +-inf) on
    ``x`` (one coordinate per point, three or more distinct): slope ("effect") with se, its (1 - alpha) interval and
    t reference (``dist``, ``df``), intercept, tau^2 (the points' scatter beyond the images'), and ``band(x)`` ->
    (fitted value, its standard error) for extrapolation."""
    v, x = np.asarray(values, float), np.asarray(x, float)
    n, j = v.shape
    if j != len(x) or j < 3 or len(np.unique(x)) < 3:
        raise ValueError(f"a trend needs three or more points with distinct x; got {j} points, x = {list(x)}")
    if n < 2:
        raise ValueError(f"a trend needs two or more images; got {n}")
    y = np.median(v, axis=0)
    boot = bootstrap_medians(v, n_boot, seed)
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(boot))):
        raise ValueError("a point's median (or a bootstrap draw of it) is not finite: most of its values are bounds")
    sigma = np.cov(boot, rowvar=False)
    xbar, sxx = float(x.mean()), float(((x - x.mean()) ** 2).sum())
    w = (x - xbar) / sxx
    b = float(w @ y)
    a = float(y.mean() - b * xbar)
    design = np.column_stack([np.ones(j), x])
    hat = design @ np.linalg.pinv(design)
    rss = float(((y - a - b * x) ** 2).sum())
    tau2 = max(0.0, (rss - float(np.trace((np.eye(j) - hat) @ sigma))) / (j - 2))
    var = float(w @ sigma @ w) + tau2 / sxx
    se = float(np.sqrt(var))
    spread = rss / ((j - 2) * sxx)  # the part of the variance estimated from the points' scatter (J - 2 df)
    df = float(min(1e6, (j - 2) * var ** 2 / spread ** 2)) if spread > 0 else 1e6
    dist = sps.t(df)
    crit = float(dist.isf(alpha / 2))

    def band(at):
        c = 1 / j + (float(at) - xbar) * w  # the fitted value at `at` as a combination of the medians
        return a + b * float(at), float(np.sqrt(c @ sigma @ c + tau2 * (c @ c)))

    return {"effect": b, "se": se, "ci_low": b - crit * se, "ci_high": b + crit * se, "intercept": a, "tau2": tau2,
            "df": df, "dist": dist, "medians": y, "x": x, "n_images": n, "points": j, "band": band, "crit": crit}


def reach(f: dict, threshold: float, side: int, beyond: float = 10.0, step: float = 0.01) -> dict:
    """Where the trend ``f`` (fit's) would reach the DMM side of ``threshold`` (side +1: above it, -1: below it) if
    it went on beyond the best point: the x at which the fitted line crosses it ("at"), and the interval of x where
    the (1 - alpha) band crosses it: "earliest" (the band's DMM-side bound) and "latest" (its other bound; NaN: not
    within ``beyond`` decades). "already": the best point's fitted value is on the DMM side. NaN "at": the line
    moves away from the DMM side, or crosses beyond ``beyond`` decades."""
    top = float(np.max(f["x"]))
    grid = top + np.arange(0.0, beyond + step / 2, step)
    fitted, se = np.array([f["band"](g) for g in grid]).T

    def first(values):
        hit = np.flatnonzero(side * (values - threshold) >= 0)
        return float(grid[hit[0]]) if len(hit) else float("nan")

    return {"already": bool(side * (fitted[0] - threshold) >= 0), "at": first(fitted),
            "earliest": first(fitted + side * f["crit"] * se), "latest": first(fitted - side * f["crit"] * se),
            "from": top, "beyond": beyond}


def trend_row(point_rows: list[verdicts.Row], x, label: str, alpha: float = 0.05, n_boot: int = 2000,
              seed: int = 0) -> tuple[verdicts.Row, dict | None]:
    """The claim of ``point_rows`` (one claim, one data set: a Row per point of a series, each with its per-image
    values on the same images) as a trend: "the effect moves toward DMM as the models improve", a "difference" Row
    whose effect is the slope per decade of ``x`` (the points' quality coordinates), the claim's margin per decade
    its negligible band, predicted in the claim's own direction. Returns (row, the fit; None where not testable)."""
    first = point_rows[0]
    if any((r.claim_id, r.dataset, r.scale, r.predicted) != (first.claim_id, first.dataset, first.scale,
                                                              first.predicted) for r in point_rows):
        raise ValueError("trend_row takes one claim on one data set")
    s = 1 if first.predicted == "greater" else -1
    base = dict(claim_id=first.claim_id, short=f"{first.short} · trend over {label}", claim=(
        f"{first.claim}: the effect moves toward DMM's prediction as the models improve ({label}), by more than the "
        "margin per tenfold improvement"), dataset=first.dataset, split=first.split, kind="difference",
        scale=first.scale, margin=first.margin, predicted=first.predicted, clip=first.clip,
        null_verdict=verdicts.Verdict.PRECISE_NULL, discriminating=False, dmm_effect=2 * s * first.margin)
    notes = {"series": label, "points": len(point_rows), "point_effects": [float(r.effect) for r in point_rows],
             "x": [float(v) for v in x]}
    testable = all(r.testable for r in point_rows)
    values = shared_values(point_rows) if testable else None
    why = "no per-image values shared" if testable else "a point is not testable"
    try:
        f = fit(values, x, alpha, n_boot, seed) if values is not None else None
    except ValueError as err:
        f, why = None, str(err)
    if f is None:
        return verdicts.Row(**base, effect=np.nan, ci_low=np.nan, ci_high=np.nan, p=np.nan, p_margin=np.nan, n=0,
                            statistic=f"no trend: {why}", testable=False, notes=notes), None
    p = float(f["dist"].sf(s * f["effect"] / f["se"]))
    p_margin = float(f["dist"].sf((s * f["effect"] - first.margin) / f["se"]))
    statistic = (f"least-squares slope of {f['points']} points' medians on the same {f['n_images']} images, per "
                 f"decade; standard error from the images' covariance across the points (bootstrap over images) plus "
                 f"the points' scatter about the line (tau²={f['tau2']:.3g}); t test with {f['df']:.3g} df "
                 f"(Satterthwaite), one-sided ({first.predicted})")
    target = 2 * s * first.margin

    def power_at(level):
        delta = (s * target - first.margin) / f["se"]
        z = float(sps.norm.isf(level))
        return power_lib.Power(d=float(delta), n=f["points"], power=float(sps.norm.sf(z - delta)), n_needed=np.nan)

    row = verdicts.Row(**base, effect=f["effect"], ci_low=f["ci_low"], ci_high=f["ci_high"], ci_level=1 - alpha, p=p,
                       p_margin=p_margin, n=f["points"], statistic=statistic,
                       notes={**notes, "tau2": f["tau2"], "se": f["se"]}, power_at=power_at)
    return row, f
