"""Random-effects pooling of one claim's effect across independently trained models (training seeds), and the
pooled claim as a lib.inference.verdicts.Row, judged by the report's one rule.

Seeds measured on the same test images (notebook 09) are not independent studies: an image that is easy for one
network tends to be easy for the next, so the seeds' medians share sampling error. ``pool_shared_images`` pools them
with that correlation measured by a bootstrap over images that keeps each image's values across seeds together;
``pool`` (a meta-analysis of independent estimates) is for seeds measured on different images. Either way the test
uses a t reference (HKSJ's t with k - 1 df for the meta-analysis, by default): with few seeds DerSimonian-Laird's z is
too narrow (IntHout, Ioannidis & Borm 2014, BMC Med Res Methodol 14:25). Three seeds say little about the between-seed
variance tau^2: an estimate of 0 is what a positive tau^2 often gives, so tau^2 is shown with its upper confidence
bound.

Each seed gives an effect y_s (a median per-image log ratio or difference of cosines) with a standard error s_s.
The pooled mean follows the random-effects model y_s ~ N(mu, s_s^2 + tau^2) (DerSimonian & Laird 1986; Paule &
Mandel 1982 as the iterated alternative), fitted by statsmodels.stats.meta_analysis.combine_effects: tau^2 is the
variance *between* models, so the pooled interval speaks of networks trained this way, not of one network.

Standard error of a seed's median: its distribution-free 95% interval (order statistics, widened as far as failed
attacks' bounds demand; lib.inference.stats.median_ci) converted as if normal, s = (hi - lo) / (2 z_0.975). The order
statistic interval covers at least 95%, so s errs on the large side (the pooled interval is conservative in that
respect); a seed whose interval is not finite (most attacks censored) has no standard error and is left out.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.meta_analysis import combine_effects

from lib.inference import power as power_lib
from lib.inference import stats, verdicts
from lib.infra.names import TAU2_METHODS
from lib.inference.rules import Verdict

Z975 = float(sps.norm.isf(0.025))
METHODS = dict(zip(TAU2_METHODS, ("chi2", "iterated")))  # statsmodels' names of DerSimonian-Laird, Paule-Mandel
METHOD_WORDS = {"dl": "DerSimonian-Laird", "pm": "Paule-Mandel"}


def se_from_ci(lo: float, hi: float, level: float = 0.95) -> float:
    """The standard error a normal interval [lo, hi] at ``level`` implies (NaN where it is not finite)."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return float("nan")
    return float((hi - lo) / (2 * sps.norm.isf((1 - level) / 2)))


def pool(effects, ses, method: str = "dl", hksj: bool = True, alpha: float = 0.05) -> dict:
    """Random-effects pooled mean of ``effects`` with standard errors ``ses`` (two or more): effect, se, its
    (1 - alpha) interval, tau^2, I^2, Cochran's Q with its p, k, and the reference distribution of the tests
    (normal; with ``hksj`` the Hartung-Knapp-Sidik-Jonkman scale and t with k - 1 df)."""
    stats.check_choice(method, tuple(METHODS), "method")
    y, s = np.asarray(effects, float), np.asarray(ses, float)
    if len(y) != len(s) or len(y) < 2:
        raise ValueError(f"pooling needs two or more effects with one standard error each; got {len(y)} and {len(s)}")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(s)) and np.all(s > 0)):
        raise ValueError("effects and standard errors must be finite, standard errors > 0")
    with np.errstate(invalid="ignore"):  # the square root of a negative DL tau^2's variance, unused (below)
        res = combine_effects(y, s ** 2, method_re=METHODS[method], use_t=hksj, alpha=alpha)
    # statsmodels 0.15 leaves the DerSimonian-Laird moment estimate negative where Q < k - 1; DerSimonian & Laird
    # truncate it at 0, where the random-effects model is the fixed-effect one: take that fit's numbers then
    fe = res.tau2 <= 0
    tau2 = 0.0 if fe else float(res.tau2)
    mu = float(res.mean_effect_fe if fe else res.mean_effect_re)
    if hksj:
        se = float(np.sqrt(res.var_hksj_fe if fe else res.var_hksj_re))
    else:
        se = float(res.sd_eff_w_fe if fe else res.sd_eff_w_re)
    dist = sps.t(len(y) - 1) if hksj else sps.norm()
    crit = float(dist.isf(alpha / 2))
    q, q_p = float(res.q), float(sps.chi2.sf(res.q, len(y) - 1))
    i2 = max(0.0, (q - (len(y) - 1)) / q) if q > 0 else 0.0
    return {"effect": mu, "se": se, "ci_low": mu - crit * se, "ci_high": mu + crit * se, "tau2": tau2,
            "i2": i2, "q": q, "q_p": q_p, "k": len(y), "dist": dist, "method": method, "hksj": hksj}


