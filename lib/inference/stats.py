"""Tests on plain arrays: the statistics every claim of the report is judged with.

Values are per-image effects on an additive scale (log norm ratios, or differences of cosines).
A per-image value may be an interval [low, high] instead of a number: a *censored* comparison (an
attack that failed within its budget only bounds its norm from below, so a ratio involving it is only
bounded). The sign test and the median's order-statistic interval use such intervals exactly and
conservatively; t-based tests take exact values only. NaN means missing.

Nothing here knows about records, arms or claims: see lib/experiments/records.py and lib/studies/manifold/claims.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.weightstats import DescrStatsW

ALPHA = 0.05
ALTERNATIVES = ("two-sided", "greater", "less")


def check_choice(value, allowed, name):
    """A ValueError naming the allowed values unless ``value`` is one of them."""
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(map(repr, allowed))}")


def values(x) -> np.ndarray:
    """A float array without NaNs (undecidable values are the caller's to count)."""
    x = np.asarray(x, dtype=float).ravel()
    return x[~np.isnan(x)]


# ---------------------------------------------------------------- location: tests and intervals

def bounds(x, high=None) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) arrays of per-image intervals; plain values are intervals of width 0. Rows where either
    bound is NaN are dropped (missing, not censored)."""
    low = np.asarray(x, dtype=float).ravel()
    high = low if high is None else np.asarray(high, dtype=float).ravel()
    if low.shape != high.shape:
        raise ValueError("low and high must have one shape")
    keep = ~(np.isnan(low) | np.isnan(high))
    low, high = low[keep], high[keep]
    if np.any(low > high):
        raise ValueError("every interval needs low <= high")
    return low, high


def sign_test(x, alternative: str = "greater", high=None, null: float = 0.0) -> tuple[int, int, int, float]:
    """Exact sign test of H0: the median is ``null``. Values may be intervals [x, high] (censored: the true
    value lies inside, possibly at +-inf): an interval that contains ``null`` is *undecided* and counts
    against the alternative (for "greater" as if below), the worst case, so the test stays valid (the
    observed count above can only understate the true one) and undecided images can only weaken it.
    Exact ties at ``null`` are dropped. Returns (entirely above, entirely below, undecided, p)."""
    check_choice(alternative, ALTERNATIVES, "alternative")
    low, high = bounds(x, high)
    tie = (low == null) & (high == null)
    low, high = low[~tie], high[~tie]
    up, down = int((low > null).sum()), int((high < null).sum())
    n = len(low)
    if n == 0:
        return 0, 0, 0, np.nan
    one_sided = lambda k: sps.binomtest(k, n, 0.5, alternative="greater").pvalue
    p = {"greater": lambda: one_sided(up), "less": lambda: one_sided(down),
         "two-sided": lambda: min(1.0, 2 * min(one_sided(up), one_sided(down)))}[alternative]()
    return up, down, n - up - down, float(p)


def median_ci(x, level: float = 0.95, high=None) -> tuple[float, float, float]:
    """Median and its distribution-free CI from order statistics (binomial): (median, low, high).

    Values may be intervals [x, high] (censored): the lower confidence bound is an order statistic of the
    lower ends, the upper bound one of the upper ends, so the interval covers the median of the true values
    with probability >= level whatever they are. The point estimate is the sample median with each one-sided
    interval at its open end (+-inf: the median is infinite when most attacks failed), images about which
    nothing is known left out. Too few values for the level: NaN bounds."""
    low, high = bounds(x, high)
    n = len(low)
    if n == 0:
        return np.nan, np.nan, np.nan
    # the point estimate: exact values as they are, a one-sided interval at its open end (a failed attack
    # needed more than any recorded norm), a two-sided one (nothing known) left out
    point = np.where(low == high, low, np.where(np.isfinite(low), np.inf, np.where(np.isfinite(high), -np.inf, np.nan)))
    point = point[~np.isnan(point)]
    with np.errstate(invalid="ignore"):
        med = float(np.median(point)) if len(point) else np.nan
    # the largest j with P(Binom(n, 1/2) <= j - 1) <= (1 - level) / 2: [x_(j), x_(n+1-j)] covers the median
    j = int(sps.binom.ppf((1 - level) / 2, n, 0.5))
    while j >= 1 and sps.binom.cdf(j - 1, n, 0.5) > (1 - level) / 2:
        j -= 1
    if j < 1:
        return med, np.nan, np.nan
    return med, float(np.sort(low)[j - 1]), float(np.sort(high)[n - j])


@dataclass
class Tost:
    """Paired TOST: H0 |mean| >= margin. p = the larger one-sided p; ci90 = the (1 - 2 alpha) t interval."""
    n: int
    margin: float
    p: float
    mean: float
    ci90: tuple


def tost(x, margin: float, alpha: float = ALPHA) -> Tost:
    """Equivalence within +-margin of the mean of the finite values of x (statsmodels ttost_mean)."""
    if margin <= 0:
        raise ValueError(f"margin must be > 0; got {margin}")
    x = values(x)
    x = x[np.isfinite(x)]
    if len(x) < 3 or np.std(x) == 0:
        return Tost(len(x), margin, np.nan, float(np.mean(x)) if len(x) else np.nan, (np.nan, np.nan))
    d = DescrStatsW(x)
    p, _, _ = d.ttost_mean(-margin, margin)
    return Tost(len(x), float(margin), float(p), float(x.mean()), tuple(map(float, d.tconfint_mean(2 * alpha))))


def mcnemar_exact(failed_a, failed_b) -> tuple[int, int, float]:
    """Exact McNemar test of equal failure rates in two paired arms: (failed in a only, in b only, p)."""
    fa, fb = np.asarray(failed_a, bool), np.asarray(failed_b, bool)
    b, c = int((fa & ~fb).sum()), int((~fa & fb).sum())
    if b + c == 0:
        return 0, 0, 1.0
    table = [[int((fa & fb).sum()), b], [c, int((~fa & ~fb).sum())]]
    return b, c, float(mcnemar(table, exact=True).pvalue)


def wilson_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k/n: (center +- half) with
    center = (p + z^2/2n) / (1 + z^2/n), half = z / (1 + z^2/n) sqrt(p(1-p)/n + z^2/4n^2)."""
    if n < 1:
        return np.nan, np.nan
    z, p = sps.norm.ppf(0.5 + level / 2), k / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float(max(0.0, center - half)), float(min(1.0, center + half))


