"""Statistics for the DMM report: paired tests on log norms, equivalence, the manifold-vs-random
gap, gradient-share tests, a mixed model across data sets, Holm, power, and the verdict table.

The unit is the image; conditions are paired within an image (same dataset, split, image_id).
An "arm" is a (condition, subspace) pair, e.g. ("on", "tangent") or ("unconstrained", "none").
All effects are ratios of norms, tested on the log scale: log(norm_a / norm_b).

Failed attacks (success == False, budget exhausted) are censored: the true norm is at least the
recorded one. Every paired function takes ``failure_policy``:
  "rank_top"  a failed norm is replaced by TOP = max * (max / min) * 10 over all recorded norms of
              the arms involved, so a failure in arm a gives a log-ratio larger in magnitude than any
              success/success pair: the Wilcoxon ranks it at the top, in the direction censoring
              implies. Only the rank test is meaningful then; the t test and mean CI see TOP as a number.
  "drop"      pairs with any failure are excluded (biased toward small norms; shown for sensitivity).
``policy_sensitivity`` runs a test under both and says whether significance agrees.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.regression.mixed_linear_model import MixedLM
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import DescrStatsW

ALPHA = 0.05
CONDITIONS = ("unconstrained", "on", "off")
SUBSPACES = ("none", "tangent", "coordinate", "random", "pca")
FAILURE_POLICIES = ("rank_top", "drop")
ALTERNATIVES = ("two-sided", "greater", "less")
VERDICTS = ("supported", "not supported", "explained by dimension alone", "inconclusive")
KEYS = ["dataset", "split", "image_id"]
_SM_ALT = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}


def _check(value, allowed, name):
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(map(repr, allowed))}")


def _as_arm(arm) -> tuple:
    """("on", "tangent") stays; a bare "unconstrained" means ("unconstrained", "none")."""
    return (arm, "none") if isinstance(arm, str) else tuple(arm)


def _arm_label(arm) -> str:
    arm = _as_arm(arm)
    return arm[0] if arm[1] == "none" else f"{arm[0]}/{arm[1]}"


# ---------------------------------------------------------------- pairing and censoring

def _arm(records: pd.DataFrame, arm) -> pd.DataFrame:
    """Rows of one (condition, subspace) arm, indexed by image keys, columns norm and failed."""
    arm = _as_arm(arm)
    if len(arm) != 2:
        raise ValueError(f"arm {arm!r} must be a (condition, subspace) pair")
    condition, subspace = arm
    _check(condition, CONDITIONS, "condition")
    _check(subspace, SUBSPACES, "subspace")
    if (condition == "unconstrained") != (subspace == "none"):
        raise ValueError(f"arm {arm!r}: subspace 'none' goes with condition 'unconstrained' only")
    rows = records.loc[(records["condition"] == condition) & (records["subspace"] == subspace),
                       KEYS + ["norm", "success"]].set_index(KEYS)
    if rows.empty:
        raise ValueError(f"no records for arm {arm!r}")
    if rows.index.has_duplicates:
        raise ValueError(f"arm {arm!r} has more than one row per image")
    # a failure's norm is only a lower bound (it may be 0: e.g. k background pixels that clipping holds
    # at 0); failures are ranked at the top or dropped, so only successes need a positive norm
    if not (rows.loc[rows["success"].astype(bool), "norm"] > 0).all():
        raise ValueError(f"arm {arm!r}: norms of successful attacks must be > 0")
    return pd.DataFrame({"norm": rows["norm"].astype(float), "failed": ~rows["success"].astype(bool)})


def _top(arms) -> float:
    """A norm above every recorded one, for failures under rank_top (scaled by the successes' spread)."""
    norms = np.concatenate([a["norm"].to_numpy() for a in arms])
    ok = np.concatenate([a.loc[~(a["failed"] if "failed" in a else ~a["success"].astype(bool)), "norm"].to_numpy()
                         for a in arms])
    spread = ok.max() / ok.min() if len(ok) else 1.0
    return float(max(norms.max(), 1e-12) * spread * 10.0)


def _log_ratio(a: pd.DataFrame, b: pd.DataFrame, policy: str, top: float) -> pd.DataFrame:
    p = a.merge(b, left_index=True, right_index=True, suffixes=("_a", "_b"))
    na = p["norm_a"].where(~p["failed_a"], top) if policy == "rank_top" else p["norm_a"]
    nb = p["norm_b"].where(~p["failed_b"], top) if policy == "rank_top" else p["norm_b"]
    p["log_ratio"] = np.log(na / nb)
    p["kept"] = True if policy == "rank_top" else ~(p["failed_a"] | p["failed_b"])
    return p


@dataclass
class PairedLogRatios:
    """Per-image log(norm_a / norm_b) after the failure policy; ``pairs`` keeps every paired image."""
    label: str
    policy: str
    values: np.ndarray
    n_fail: dict
    pairs: pd.DataFrame = field(repr=False)


def paired_log_ratio(records: pd.DataFrame, a, b, failure_policy: str = "rank_top") -> PairedLogRatios:
    """Pair arms a and b (each (condition, subspace)) by image; return log(norm_a / norm_b).

    n_fail counts failures per arm among the paired images, before any dropping."""
    _check(failure_policy, FAILURE_POLICIES, "failure_policy")
    ra, rb = _arm(records, a), _arm(records, b)
    p = _log_ratio(ra, rb, failure_policy, _top([ra, rb]))
    la, lb = _arm_label(a), _arm_label(b)
    return PairedLogRatios(label=f"{la} vs {lb}", policy=failure_policy,
                           values=p.loc[p["kept"], "log_ratio"].to_numpy(),
                           n_fail={la: int(p["failed_a"].sum()), lb: int(p["failed_b"].sum())},
                           pairs=p)


def failure_counts(records: pd.DataFrame) -> pd.DataFrame:
    """Attacks, failures and success rate per dataset, split, condition and subspace."""
    g = records.assign(failed=~records["success"].astype(bool)) \
        .groupby(["dataset", "split", "condition", "subspace"])["failed"]
    out = g.agg(n="size", n_fail="sum").reset_index()
    out["success_rate"] = 1 - out["n_fail"] / out["n"]
    return out


# ---------------------------------------------------------------- paired tests

def bootstrap_median_ratio(log_ratios, n_boot: int = 2000, seed: int = 0, level: float = 0.95):
    """Median ratio exp(median log-ratio) and its percentile bootstrap CI: (estimate, low, high)."""
    x = np.asarray(getattr(log_ratios, "values", log_ratios), dtype=float)
    if len(x) < 2:
        return (float(np.exp(np.median(x))) if len(x) else np.nan, np.nan, np.nan)
    rng = np.random.default_rng(seed)
    meds = np.concatenate([np.median(x[rng.integers(0, len(x), (c, len(x)))], axis=1)
                           for c in np.diff(np.r_[0:n_boot:250, n_boot])])
    lo, hi = np.quantile(meds, [(1 - level) / 2, (1 + level) / 2])
    return float(np.exp(np.median(x))), float(np.exp(lo)), float(np.exp(hi))


@dataclass
class PairedTestResult:
    """Wilcoxon signed-rank and t test of H0: log-ratio centred on 0, against ``alternative``."""
    label: str
    alternative: str
    policy: str | None
    n: int
    n_fail: dict
    wilcoxon_stat: float
    p_wilcoxon: float
    t_stat: float
    p_t: float
    mean_log: float
    mean_log_ci: tuple
    median_ratio: float
    median_ratio_ci: tuple
    power: float
    n_needed: float

    def summary(self) -> dict:
        return {"label": self.label, "policy": self.policy, "alternative": self.alternative,
                "n": self.n, **{f"n_fail[{k}]": v for k, v in self.n_fail.items()},
                "median_ratio": self.median_ratio, "ci_low": self.median_ratio_ci[0],
                "ci_high": self.median_ratio_ci[1], "p_wilcoxon": self.p_wilcoxon, "p_t": self.p_t}


def paired_tests(log_ratios, alternative: str = "two-sided", n_boot: int = 2000, seed: int = 0,
                 label: str | None = None) -> PairedTestResult:
    """Wilcoxon signed-rank (scipy) and paired t on logs (statsmodels) of H0: no ratio.

    "greater" means arm a needs larger norms than arm b. Effect: median ratio with a bootstrap 95%
    CI, and the mean log-ratio with its two-sided 95% t CI. Fewer than 3 values give NaNs."""
    _check(alternative, ALTERNATIVES, "alternative")
    x = np.asarray(getattr(log_ratios, "values", log_ratios), dtype=float)
    lab = label or getattr(log_ratios, "label", "")
    pol, nf = getattr(log_ratios, "policy", None), getattr(log_ratios, "n_fail", {})
    nan2 = (np.nan, np.nan)
    if len(x) < 3:
        return PairedTestResult(lab, alternative, pol, len(x), nf, np.nan, np.nan, np.nan, np.nan,
                                np.nan, nan2, np.nan, nan2, np.nan, np.nan)
    if np.any(x != 0):
        w = sps.wilcoxon(x, alternative=alternative, zero_method="wilcox")
        w_stat, w_p = float(w.statistic), float(w.pvalue)
    else:
        w_stat, w_p = np.nan, 1.0
    d = DescrStatsW(x)
    with np.errstate(divide="ignore", invalid="ignore"):  # all-equal values: t is NaN
        t_stat, t_p, _ = d.ttest_mean(0.0, alternative=_SM_ALT[alternative])
    med, lo, hi = bootstrap_median_ratio(x, n_boot=n_boot, seed=seed)
    pw = power_paired(x, alternative=alternative)
    return PairedTestResult(lab, alternative, pol, len(x), nf, w_stat, w_p, float(t_stat),
                            float(t_p), float(x.mean()), tuple(map(float, d.tconfint_mean(0.05))),
                            med, (lo, hi), pw.power, pw.n_needed)


@dataclass
class TostResult:
    """Paired TOST: H0 |mean log-ratio| >= margin; p small means equivalent within the margin."""
    label: str
    n: int
    margin: float
    p: float
    p_lower: float
    p_upper: float
    mean_log: float
    ci90: tuple
    ratio: float
    ratio_ci90: tuple
    equivalent: bool


def tost_paired(log_ratios, margin: float = np.log(1.1), alpha: float = ALPHA,
                label: str | None = None) -> TostResult:
    """Equivalence of two arms by two one-sided t tests on the log-ratios (statsmodels ttost_mean).

    Equivalent when p = max of the two one-sided p < alpha, i.e. the 90% CI lies inside +-margin.
    Under "rank_top", a failure makes the CI wide, so failures count against equivalence."""
    x = np.asarray(getattr(log_ratios, "values", log_ratios), dtype=float)
    lab = label or getattr(log_ratios, "label", "")
    if len(x) < 3:
        return TostResult(lab, len(x), margin, np.nan, np.nan, np.nan, np.nan, (np.nan, np.nan),
                          np.nan, (np.nan, np.nan), False)
    d = DescrStatsW(x)
    p, (_, p_low, _), (_, p_upp, _) = d.ttost_mean(-margin, margin)
    ci = tuple(map(float, d.tconfint_mean(2 * alpha)))
    return TostResult(lab, len(x), float(margin), float(p), float(p_low), float(p_upp),
                      float(x.mean()), ci, float(np.exp(x.mean())), tuple(np.exp(ci)),
                      bool(p < alpha))


# ---------------------------------------------------------------- gradient share vs k/n

@dataclass
class ShareTestResult:
    """One-sample tests of log(share / (k/n)) = 0: two-sided, and "less" (DMM's prediction)."""
    expected_share: float
    two_sided: PairedTestResult
    less: PairedTestResult


def one_sample_share_test(grad_share, k, n, n_boot: int = 2000, seed: int = 0,
                          label: str = "gradient share / (k/n)") -> ShareTestResult:
    """Does the subspace capture the k/n share of gradient energy a random subspace would?

    H0: median/mean of log(share / (k/n)) is 0; DMM predicts "less" for the tangent space.
    NaN shares are dropped; k and n may be scalars or per-image arrays; shares of 0 are floored at
    1e-12 (very small, which they are)."""
    share = np.asarray(grad_share, dtype=float)
    kn = np.broadcast_to(np.asarray(k, dtype=float) / np.asarray(n, dtype=float), share.shape)
    ok = ~np.isnan(share)
    share, kn = share[ok], kn[ok]
    if np.any(share < 0) or np.any(share > 1 + 1e-9) or np.any((kn <= 0) | (kn > 1)):
        raise ValueError("grad_share must lie in [0, 1] and 0 < k <= n")
    x = np.log(np.maximum(share, 1e-12) / kn)
    run = lambda alt: paired_tests(x, alt, n_boot=n_boot, seed=seed, label=label)
    return ShareTestResult(float(np.mean(kn)), run("two-sided"), run("less"))


# ---------------------------------------------------------------- THE test: manifold vs random

def compare_gap(records: pd.DataFrame, subspace_a: str = "tangent", subspace_b: str = "random",
                alternative: str = "two-sided", failure_policy: str = "rank_top",
                n_boot: int = 2000, seed: int = 0) -> PairedTestResult:
    """Is the on/off norm ratio different in subspace_a (learned tangent) than in subspace_b
    (random control of the same k)? Per image d = log(on_a/off_a) - log(on_b/off_b), tested with
    Wilcoxon + paired t; effect = median of exp(d), "how many times larger a's gap is".

    H0: no difference: the on/off gap is explained by dimension alone. Only images with all four
    arms are used; "rank_top" uses one TOP value over the four arms, "drop" drops images with any
    failure."""
    _check(failure_policy, FAILURE_POLICIES, "failure_policy")
    arms = [_arm(records, (c, s)) for s in (subspace_a, subspace_b) for c in ("on", "off")]
    top = _top(arms)
    pa = _log_ratio(arms[0], arms[1], failure_policy, top)
    pb = _log_ratio(arms[2], arms[3], failure_policy, top)
    p = pa.merge(pb, left_index=True, right_index=True, suffixes=("_x", "_y"))
    keep = p["kept_x"] & p["kept_y"]
    d = (p["log_ratio_x"] - p["log_ratio_y"])[keep].to_numpy()
    n_fail = {f"on/{subspace_a}": int(p["failed_a_x"].sum()), f"off/{subspace_a}": int(p["failed_b_x"].sum()),
              f"on/{subspace_b}": int(p["failed_a_y"].sum()), f"off/{subspace_b}": int(p["failed_b_y"].sum())}
    lr = PairedLogRatios(f"on/off {subspace_a} vs on/off {subspace_b}", failure_policy, d, n_fail, p)
    return paired_tests(lr, alternative, n_boot=n_boot, seed=seed)


def policy_sensitivity(run, alpha: float = ALPHA) -> pd.DataFrame:
    """Run ``run(failure_policy) -> PairedTestResult`` under every policy; one row each, plus
    ``agree``: whether the Wilcoxon is significant at alpha under all policies alike."""
    df = pd.DataFrame([run(pol).summary() for pol in FAILURE_POLICIES])
    df["significant"] = df["p_wilcoxon"] < alpha
    df["agree"] = df["significant"].nunique() == 1
    return df


# ---------------------------------------------------------------- across data sets

@dataclass
class MixedModelResult:
    formula: str
    policy: str
    n_obs: int
    n_groups: int
    converged: bool
    image_var: float     # variance of the per-image random intercept (log scale)
    resid_var: float     # residual variance (log scale)
    table: pd.DataFrame  # fixed effects: term, coef, se, z, p, ci_low, ci_high, ratio = exp(coef)
    fit: object = field(repr=False)


def mixed_model(records: pd.DataFrame, formula: str | None = None,
                failure_policy: str = "drop") -> MixedModelResult:
    """Linear mixed model (statsmodels MixedLM) of log norm with a random intercept per image
    (group = dataset/split/image_id). ``arm`` = condition[_subspace], reference "unconstrained".

    Default formula: "log_norm ~ arm * dataset" (or "log_norm ~ arm" for one data set); a
    coefficient arm[T.on_tangent] is the log of the on/unconstrained ratio in the reference data
    set. Failures: "drop" removes failed rows, "rank_top" sets them to TOP (a sensitivity check)."""
    _check(failure_policy, FAILURE_POLICIES, "failure_policy")
    df = records.copy()
    failed = ~df["success"].astype(bool)
    if failure_policy == "drop":
        df = df[~failed]
    else:
        df.loc[failed, "norm"] = _top([df])
    arm = np.where(df["subspace"] == "none", df["condition"], df["condition"] + "_" + df["subspace"])
    levels = ["unconstrained"] * ("unconstrained" in arm) + sorted(set(arm) - {"unconstrained"})
    df = df.assign(log_norm=np.log(df["norm"].astype(float)),
                   arm=pd.Categorical(arm, categories=levels),
                   group=df[KEYS].astype(str).agg("/".join, axis=1))
    if formula is None:
        formula = "log_norm ~ arm * dataset" if df["dataset"].nunique() > 1 else "log_norm ~ arm"
    fit = MixedLM.from_formula(formula, df, groups=df["group"]).fit(reml=True)
    fe = list(fit.fe_params.index)
    ci = fit.conf_int().loc[fe]
    table = pd.DataFrame({"coef": fit.fe_params, "se": fit.bse[fe], "z": fit.tvalues[fe],
                          "p": fit.pvalues[fe], "ci_low": ci[0], "ci_high": ci[1]})
    table["ratio"] = np.exp(table["coef"])
    return MixedModelResult(formula, failure_policy, int(fit.nobs), int(df["group"].nunique()),
                            bool(fit.converged), float(fit.cov_re.iloc[0, 0]), float(fit.scale),
                            table.rename_axis("term").reset_index(), fit)


# ---------------------------------------------------------------- multiplicity and power

def holm(pvalues) -> np.ndarray:
    """Holm step-down adjusted p-values (statsmodels multipletests); NaNs stay NaN, out of the family."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


@dataclass
class PowerResult:
    d: float
    n: int
    alpha: float
    alternative: str
    power: float
    n_needed: float


def power_paired(log_ratios, alpha: float = ALPHA, alternative: str = "two-sided",
                 target: float = 0.8) -> PowerResult:
    """Achieved power of the paired t test at the observed d = mean/sd (statsmodels TTestPower),
    and the number of images for ``target`` power (inf when d is 0 or has the wrong sign)."""
    _check(alternative, ALTERNATIVES, "alternative")
    x = np.asarray(getattr(log_ratios, "values", log_ratios), dtype=float)
    if len(x) < 3 or np.std(x, ddof=1) == 0:
        return PowerResult(np.nan, len(x), alpha, alternative, np.nan, np.nan)
    d = float(x.mean() / x.std(ddof=1))
    eff = {"two-sided": abs(d), "greater": d, "less": -d}[alternative]
    alt = "two-sided" if alternative == "two-sided" else "larger"
    tp = TTestPower()
    power = float(tp.power(eff, len(x), alpha, alternative=alt))
    n_needed = np.inf
    if eff > 1e-3:
        try:
            n_needed = float(np.ceil(tp.solve_power(eff, None, alpha, target, alternative=alt)))
        except Exception:  # solver failure: report "unknown" rather than a wrong number
            n_needed = np.nan
    return PowerResult(d, len(x), alpha, alternative, power, n_needed)


# ---------------------------------------------------------------- verdict table

def verdict_row(claim: str, result, predicted: str = "greater", null_means: str = "not supported",
                margin: float = 1.1, power: float | None = None) -> dict:
    """One row for ``verdict_table`` from a PairedTestResult, TostResult or ShareTestResult.

    predicted: "greater"/"less" (effect ratio above/below 1) or "equivalent" (TostResult).
    margin (ratio) defines a precise null; a TostResult brings its own margin.
    null_means: the verdict of a precise null (CI inside [1/margin, margin]); "explained by
    dimension alone" for the manifold-vs-random test, "not supported" otherwise.
    The p used is the Wilcoxon's (the rank test is the one valid under "rank_top")."""
    _check(predicted, ("greater", "less", "equivalent"), "predicted")
    _check(null_means, VERDICTS, "null_means")
    if isinstance(result, ShareTestResult):
        result = result.less if predicted == "less" else result.two_sided
    if isinstance(result, TostResult):
        margin = float(np.exp(result.margin))  # the margin the TOST used, as a ratio
        return {"claim": claim, "statistic": f"TOST (paired t on logs), margin x{margin:.3g}",
                "effect": result.ratio, "ci_low": result.ratio_ci90[0], "ci_high": result.ratio_ci90[1],
                "ci_level": 0.90, "p": result.p, "n": result.n,
                "power": np.nan if power is None else power, "predicted": "equivalent",
                "null_means": null_means, "margin": margin}
    r = result
    return {"claim": claim, "statistic": f"Wilcoxon W={r.wilcoxon_stat:.4g}, {r.alternative}; "
                                         f"paired t={r.t_stat:.3g} (p={r.p_t:.2g})",
            "effect": r.median_ratio, "ci_low": r.median_ratio_ci[0], "ci_high": r.median_ratio_ci[1],
            "ci_level": 0.95, "p": r.p_wilcoxon, "n": r.n, "power": r.power if power is None else power,
            "predicted": predicted, "null_means": null_means, "margin": margin}


def _verdict(row, p_holm, alpha) -> str:
    eff, lo, hi, m = row["effect"], row["ci_low"], row["ci_high"], row.get("margin", 1.1)
    if np.isnan(p_holm):
        return "inconclusive"
    if row["predicted"] == "equivalent":
        if p_holm < alpha:
            return "supported"
        return "not supported" if (lo > m or hi < 1 / m) else "inconclusive"
    if p_holm < alpha:
        right_way = eff > 1 if row["predicted"] == "greater" else eff < 1
        return "supported" if right_way else "not supported"
    return row.get("null_means", "not supported") if (1 / m <= lo and hi <= m) else "inconclusive"


def verdict_table(rows, alpha: float = ALPHA) -> pd.DataFrame:
    """Verdict table: claim, statistic, effect (ratio) with CI as text and numbers, p_raw, p_holm
    (Holm over all rows), n, power, verdict. Rows are dicts, e.g. from ``verdict_row``.

    Verdict, at alpha on p_holm, with effect = ratio of norms (or of shares):
      predicted "equivalent": p_holm < alpha -> supported; CI entirely outside [1/margin, margin]
        -> not supported; else inconclusive.
      predicted "greater"/"less": p_holm < alpha -> supported if the effect lies on the predicted
        side of 1, else not supported; not significant and the CI inside [1/margin, margin] (a
        precise null) -> null_means ("not supported", or "explained by dimension alone" for the
        manifold-vs-random gap); not significant with a wider CI -> inconclusive.
    Power (t test, observed d) is reported beside, not used: at a null effect it is ~alpha by
    construction; the CI says what sizes of effect the data exclude."""
    df = pd.DataFrame(list(rows))
    for col, default in (("ci_level", 0.95), ("power", np.nan), ("margin", 1.1)):
        df[col] = df[col].fillna(default) if col in df else default
    df["p_raw"] = df.pop("p").astype(float)
    df["p_holm"] = holm(df["p_raw"])
    df["verdict"] = [_verdict(r, ph, alpha) for r, ph in zip(df.to_dict("records"), df["p_holm"])]
    df["effect_text"] = [f"{e:.3g} [{lo:.3g}, {hi:.3g}] ({lvl:.0%} CI)" for e, lo, hi, lvl
                         in zip(df["effect"], df["ci_low"], df["ci_high"], df["ci_level"])]
    return df[["claim", "statistic", "effect_text", "effect", "ci_low", "ci_high", "p_raw", "p_holm",
               "n", "power", "verdict"]]
