"""lib.inference.trend: the slope of a claim's effect over a series of models measured on the same images.

Simulated with values shaped like the report's: skewed per-image log ratios, each image's values correlated across the
points (an image easy for one checkpoint is easy for the next), a few one-sided bounds, and a scatter of the points
about the line (training noise) that the images do not explain."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from lib.inference import trend, verdicts
from lib.inference.rules import Verdict

X = np.array([-1.9, -1.3, -1.1, -0.86])  # decades: like an autoencoder's -log10(test MSE) over its checkpoints
MARGIN = float(np.log(1.1))


def world(rng, slope, n=150, x=X, tau=0.0, censored=0.03):
    """images x points: per-image skewed values (an image part shared by every point, a point part), the points'
    population medians on the line slope * x (plus a scatter tau), a few values open upwards (+inf)."""
    shared = rng.gumbel(0, 0.4, (n, 1))
    v = shared + rng.normal(0, 0.3, (n, len(x))) + slope * x + tau * rng.normal(size=len(x))
    v[rng.random(v.shape) < censored] = np.inf
    return v


def rate_upper(hits, worlds):
    """One-sided 95% Clopper-Pearson upper bound of a rate."""
    return float(sps.beta.ppf(0.95, hits + 1, worlds - hits)) if hits < worlds else 1.0


def _p_margin(v, x=X):
    f = trend.fit(v, x, n_boot=300)
    return float(f["dist"].sf((f["effect"] - MARGIN) / f["se"])), f


@pytest.mark.parametrize("tau", [0.0, 0.05])
def test_false_support_at_the_margin_is_at_most_alpha(tau):
    """The least favourable null: the true slope sits at the margin. 'supported' (p_margin < 0.05) in at most about 5%
    of 200 worlds (the upper bound of its 95% interval within 0.09), with or without training scatter."""
    rng = np.random.default_rng(1 + int(tau * 100))
    hits = sum(_p_margin(world(rng, MARGIN, tau=tau))[0] < 0.05 for _ in range(200))
    assert hits / 200 <= 0.08 and rate_upper(hits, 200) <= 0.11, hits


def test_a_true_trend_is_found():
    rng = np.random.default_rng(7)
    hits = sum(_p_margin(world(rng, 4 * MARGIN))[0] < 0.05 for _ in range(60))
    assert hits >= 0.8 * 60, hits


def test_slope_and_scatter_are_estimated():
    """With the images' noise negligible, the slope is the line's; the points' scatter shows up as tau^2."""
    rng = np.random.default_rng(3)
    base = rng.normal(0, 1e-3, (400, 1)) + rng.normal(0, 1e-4, (400, len(X)))
    f = trend.fit(base + 0.3 * X + 1.0, X, n_boot=200)
    assert f["effect"] == pytest.approx(0.3, abs=1e-3) and f["intercept"] == pytest.approx(1.0, abs=1e-3)
    bumps = np.array([0.05, -0.05, -0.05, 0.05])
    g = trend.fit(base + 0.3 * X + bumps, X, n_boot=200)
    resid = bumps - np.polyval(np.polyfit(X, bumps, 1), X)
    assert g["tau2"] == pytest.approx((resid ** 2).sum() / (len(X) - 2), rel=0.05)
    assert g["se"] > 10 * f["se"]


def test_reach_finds_where_the_line_crosses():
    """y = 0.2 x + 1.2 (no noise to speak of) rises past 0.9 at x = -1.5; a falling line never reaches it, a rising
    one never falls below 0.3."""
    rng = np.random.default_rng(0)
    v = rng.normal(0, 1e-4, (300, len(X))) + 0.2 * X + 1.0
    f = trend.fit(v, X - 1.0, n_boot=200)  # x from -2.9 to -1.86: y from 0.62 to 0.83
    r = trend.reach(f, 0.9, +1)
    assert r["at"] == pytest.approx(-1.5, abs=0.02) and not r["already"]
    assert r["earliest"] <= r["at"] <= r["latest"]
    assert np.isnan(trend.reach(f, 0.3, -1)["at"])  # rising: never below 0.3
    assert np.isnan(trend.reach(trend.fit(v[:, ::-1] * 1, X - 1.0, n_boot=200), 0.9, +1)["at"])


def _rows(v, claim="3", predicted="greater"):
    ids = pd.RangeIndex(len(v))
    return [verdicts.location_row(claim, "3 gap vs random", "the claim", "mnist", "test",
                                  pd.Series(v[:, j], index=ids), pd.Series(v[:, j], index=ids), predicted=predicted)
            for j in range(v.shape[1])]


def test_trend_rows_are_judged_by_the_rule():
    rng = np.random.default_rng(11)
    up, _ = trend.trend_row(_rows(world(rng, 10 * MARGIN)), X, "autoencoder training")
    down, _ = trend.trend_row(_rows(world(rng, -10 * MARGIN)), X, "autoencoder training")
    flat, _ = trend.trend_row(_rows(world(rng, 0.0, n=3000)), X, "autoencoder training")
    table = verdicts.judge([up, down, flat], "11 · test")
    assert list(table["verdict"]) == [Verdict.SUPPORTED, Verdict.CONTRADICTED, Verdict.PRECISE_NULL]
    # a claim DMM predicts below no effect (claim 4): a falling effect is the trend toward DMM
    toward, _ = trend.trend_row(_rows(world(rng, -10 * MARGIN), predicted="less"), X, "classifier training")
    assert verdicts.judge([toward], "11 · test")["verdict"].iloc[0] == Verdict.SUPPORTED


def test_too_few_points_is_not_testable():
    rng = np.random.default_rng(0)
    row, f = trend.trend_row(_rows(world(rng, 0.0, x=X[:2]))[:2], X[:2], "data")
    assert f is None and not row.testable and "three or more" in row.statistic