# A seed's location of its per-image values: the median (per-image log ratios, cosines) or the mean (paired binary
# outcomes coded -1 / 0 / 1, whose mean is the difference of two robust accuracies: notebook 07).
LOCATIONS = {"median": np.median, "mean": np.mean}


def seed_medians(values, statistic: str = "median") -> np.ndarray:
    """Each column's (seed's) median (or ``statistic``, a key of LOCATIONS) of ``values`` (images x seeds; rows are
    images, in one order for every seed)."""
    return LOCATIONS[statistic](np.asarray(values, float), axis=0)


def bootstrap_medians(values, n_boot: int = 2000, seed: int = 0, statistic: str = "median") -> np.ndarray:
    """(n_boot, columns) medians (or ``statistic``s) of ``values`` (images x columns) over bootstrap draws of the
    images (rows), each image's row kept together: the columns' medians as their shared images make them vary
    together."""
    x = np.asarray(values, float)
    boot = np.empty((n_boot, x.shape[1]))
    rng = np.random.default_rng(seed)
    for start in range(0, n_boot, 200):  # chunks: B x n x k values at once
        idx = rng.integers(0, len(x), (min(200, n_boot - start), len(x)))
        boot[start:start + len(idx)] = LOCATIONS[statistic](x[idx], axis=1)
    return boot


def pool_shared_images(values, alpha: float = 0.05, n_boot: int = 2000, seed: int = 0,
                       statistic: str = "median") -> dict:
    """The mean over seeds of each seed's median (``statistic`` "mean": of each seed's mean, the same way), where
    every seed is measured on the same images (``values``: images x seeds, exact values or one-sided bounds at
    +-inf). The images' sampling covariance of the seeds' medians,
    Sigma, comes from a bootstrap over images that keeps each image's row together (the seeds' medians correlate,
    rho = mean off-diagonal / mean diagonal). With S^2 the seeds' sample variance of their medians (its expectation
    tau^2 + v - c, v and c Sigma's mean diagonal and off-diagonal), the pooled mean's variance
    tau^2 / k + v / k + (k - 1) c / k is estimated without bias by S^2 / k + c, and never below 1' Sigma 1 / k^2 (what
    the images alone give, as Knapp-Hartung's truncation); the test and interval use t with Satterthwaite's df,
    (k - 1) var^2 / (S^2 / k)^2: k - 1 (HKSJ's reference) where the seeds' spread is all of it, more where the images'
    covariance, known from many images, is most of it. tau^2 = max(0, S^2 - (v - c)), and its one-sided (1 - alpha)
    upper bound from S^2 (k - 1) / (tau^2 + v - c) ~ chi^2_(k-1)."""
    stats.check_choice(statistic, tuple(LOCATIONS), "statistic")
    x = np.asarray(values, float)
    n, k = x.shape
    if k < 2 or n < 2:
        raise ValueError(f"pooling needs two or more seeds and images; got {k} seeds, {n} images")
    y = seed_medians(x, statistic)
    boot = bootstrap_medians(x, n_boot, seed, statistic)
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(boot))):
        raise ValueError("a seed's median (or a bootstrap draw of it) is not finite: most of its values are bounds")
    sigma = np.cov(boot, rowvar=False)
    v, c = float(np.mean(np.diag(sigma))), float((sigma.sum() - np.trace(sigma)) / (k * (k - 1)))
    s2 = float(np.var(y, ddof=1))
    var = max(s2 / k + c, sigma.sum() / k ** 2)
    if not var > 0:
        raise ValueError("the per-image values vary neither between images nor between seeds: no standard error")
    se = float(np.sqrt(var))
    mu = float(np.mean(y))
    # Satterthwaite's df: only the spread term S^2 / k is estimated from k - 1 df (the bootstrap's c from many images)
    df = float(min(1e6, (k - 1) * var ** 2 / (s2 / k) ** 2)) if s2 > 0 else 1e6
    dist = sps.t(df)
    crit = float(dist.isf(alpha / 2))
    tau2_upper = max(0.0, s2 * (k - 1) / float(sps.chi2.ppf(alpha, k - 1)) - (v - c))
    return {"effect": mu, "se": se, "ci_low": mu - crit * se, "ci_high": mu + crit * se, "tau2": max(0.0, s2 - (v - c)),
            "tau2_upper": tau2_upper, "rho": c / v if v > 0 else np.nan, "k": k, "n_images": n, "dist": dist, "df": df,
            "method": "shared images", "hksj": True, "i2": np.nan, "q": np.nan, "q_p": np.nan}


