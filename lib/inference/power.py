"""The power of the tests the verdicts apply (lib.inference.verdicts asks each row's at Holm's first-step level), and
the number of images a reader would need for a target power. Each function answers for one test of lib.inference.stats
at an observed effect: analytically where the test's distribution is known (sign test), by a standard approximation
(normal ones for two one-sided tests), or by simulation (Tango's score test)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from lib.inference import stats


def n_for_power(power_at, target: float = 0.8, n_min: int = 2, n_max: int = 10**7) -> float:
    """The smallest n >= n_min with power_at(n) >= target, for a power increasing in n (doubling, then
    bisection); inf when even n_max falls short. Unlike a root finder it cannot fail for large effects."""
    if power_at(n_min) >= target:
        return float(n_min)
    lo, hi = n_min, n_min * 2
    while power_at(hi) < target:
        if hi >= n_max:
            return np.inf
        lo, hi = hi, min(hi * 2, n_max)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if power_at(mid) < target else (lo, mid)
    return float(hi)


@dataclass
class Power:
    """Power at this N and the N for ``target`` power (NaN: not meaningful, e.g. an effect on the wrong side)."""
    d: float
    n: int
    power: float
    n_needed: float


def power_tost(x, margin: float, alpha: float = stats.ALPHA, target: float = 0.8) -> Power:
    """Power of the paired TOST within +-margin at the observed mean m and sd s of the finite values
    (normal approximation with the t critical value), and the N for ``target``; both NaN when |m| >= margin."""
    x = stats.values(x)
    x = x[np.isfinite(x)]
    if len(x) < 3 or np.std(x, ddof=1) == 0:
        return Power(np.nan, len(x), np.nan, np.nan)
    m, s = abs(float(x.mean())), float(x.std(ddof=1))

    def at(n):
        se, t = s / np.sqrt(n), sps.t.ppf(1 - alpha, n - 1)
        return float(max(0.0, sps.norm.cdf((margin - m) / se - t) + sps.norm.cdf((margin + m) / se - t) - 1))

    if m >= margin:  # the observed mean lies outside the margin: no N would show equivalence there
        return Power(m / s, len(x), np.nan, np.nan)
    return Power(m / s, len(x), at(len(x)), n_for_power(at, target, n_min=3))


def _power(at, n, d, target, n_min=2) -> Power:
    return Power(d, n, at(n), n_for_power(at, target, n_min=n_min))


def power_sign(low, high=None, null: float = 0.0, alternative: str = "greater", alpha: float = stats.ALPHA,
               target: float = 0.8) -> Power:
    """Power of the one-sided exact sign test of H0 median = ``null`` (censored values as in sign_test: an
    image counts for the alternative only if its whole interval lies beyond ``null``) at the observed share q of
    such images: P(Binom(N, q) >= c_N), c_N the test's critical count at level alpha. d reports q."""
    stats.check_choice(alternative, ("greater", "less"), "alternative")
    lo, hi = stats.bounds(low, high)
    n = len(lo)
    if n == 0:
        return Power(np.nan, 0, np.nan, np.nan)
    q = float(np.mean(lo > null) if alternative == "greater" else np.mean(hi < null))

    def at(m):
        c = sps.binom.isf(alpha, m, 0.5) + 1   # the smallest count c with P(Binom(m, 1/2) >= c) <= alpha
        return float(sps.binom.sf(c - 1, m, q))
    if q <= 0.5:
        return Power(q, n, at(n), np.nan)
    return _power(at, n, q, target)


def power_equivalence_two_sample(x, y, margin: float, alpha: float = stats.ALPHA, target: float = 0.8) -> Power:
    """Power of two one-sided tests of equivalence within +-margin for two independent samples, at the
    observed difference of means m and pooled sd s (normal approximation); the N per sample for ``target``.
    NaN where |m| >= margin (no N would show equivalence)."""
    x, y = (v[np.isfinite(v)] for v in (stats.values(x), stats.values(y)))
    if min(len(x), len(y)) < 2:
        return Power(np.nan, len(x) + len(y), np.nan, np.nan)
    m = abs(float(x.mean() - y.mean()))
    s = np.sqrt(((len(x) - 1) * x.var(ddof=1) + (len(y) - 1) * y.var(ddof=1)) / (len(x) + len(y) - 2))
    if s == 0:
        return Power(np.nan, len(x) + len(y), np.nan, np.nan)
    z = sps.norm.isf(alpha)

    def per_sample(n1, n2):
        se = s * np.sqrt(1 / n1 + 1 / n2)
        return float(max(0.0, sps.norm.cdf((margin - m) / se - z) + sps.norm.cdf((margin + m) / se - z) - 1))
    now = per_sample(len(x), len(y))
    if m >= margin:
        return Power(m / s, len(x) + len(y), now, np.nan)
    return Power(m / s, len(x) + len(y), now, n_for_power(lambda n: per_sample(n, n), target))


def power_paired_proportions(ok_a, ok_b, margin: float = 0.0, alpha: float = stats.ALPHA, target: float = 0.8,
                             sims: int = 4000, seed: int = 0) -> Power:
    """Power of Tango's score test (paired_proportion_score_test) at the observed cell shares, by simulation
    (multinomial draws of the discordant counts); the N for ``target``. d reports the observed difference."""
    a, b = np.asarray(ok_a, bool), np.asarray(ok_b, bool)
    n = len(a)
    if n < 1:
        return Power(np.nan, 0, np.nan, np.nan)
    shares = np.array([(a & ~b).mean(), (~a & b).mean()])
    shares = np.append(shares, max(0.0, 1 - shares.sum()))
    rng = np.random.default_rng(seed)
    z_crit = sps.norm.isf(alpha)

    def at(m):
        counts = rng.multinomial(m, shares, size=sims)
        return float(np.mean(stats.tango_z(counts[:, 0], counts[:, 1], m, margin) > z_crit))
    diff = float(shares[0] - shares[1])
    if diff <= margin:
        return Power(diff, n, at(n), np.nan)
    return _power(at, n, diff, target, n_min=2)