def paired_difference_ci(ok_a, ok_b, level: float = 0.95) -> tuple[float, float, float]:
    """Difference of two paired proportions, mean(ok_a) - mean(ok_b), with the Agresti-Min interval (the
    Wald interval after adding 1/2 to each cell of the 2x2 table): (difference, low, high)."""
    a, b = np.asarray(ok_a, bool), np.asarray(ok_b, bool)
    n = len(a)
    if n < 1:
        return np.nan, np.nan, np.nan
    n10, n01 = float((a & ~b).sum()), float((~a & b).sum())
    m = n + 2.0
    d = (n10 - n01) / m
    se = np.sqrt(((n10 + 0.5) + (n01 + 0.5) - (n10 - n01) ** 2 / m) / m ** 2)
    z = sps.norm.ppf(0.5 + level / 2)
    return float((n10 - n01) / n), float(max(-1.0, d - z * se)), float(min(1.0, d + z * se))


def fisher_exact(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided Fisher exact test of equal rates k1/n1 and k2/n2 (independent samples): p."""
    if n1 < 1 or n2 < 1:
        return np.nan
    return float(sps.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue)


def mann_whitney(x, y) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test of two independent samples of exact (finite) values."""
    x, y = values(x), values(y)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("mann_whitney takes exact (finite) values")
    if min(len(x), len(y)) < 3:
        return np.nan, np.nan
    u = sps.mannwhitneyu(x, y, alternative="two-sided")
    return float(u.statistic), float(u.pvalue)


def hodges_lehmann(x, y, level: float = 0.95) -> tuple[float, float, float]:
    """Hodges-Lehmann shift of x over y (median of all differences) and its Moses CI (normal
    approximation to U), on finite values: (shift, low, high)."""
    x, y = (v[np.isfinite(v)] for v in (values(x), values(y)))
    if not (len(x) and len(y)):
        return np.nan, np.nan, np.nan
    d = np.sort(np.subtract.outer(x, y).ravel())
    n1, n2 = len(x), len(y)
    c = int(np.floor(n1 * n2 / 2 - sps.norm.ppf(0.5 + level / 2) * np.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)))
    if c < 1:
        return float(np.median(d)), np.nan, np.nan
    return float(np.median(d)), float(d[c - 1]), float(d[len(d) - c])


def mann_whitney_equivalence(x, y, margin: float) -> float:
    """Equivalence of two independent samples within +-margin of shift (two one-sided Mann-Whitney tests,
    Wellek's TOST idea on ranks): H0 shift <= -margin or shift >= margin; p is the larger one-sided p."""
    if margin <= 0:
        raise ValueError(f"margin must be > 0; got {margin}")
    x, y = (v[np.isfinite(v)] for v in (values(x), values(y)))
    if min(len(x), len(y)) < 3:
        return np.nan
    above = sps.mannwhitneyu(x + margin, y, alternative="greater").pvalue   # H0: shift <= -margin
    below = sps.mannwhitneyu(x - margin, y, alternative="less").pvalue      # H0: shift >= +margin
    return float(max(above, below))


