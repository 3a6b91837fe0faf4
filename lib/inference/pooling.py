"""Random-effects pooling of one claim's effect across independently trained models (training seeds), and the
pooled claim as a lib.inference.verdicts.Row, judged by the report's one rule.

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

Z975 = float(sps.norm.isf(0.025))
METHODS = dict(zip(TAU2_METHODS, ("chi2", "iterated")))  # statsmodels' names of DerSimonian-Laird, Paule-Mandel
METHOD_WORDS = {"dl": "DerSimonian-Laird", "pm": "Paule-Mandel"}


def se_from_ci(lo: float, hi: float, level: float = 0.95) -> float:
    """The standard error a normal interval [lo, hi] at ``level`` implies (NaN where it is not finite)."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return float("nan")
    return float((hi - lo) / (2 * sps.norm.isf((1 - level) / 2)))


def pool(effects, ses, method: str = "dl", hksj: bool = False, alpha: float = 0.05) -> dict:
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


def pooled_tests(p: dict, predicted: str, margin: float) -> tuple[float, float]:
    """One-sided p of the pooled test of no effect toward ``predicted``, and of the test against the margin
    (H0: the effect lies at most ``margin`` beyond 0 on the predicted side)."""
    s = 1 if predicted == "greater" else -1
    return (float(p["dist"].sf(s * p["effect"] / p["se"])),
            float(p["dist"].sf((s * p["effect"] - margin) / p["se"])))


def _power(p: dict, predicted: str, margin: float):
    """Power of the test against the margin at level a, at the pooled effect, and the seeds it would need for 80%
    (the standard error shrinking as 1 / sqrt(seeds), between-seed variance included)."""
    s = 1 if predicted == "greater" else -1
    delta = (s * p["effect"] - margin) / p["se"]

    def at(a):
        z_a = float(sps.norm.isf(a))
        power = float(sps.norm.sf(z_a - delta))
        needed = max(2.0, float(np.ceil(p["k"] * ((z_a + sps.norm.isf(0.2)) / delta) ** 2))) if delta > 0 else np.nan
        return power_lib.Power(d=float(delta), n=p["k"], power=power, n_needed=float(needed))
    return at


def pooled_row(seed_rows: list[verdicts.Row], label: str, method: str = "dl", hksj: bool = False,
               alpha: float = 0.05) -> verdicts.Row:
    """The claim of ``seed_rows`` (one claim, one data set, one Row per seed) pooled over the seeds: a "difference"
    Row with the pooled effect and interval, p and p_margin from the pooled z (or t) tests, n = the seeds pooled.
    Seeds that are not testable or have no finite interval are left out; with fewer than two left, the row is
    not testable. ``notes`` carry tau^2, I^2, the seeds' effects and how many lie on the predicted side."""
    first = seed_rows[0]
    if any((r.claim_id, r.dataset, r.scale, r.predicted) != (first.claim_id, first.dataset, first.scale,
                                                              first.predicted) for r in seed_rows):
        raise ValueError("pooled_row pools one claim on one data set")
    s = 1 if first.predicted == "greater" else -1
    ses = [se_from_ci(r.ci_low, r.ci_high, r.ci_level) for r in seed_rows]
    use = [i for i, r in enumerate(seed_rows) if r.testable and np.isfinite(r.effect) and np.isfinite(ses[i])
           and ses[i] > 0]
    on_side = sum(1 for r in seed_rows if np.isfinite(r.effect) and s * r.effect > 0)
    notes = {"seeds": len(seed_rows), "seeds_pooled": len(use), "on_predicted_side": on_side, "series": label,
             "seed_effects": [float(r.effect) for r in seed_rows], "seed_se": ses,
             "seeds_agree_in_sign": on_side in (0, len(seed_rows))}
    base = dict(claim_id=first.claim_id, short=f"{first.short} · {len(seed_rows)} seeds pooled", claim=first.claim,
                dataset=first.dataset, split=first.split, kind="difference", scale=first.scale, margin=first.margin,
                predicted=first.predicted, clip=first.clip, null_verdict=first.null_verdict,
                discriminating=first.discriminating)
    if len(use) < 2:
        return verdicts.Row(**base, effect=np.nan, ci_low=np.nan, ci_high=np.nan, p=np.nan, p_margin=np.nan,
                            n=len(use), statistic=f"fewer than two seeds with a finite interval ({len(use)})",
                            testable=False, notes={**notes, "tau2": np.nan, "i2": np.nan})
    p = pool([seed_rows[i].effect for i in use], [ses[i] for i in use], method, hksj, alpha)
    p_none, p_margin = pooled_tests(p, first.predicted, first.margin)
    left = len(seed_rows) - len(use)
    statistic = (f"random-effects meta-analysis of {p['k']} seeds' medians ({METHOD_WORDS[method]}; "
                 f"{'HKSJ t' if hksj else 'z'} test, one-sided ({first.predicted})), tau²={p['tau2']:.3g}, "
                 f"I²={p['i2']:.0%}, Q={p['q']:.3g} (p={p['q_p']:.2g})"
                 + (f"; {left} seed(s) without a finite interval left out" if left else ""))
    return verdicts.Row(**base, effect=p["effect"], ci_low=p["ci_low"], ci_high=p["ci_high"], ci_level=1 - alpha,
                        p=p_none, p_margin=p_margin, n=p["k"], statistic=statistic,
                        notes={**notes, "tau2": p["tau2"], "i2": p["i2"], "q_p": p["q_p"], "se": p["se"]},
                        power_at=_power(p, first.predicted, first.margin))


def judge(rows: list[verdicts.Row], family: str, alpha: float = stats.ALPHA) -> pd.DataFrame:
    """lib.inference.verdicts.judge on pooled rows, with one check of replication: a row the rule calls *supported* although
    its seeds' effects lie on both sides of no effect is judged again as not robust (so *inconclusive*: another
    network could reverse it). Only "supported" is checked: seeds of both signs are what a null looks like."""
    table = verdicts.judge(rows, family, alpha)
    if not len(table):
        return table
    split = [i for i, (r, v) in enumerate(zip(rows, table["verdict"]))
             if v == "supported" and not r.notes.get("seeds_agree_in_sign", True)]
    if split:
        rows = [replace(r, robust_to_failures=False, statistic=r.statistic + "; the seeds disagree in sign")
                if i in split else r for i, r in enumerate(rows)]
        table = verdicts.judge(rows, family, alpha)
    return table