def shared_values(seed_rows: list[verdicts.Row]):
    """The images x seeds matrix of the seeds' per-image point values (lib.inference.verdicts.Row.per_image: an exact
    value as it is, a one-sided bound at its open end), on the images every seed measured; None where a row has no
    per-image values or an image's interval is open on both sides."""
    if any(r.per_image is None for r in seed_rows):
        return None
    cols = []
    for r in seed_rows:
        low, high = r.per_image
        point = np.where(low == high, low, np.where(np.isfinite(low), np.inf, np.where(np.isfinite(high), -np.inf,
                                                                                           np.nan)))
        cols.append(pd.Series(point, index=low.index))
    m = pd.concat(cols, axis=1, join="inner").dropna()
    return m.to_numpy(float) if len(m) >= 2 else None


def pooled_tests(p: dict, predicted: str, margin: float) -> tuple[float, float]:
    """One-sided p of the pooled test of no effect toward ``predicted``, and of the test against the margin
    (H0: the effect lies at most ``margin`` beyond 0 on the predicted side)."""
    s = 1 if predicted == "greater" else -1
    return (float(p["dist"].sf(s * p["effect"] / p["se"])),
            float(p["dist"].sf((s * p["effect"] - margin) / p["se"])))


def equivalence_test(p: dict, margin: float) -> float:
    """p of the pooled two one-sided tests (TOST) of H0 "the effect lies outside +-margin": the larger of the tests
    of effect <= -margin and of effect >= +margin, on the pooled effect's reference distribution."""
    return float(max(p["dist"].sf((p["effect"] + margin) / p["se"]), p["dist"].sf((margin - p["effect"]) / p["se"])))


def _power_equivalence(p: dict, margin: float):
    """Power of the pooled TOST at level a where the true effect is 0 (the equivalence holds exactly), the pooled
    standard error as measured, and the seeds it would need for 80%; normal approximation."""
    delta = margin / p["se"]

    def at(a):
        z_a = float(sps.norm.isf(a))
        power = max(0.0, 2 * float(sps.norm.cdf(delta - z_a)) - 1)
        z_b = float(sps.norm.isf(0.1))  # each one-sided test at 90% power: both at about 80%
        needed = max(2.0, float(np.ceil(p["k"] * ((z_a + z_b) / delta) ** 2)))
        return power_lib.Power(d=float(delta), n=p["k"], power=power, n_needed=needed)
    return at