def paired_proportion_score_test(ok_a, ok_b, margin: float = 0.0) -> tuple[float, float]:
    """Tango's (1998) score test of H0: mean(ok_a) - mean(ok_b) <= margin for paired booleans, one-sided
    (H1: the difference exceeds the margin). With n10 = a only, n01 = b only, n pairs and the restricted MLE
    p01 of the "b only" cell under H0, Z = (n10 - n01 - n margin) / sqrt(n (2 p01 + margin (1 - margin)));
    at margin 0 it is McNemar's statistic. Returns (Z, p)."""
    a, b = np.asarray(ok_a, bool), np.asarray(ok_b, bool)
    n = len(a)
    if n < 1:
        return np.nan, np.nan
    z = tango_z(np.array([(a & ~b).sum()]), np.array([(~a & b).sum()]), n, margin)[0]
    return float(z), float(sps.norm.sf(z))  # no discordant pair at margin 0: Z = -inf, p = 1


FEW_DISCORDANT = 25  # below this many discordant pairs the test of no difference is McNemar's exact mid-p


def paired_proportion_test(ok_a, ok_b, margin: float = 0.0) -> tuple[float, float, str]:
    """One-sided test of H0: mean(ok_a) - mean(ok_b) <= margin for paired booleans: (statistic, p, its name). At
    margin 0 with fewer than FEW_DISCORDANT discordant pairs, McNemar's exact test as a mid-p (the binomial test of
    n10 among the n10 + n01 discordant pairs, half the probability of the observed count: Tango's normal score test
    runs at about 1.3x alpha there); otherwise Tango's score test (paired_proportion_score_test)."""
    a, b = np.asarray(ok_a, bool), np.asarray(ok_b, bool)
    n10, n01 = int((a & ~b).sum()), int((~a & b).sum())
    if margin == 0 and n10 + n01 < FEW_DISCORDANT:
        if n10 + n01 == 0:
            return float(n10), 1.0, "McNemar exact mid-p"
        d = sps.binom(n10 + n01, 0.5)
        return float(n10), float(d.sf(n10) + 0.5 * d.pmf(n10)), "McNemar exact mid-p"
    z, p = paired_proportion_score_test(a, b, margin)
    return z, p, "Tango score test"


def tango_z(n10, n01, n, margin):
    """Tango's Z for arrays of discordant counts (see paired_proportion_score_test)."""
    n10, n01 = np.asarray(n10, float), np.asarray(n01, float)
    A, B, C = 2.0 * n, -n10 - n01 + (2.0 * n - n10 + n01) * margin, -n01 * margin * (1 - margin)
    p01 = (-B + np.sqrt(np.maximum(B * B - 4 * A * C, 0.0))) / (2 * A)
    var = n * (2 * p01 + margin * (1 - margin))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (n10 - n01 - n * margin) / np.sqrt(var)
    return np.where(var > 0, z, np.where(n10 - n01 - n * margin > 0, np.inf, -np.inf))  # no variance: a sure sign


# ---------------------------------------------------------------- multiplicity

def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values: sort ascending, p_(i) * (m - i + 1), running maximum, cap 1.
    NaNs stay NaN and are not part of the family."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out[order] = adjusted
    return out


# ---------------------------------------------------------------- the share a random subspace captures

def random_share_cdf(share, k, n) -> np.ndarray:
    """P(S <= share) for the share S = ||P g||^2 / ||g||^2 of a fixed vector's energy in a uniformly random
    k-dimensional subspace of R^n: S ~ Beta(k/2, (n-k)/2). Its mean is k/n, but its median lies below k/n,
    so "share < k/n" is not the null to test; "CDF < 1/2" is."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    if np.any((k < 1) | (k >= n)):
        raise ValueError("need 1 <= k < n")
    return sps.beta.cdf(np.asarray(share, float), k / 2, (n - k) / 2)


def random_share_median(k, n) -> float:
    """The median share of a random k-dimensional subspace of R^n (Beta(k/2, (n-k)/2) median)."""
    if not 1 <= k < n:
        raise ValueError(f"need 1 <= k < n; got k={k}, n={n}")
    return float(sps.beta.median(k / 2, (n - k) / 2))


FLAT_RATIOS = ("on / off", "on / unconstrained", "off / unconstrained")


def flat_boundary_median(k: int, n: int, ratio: str = "on / off") -> float:
    """The report's one flat-boundary reference: the median norm ratio that confinement alone gives for a locally
    flat boundary and a random k-dimensional subspace of R^n. The distance along the projected normal w is
    |s| / ||P w||, and s = ||P w||^2 / ||w||^2 ~ Beta(k/2, (n-k)/2); so on/off = sqrt((1 - s) / s),
    on/unconstrained = 1 / sqrt(s), off/unconstrained = 1 / sqrt(1 - s), and the median of a monotone
    transform is the transform of the median. On/off lies a little above the familiar sqrt((n-k)/k) (the
    ratio at the mean share k/n)."""
    check_choice(ratio, FLAT_RATIOS, "ratio")
    m = random_share_median(k, n)
    return float({"on / off": np.sqrt((1 - m) / m), "on / unconstrained": 1 / np.sqrt(m),
                  "off / unconstrained": 1 / np.sqrt(1 - m)}[ratio])