def _power(p: dict, predicted: str, margin: float, effect: float):
    """Power of the test against the margin at level a where the pooled effect is ``effect`` (what DMM predicts), the
    pooled standard error as measured, and the seeds it would need for 80% (the standard error shrinking as
    1 / sqrt(seeds), between-seed variance included); normal approximation."""
    s = 1 if predicted == "greater" else -1
    delta = (s * effect - margin) / p["se"]

    def at(a):
        z_a = float(sps.norm.isf(a))
        power = float(sps.norm.sf(z_a - delta))
        needed = max(2.0, float(np.ceil(p["k"] * ((z_a + sps.norm.isf(0.2)) / delta) ** 2))) if delta > 0 else np.nan
        return power_lib.Power(d=float(delta), n=p["k"], power=power, n_needed=float(needed))
    return at


def pooled_row(seed_rows: list[verdicts.Row], label: str, method: str = "dl", hksj: bool = True,
               alpha: float = 0.05, statistic: str = "median", unit: str = "seeds") -> verdicts.Row:
    """The claim of ``seed_rows`` (one claim, one data set, one Row per seed) pooled over the seeds: a "difference"
    Row with the pooled effect and interval, p and p_margin from the pooled one-sided tests, n = the seeds pooled.

    Where every seed's row carries its per-image values (the same images for every seed), ``pool_shared_images``
    pools them with the images' correlation across seeds (``statistic``: each seed's median, or its mean where the
    rows' effect is a mean, as a difference of paired robust accuracies is); otherwise ``pool``, a meta-analysis
    that takes the seeds
    as independent (``method`` the tau^2 estimator; ``hksj`` the HKSJ t test, else DerSimonian-Laird's z). An
    "equivalence" row pools the same way into an equivalence row: the (1 - 2 alpha) interval and the pooled TOST as
    p_margin (``equivalence_test``), p left NaN. Seeds
    that are not testable or have no finite interval are left out; with fewer than two left, the row is not
    testable. ``unit``: what the rows are, in the pooled row's label ("seeds", "fresh classifiers"). ``notes``
    carry tau^2 (with its upper bound where known), the seeds' correlation, the seeds' effects
    and how many lie on the predicted side."""
    first = seed_rows[0]
    if any((r.claim_id, r.dataset, r.scale, r.predicted, r.kind) != (first.claim_id, first.dataset, first.scale,
                                                                      first.predicted, first.kind) for r in seed_rows):
        raise ValueError("pooled_row pools one claim on one data set")
    equivalence = first.kind == "equivalence"
    level_alpha = 2 * alpha if equivalence else alpha  # an equivalence's (1 - 2 alpha) interval goes with TOST
    s = 1 if first.predicted == "greater" else -1
    ses = [se_from_ci(r.ci_low, r.ci_high, r.ci_level) for r in seed_rows]
    use = [i for i, r in enumerate(seed_rows) if r.testable and np.isfinite(r.effect) and np.isfinite(ses[i])
           and ses[i] > 0]
    on_side = sum(1 for r in seed_rows if np.isfinite(r.effect) and s * r.effect > 0)
    notes = {"seeds": len(seed_rows), "seeds_pooled": len(use), "on_predicted_side": on_side, "series": label,
             "seed_effects": [float(r.effect) for r in seed_rows], "seed_se": ses,
             "seeds_agree_in_sign": on_side in (0, len(seed_rows)) or equivalence}  # an equivalence has no sign
    base = dict(claim_id=first.claim_id, short=f"{first.short} · {len(seed_rows)} {unit} pooled", claim=first.claim,
                dataset=first.dataset, split=first.split, kind=first.kind, scale=first.scale, margin=first.margin,
                predicted=first.predicted, clip=first.clip, null_verdict=first.null_verdict,
                discriminating=first.discriminating, dmm_effect=first.dmm_effect)
    untestable = dict(effect=np.nan, ci_low=np.nan, ci_high=np.nan, p=np.nan, p_margin=np.nan, testable=False)
    if len(use) < 2:
        return verdicts.Row(**base, **untestable, n=len(use),
                            statistic=f"fewer than two seeds with a finite interval ({len(use)})",
                            notes={**notes, "tau2": np.nan, "i2": np.nan})
    shared = shared_values([seed_rows[i] for i in use])
    sided = "" if equivalence else f", one-sided ({first.predicted})"
    left = len(seed_rows) - len(use)
    left_words = f"; {left} seed(s) without a finite interval left out" if left else ""
    if shared is not None:
        try:
            p = pool_shared_images(shared, level_alpha, statistic=statistic)
        except ValueError as err:
            return verdicts.Row(**base, **untestable, n=len(use), statistic=f"not pooled: {err}",
                                notes={**notes, "tau2": np.nan, "i2": np.nan})
        words = (f"mean of {p['k']} seeds' {statistic}s on the same {p['n_images']} images; standard error from the "
                 f"seeds' spread plus their shared-image covariance (bootstrap over images, each image's values "
                 f"across seeds kept together; the seeds' {statistic}s correlate, rho={p['rho']:.2f}); t test with "
                 f"{p['df']:.3g} df (Satterthwaite){sided}; tau²={p['tau2']:.3g} (upper "
                 f"{1 - level_alpha:.0%} bound {p['tau2_upper']:.3g}: {p['k']} seeds cannot rule out a between-seed "
                 f"variance that large)" + left_words)
    else:
        p = pool([seed_rows[i].effect for i in use], [ses[i] for i in use], method, hksj, level_alpha)
        words = (f"random-effects meta-analysis of {p['k']} seeds' {statistic}s taken as independent "
                 f"({METHOD_WORDS[method]}; {'HKSJ t' if hksj else 'z'} test{sided}), "
                 f"tau²={p['tau2']:.3g}, I²={p['i2']:.0%}, Q={p['q']:.3g} (p={p['q_p']:.2g})" + left_words)
    if equivalence:
        p_none, p_margin = np.nan, equivalence_test(p, first.margin)
        words += f"; equivalence: two one-sided t tests at ±{first.margin:.3g} (TOST), {1 - level_alpha:.0%} interval"
        power_at = _power_equivalence(p, first.margin)
    else:
        p_none, p_margin = pooled_tests(p, first.predicted, first.margin)
        effect = first.dmm_effect if np.isfinite(first.dmm_effect) else 2 * s * first.margin
        power_at = _power(p, first.predicted, first.margin, effect)
    return verdicts.Row(**base, effect=p["effect"], ci_low=p["ci_low"], ci_high=p["ci_high"], ci_level=1 - level_alpha,
                        p=p_none, p_margin=p_margin, n=p["k"], statistic=words,
                        notes={**notes, "tau2": p["tau2"], "tau2_upper": p.get("tau2_upper", np.nan),
                               "rho": p.get("rho", np.nan), "i2": p["i2"], "q_p": p["q_p"], "se": p["se"]},
                        power_at=power_at)


def judge(rows: list[verdicts.Row], family: str, alpha: float = stats.ALPHA) -> pd.DataFrame:
    """lib.inference.verdicts.judge on pooled rows, with one check of replication: a row the rule calls *supported*
    although its seeds' effects lie on both sides of no effect is judged again as not robust (so *inconclusive*: another
    network could reverse it). Only "supported" is checked: seeds of both signs are what a null looks like."""
    table = verdicts.judge(rows, family, alpha)
    if not len(table):
        return table
    split = [i for i, (r, v) in enumerate(zip(rows, table["verdict"]))
             if v == Verdict.SUPPORTED and not r.notes.get("seeds_agree_in_sign", True)]
    if split:
        rows = [replace(r, robust_to_failures=False, statistic=r.statistic + "; the seeds disagree in sign")
                if i in split else r for i, r in enumerate(rows)]
        table = verdicts.judge(rows, family, alpha)
    return table
