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


# ---------------------------------------------------------------- notebook 05: every claim, one verdict table

ON_T, OFF_T, UNC = ("on", "tangent"), ("off", "tangent"), ("unconstrained", "none")
RECORD_KEYS = KEYS + ["condition", "subspace", "k"]


def same_k_records(frames, datasets=None, splits=None):
    """The records of notebooks 03 and 04 that the verdicts compare: per data set the unconstrained rows
    and every subspace row whose k is the learned tangent space's k (the same-k comparison). A row held by
    several frames (03 and 04 share their tangent attacks) is kept once, from the first frame.

    The tangent k of a data set is that of its tangent rows in the first frame holding any (notebook 03,
    the main autoencoder; 04 also holds a second autoencoder's tangent space, at another k); where that
    frame has several, the k with the most rows. Returns (records, notes): notes are strings for the
    reader, e.g. duplicated rows whose norms disagree."""
    frames = [f for f in frames if f is not None and len(f)]
    if not frames:
        return pd.DataFrame(columns=RECORD_KEYS + ["norm", "success"]), ["no records"]
    notes, tangent_k = [], {}
    for f in frames:
        t = f[f["subspace"] == "tangent"]
        for ds, ks in t.groupby("dataset")["k"]:
            tangent_k.setdefault(ds, int(ks.value_counts().idxmax()))
    df = pd.concat([f.assign(_frame=i) for i, f in enumerate(frames)], ignore_index=True)
    if datasets is not None:
        df = df[df["dataset"].isin(list(datasets))]
    if splits is not None:
        df = df[df["split"].isin(list(splits))]
    k_of = df["dataset"].map(tangent_k)
    df = df[(df["subspace"] == "none") | (df["k"] == k_of)]
    dup = df.duplicated(RECORD_KEYS, keep=False)
    if dup.any():
        spread = df[dup].groupby(RECORD_KEYS).agg(norms=("norm", "nunique"), ok=("success", "nunique"))
        bad = int(((spread["norms"] > 1) | (spread["ok"] > 1)).sum())
        if bad:
            notes.append(f"{bad} attacks recorded by both notebooks with different outcomes (different settings "
                         "or a stale file?); the first notebook's are used")
    df = df.sort_values("_frame", kind="stable").drop_duplicates(RECORD_KEYS).drop(columns="_frame")
    for ds in sorted(set(df["dataset"]) - set(tangent_k)):
        notes.append(f"{ds}: no tangent-space records")
    return df.sort_values(RECORD_KEYS, kind="stable").reset_index(drop=True), notes


def gap_log_ratios(records, subspace_a="tangent", subspace_b="random", failure_policy="rank_top"):
    """Per image d = log(on_a/off_a) - log(on_b/off_b), exactly as ``compare_gap`` tests it (one TOP over
    the four arms under "rank_top"; images with any failure dropped under "drop"): for plots."""
    _check(failure_policy, FAILURE_POLICIES, "failure_policy")
    arms = [_arm(records, (c, s)) for s in (subspace_a, subspace_b) for c in ("on", "off")]
    top = _top(arms)
    p = _log_ratio(arms[0], arms[1], failure_policy, top).merge(
        _log_ratio(arms[2], arms[3], failure_policy, top), left_index=True, right_index=True, suffixes=("_x", "_y"))
    keep = p["kept_x"] & p["kept_y"]
    p["log_ratio"], p["kept"] = p["log_ratio_x"] - p["log_ratio_y"], keep
    p["any_failed"] = p[["failed_a_x", "failed_b_x", "failed_a_y", "failed_b_y"]].any(axis=1)
    return PairedLogRatios(f"on/off {subspace_a} vs on/off {subspace_b}", failure_policy,
                           p.loc[keep, "log_ratio"].to_numpy(), {"images with a failure": int(p["any_failed"].sum())}, p)


def paired_difference(records, a, b, column="class_cosine") -> PairedLogRatios:
    """Per-image difference column[a] - column[b] of two arms paired by image (e.g. the class cosine of the
    on-manifold and the off-manifold perturbation). Images where either value is NaN (a failed attack has no
    adversarial class, so no class cosine) are left out; ``n_fail`` counts them per arm. The result goes
    into ``paired_tests`` like log-ratios do; its "median ratio" is then exp(median difference)."""
    _arm(records, a), _arm(records, b)  # validates both arms (names, one row per image, records present)

    def col(arm):
        cond, sub = _as_arm(arm)
        rows = records[(records["condition"] == cond) & (records["subspace"] == sub)]
        return rows.set_index(KEYS)[column].astype(float)

    p = col(a).rename("a").to_frame().join(col(b).rename("b"), how="inner")
    p["kept"] = p["a"].notna() & p["b"].notna()
    p["log_ratio"] = p["a"] - p["b"]
    la, lb = _arm_label(a), _arm_label(b)
    return PairedLogRatios(f"{column}: {la} - {lb}", "nan_dropped", p.loc[p["kept"], "log_ratio"].to_numpy(),
                           {la: int(p["a"].isna().sum()), lb: int(p["b"].isna().sum())}, p)


def n_for_power(power_at, target: float = 0.8, n_min: int = 2, n_max: int = 10**7) -> float:
    """The smallest n >= n_min with power_at(n) >= target, for a power increasing in n (doubling, then
    bisection); inf when even n_max falls short. Unlike a root finder it cannot fail for large effects,
    where the answer is a handful of images."""
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


def n_needed_paired(log_ratios, alternative: str = "two-sided", alpha: float = ALPHA, target: float = 0.8) -> float:
    """Images for ``target`` power of the paired t test at the observed d (as ``power_paired``, whose root
    finder returns NaN when the answer is below ~10 images), and at least the smallest N at which the
    Wilcoxon signed-rank test can reach alpha at all (5 one-sided, 6 two-sided at 0.05): inf when d is 0 or
    on the wrong side."""
    pw = power_paired(log_ratios, alpha, alternative, target)
    if np.isnan(pw.d):
        return np.nan
    eff = {"two-sided": abs(pw.d), "greater": pw.d, "less": -pw.d}[alternative]
    if eff <= 1e-3:
        return np.inf
    alt = "two-sided" if alternative == "two-sided" else "larger"
    rank_min = int(np.ceil(np.log2((2 if alternative == "two-sided" else 1) / alpha) + 1e-9))
    return max(float(rank_min), n_for_power(lambda n: TTestPower().power(eff, n, alpha, alternative=alt), target))


def power_tost_paired(log_ratios, margin: float = np.log(1.1), alpha: float = ALPHA,
                      target: float = 0.8) -> PowerResult:
    """Power of the paired TOST within +-margin (log scale) at the observed mean m and sd s (normal
    approximation, t critical value): Phi((margin - m)/se - t) + Phi((margin + m)/se - t) - 1, floored at 0;
    and the number of images for ``target`` power at the same m and s (inf when |m| >= margin)."""
    x = np.asarray(getattr(log_ratios, "values", log_ratios), dtype=float)
    if len(x) < 3 or np.std(x, ddof=1) == 0:
        return PowerResult(np.nan, len(x), alpha, "equivalence", np.nan, np.nan)
    m, s = float(x.mean()), float(x.std(ddof=1))

    def power(n):
        se, t = s / np.sqrt(n), sps.t.ppf(1 - alpha, n - 1)
        return float(max(0.0, sps.norm.cdf((margin - abs(m)) / se - t) + sps.norm.cdf((margin + abs(m)) / se - t) - 1))

    n_needed = n_for_power(power, target, n_min=3) if abs(m) < margin else np.inf
    return PowerResult(m / s, len(x), alpha, "equivalence", power(len(x)), n_needed)


@dataclass
class SplitTestResult:
    """Mann-Whitney test of H0: the per-image log-ratio has the same distribution in two splits (unpaired:
    different images). Effect: Hodges-Lehmann shift (median of all pairwise differences) as a ratio of
    ratios, split a over split b, with its distribution-free (Moses) 95% CI. Power: two-sample t test to
    detect a difference as large as the margin, at the observed sd of log-ratios of images without failures."""
    label: str
    splits: tuple
    n: tuple
    n_fail: dict
    u_stat: float
    p: float
    ratio: float
    ratio_ci: tuple
    margin: float
    power: float
    n_needed: float   # images per split for 80% power against the margin


def _moses_ci(x, y, level=0.95):
    """Hodges-Lehmann shift of x over y and its Moses CI (normal approximation to the U distribution)."""
    d = np.sort(np.subtract.outer(np.asarray(x, float), np.asarray(y, float)).ravel())
    n1, n2 = len(x), len(y)
    c = int(np.floor(n1 * n2 / 2 - sps.norm.ppf(0.5 + level / 2) * np.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)))
    if c < 1:
        return float(np.median(d)), np.nan, np.nan
    return float(np.median(d)), float(d[c - 1]), float(d[len(d) - c])


def split_difference(records, a=ON_T, b=OFF_T, splits=("train", "test"), failure_policy: str = "rank_top",
                     margin: float = 1.1, alpha: float = ALPHA, target: float = 0.8) -> SplitTestResult:
    """Does log(norm_a / norm_b) differ between two splits? Mann-Whitney U (scipy, two-sided).

    "rank_top": a failure in arm a is tied at the top of both splits, one in arm b at the bottom (both
    failed: 0), so only ranks carry it; "drop": images with any failure are left out. ``margin`` (a ratio)
    is the smallest difference that matters: the precise-null bound of the verdict, and what the power is for."""
    _check(failure_policy, FAILURE_POLICIES, "failure_policy")
    if len(splits) != 2:
        raise ValueError(f"splits must name two splits; got {splits!r}")
    missing = set(splits) - set(records["split"])
    if missing:
        raise ValueError(f"no records for split(s) {sorted(missing)}")
    lr = paired_log_ratio(records[records["split"].isin(splits)], a, b, "drop")
    p = lr.pairs
    ok = ~(p["failed_a"] | p["failed_b"])
    vals = p["log_ratio"].copy()
    if failure_policy == "rank_top":
        big = 1.0 + 2.0 * (float(np.abs(vals[ok]).max()) if ok.any() else 1.0)
        vals[p["failed_a"] & ~p["failed_b"]] = big
        vals[~p["failed_a"] & p["failed_b"]] = -big
        vals[p["failed_a"] & p["failed_b"]] = 0.0
        ok = pd.Series(True, index=p.index)
    split_of = p.index.get_level_values("split")
    xs = [vals[ok & (split_of == s)].to_numpy() for s in splits]
    clean = [p.loc[(split_of == s) & ~(p["failed_a"] | p["failed_b"]), "log_ratio"].to_numpy() for s in splits]
    fails = {s: int((p["failed_a"] | p["failed_b"])[split_of == s].sum()) for s in splits}
    label = f"{_arm_label(a)} vs {_arm_label(b)}: {splits[0]} vs {splits[1]}"
    if min(map(len, xs)) < 3:
        return SplitTestResult(label, tuple(splits), tuple(map(len, xs)), fails, np.nan, np.nan, np.nan,
                               (np.nan, np.nan), margin, np.nan, np.nan)
    u = sps.mannwhitneyu(xs[0], xs[1], alternative="two-sided")
    shift, lo, hi = _moses_ci(xs[0], xs[1])
    power, n_needed = np.nan, np.nan
    if min(map(len, clean)) >= 2:
        sd = np.sqrt(((len(clean[0]) - 1) * clean[0].var(ddof=1) + (len(clean[1]) - 1) * clean[1].var(ddof=1))
                     / (len(clean[0]) + len(clean[1]) - 2))
        if sd > 0:
            from statsmodels.stats.power import TTestIndPower

            es, tp = np.log(margin) / sd, TTestIndPower()
            power = float(tp.power(es, len(xs[0]), alpha, ratio=len(xs[1]) / len(xs[0])))
            n_needed = n_for_power(lambda n: tp.power(es, n, alpha), target)
    return SplitTestResult(label, tuple(splits), tuple(map(len, xs)), fails, float(u.statistic), float(u.pvalue),
                           float(np.exp(shift)), (float(np.exp(lo)), float(np.exp(hi))), margin, power, n_needed)


def split_verdict_row(claim: str, result: SplitTestResult) -> dict:
    """A ``verdict_table`` row for the claim "no difference between the splits": a significant difference in
    either direction refutes it (so "predicted" is set against the observed direction: a significant effect is
    then on the wrong side), and a non-significant one whose CI lies inside [1/margin, margin] supports it."""
    return {"claim": claim, "statistic": f"Mann-Whitney U={result.u_stat:.4g}, two-sided (unpaired, "
                                         f"{result.n[0]} {result.splits[0]} / {result.n[1]} {result.splits[1]} images)",
            "effect": result.ratio, "ci_low": result.ratio_ci[0], "ci_high": result.ratio_ci[1], "ci_level": 0.95,
            "p": result.p, "n": int(sum(result.n)), "power": result.power,
            "predicted": "less" if result.ratio > 1 else "greater", "null_means": "supported", "margin": result.margin}


def arm_contrast(result: MixedModelResult, plus, minus=(), label: str | None = None) -> dict:
    """A sum of arm coefficients of a mixed model without arm interactions, e.g. the tangent space's on/off
    gap over a random subspace's: plus=["on_tangent", "off_random"], minus=["off_tangent", "on_random"].
    Wald z test (the model's covariance of the fixed effects). Returns label, log estimate, se, z, p, 95% CI,
    and the estimate and CI as ratios."""
    fe = list(result.fit.fe_params.index)
    if any(t.startswith("arm[") and ":" in t for t in fe):
        raise ValueError(f"arm contrasts need a formula without arm interactions; got {result.formula!r}")
    w = pd.Series(0.0, index=fe)
    for sign, arms in ((1.0, plus), (-1.0, minus)):
        for arm in arms:
            term = f"arm[T.{arm}]"
            if term in w.index:
                w[term] += sign
            elif arm != "unconstrained":  # the reference arm has no coefficient
                raise ValueError(f"arm {arm!r} is not in the model; its terms: {fe}")
    est = float(w @ result.fit.fe_params)
    se = float(np.sqrt(w @ result.fit.cov_params().loc[fe, fe] @ w))
    z = est / se if se > 0 else np.nan
    p = float(2 * sps.norm.sf(abs(z))) if se > 0 else np.nan
    lo, hi = est - 1.959964 * se, est + 1.959964 * se
    return {"contrast": label or " + ".join(plus) + "".join(f" - {m}" for m in minus), "log_estimate": est,
            "se": se, "z": z, "p": p, "ratio": float(np.exp(est)), "ci_low": float(np.exp(lo)), "ci_high": float(np.exp(hi))}


def pooled_formula(records) -> str:
    """log_norm ~ arm, plus dataset and split where the records hold several: arm effects pooled over them."""
    return "log_norm ~ arm" + " + dataset" * (records["dataset"].nunique() > 1) + " + split" * (records["split"].nunique() > 1)


# The claims, in words a reader understands; short labels for figures.
CLAIMS = {
    "1": ("On-manifold attacks need larger perturbations than off-manifold ones", "1 on > off"),
    "2": ("Off-manifold perturbations are as small as unconstrained ones (equal within the margin)", "2 off ≈ unconstrained"),
    "3": ("The on/off gap is larger for the learned manifold than for a {control} subspace of the same k", "3 gap: tangent > {control}"),
    "4": ("The loss gradient is more perpendicular to the manifold than to a random subspace "
          "(its energy share in the tangent space is below k/n)", "4 gradient share < k/n"),
    "5a": ("On-manifold perturbations point more toward the target class than off-manifold ones "
           "(cosine with the class-mean difference)", "5 class cosine: on > off"),
    "5b": ("On-manifold perturbations point more toward the target class than perturbations in a random "
           "subspace of the same k", "5 class cosine: on > on(random)"),
    "6": ("The on/off gap is the same for training and test images", "6 on/off: train = test"),
}
CONTROL_WORDS = {"random": "random orthonormal", "coordinate": "random coordinate (pixel)", "pca": "PCA (linear manifold)"}


def claim_rows(records, policy: str = "rank_top", controls=("coordinate", "random", "pca"), margin: float = 1.1,
               cosine_margin: float = 0.05, n_boot: int = 2000, seed: int = 0):
    """Every claim's ``verdict_table`` row under one failure policy, per data set and split (claim 6: train vs
    test), from same-k records (``same_k_records``). Directional claims are tested one-sided in DMM's direction.
    Power and the N for 80% power come from the images where no attack failed (under "rank_top" the t test
    sees TOP as a number). "effect_bound" marks rows where over half the images had a failed attack under
    "rank_top": their median is set by TOP, a bound. Claims 4 and 5 involve no failure policy: the gradient is measured at the clean
    image; a failed attack has no class cosine. Returns (rows, skipped): a claim whose records are missing
    (e.g. a control notebook 04 did not run) is listed in ``skipped`` with the reason."""
    _check(policy, FAILURE_POLICIES, "failure_policy")
    rows, skipped = [], []
    fails = lambda nf: ", ".join(f"{k} {v}" for k, v in nf.items())

    def add(cid, ds, split, make, **fmt):
        try:
            row = make()
        except ValueError as err:
            if "no records" not in str(err):
                raise
            skipped.append(f"claim {cid} ({ds}, {split}{', ' + fmt['control'] if fmt else ''}): {err}")
            return
        text, short = CLAIMS[cid]
        row["effect_bound"] = bool(policy == "rank_top" and 2 * row.pop("n_censored", 0) > row["n"])
        rows.append({"claim_id": cid, "short": short.format(**fmt), "dataset": ds, "split": split, "policy": policy,
                     **row, "claim": text.format(**{k: CONTROL_WORDS.get(v, v) for k, v in fmt.items()})})

    def paired(a, b, predicted):
        lr = paired_log_ratio(r, a, b, policy)
        res = paired_tests(lr, predicted, n_boot=n_boot, seed=seed)
        clean = paired_log_ratio(r, a, b, "drop")
        return {**verdict_row("", res, predicted, margin=margin, power=power_paired(clean, alternative=predicted).power),
                "n_needed": n_needed_paired(clean, predicted), "failures": fails(res.n_fail),
                "n_censored": int((lr.pairs["failed_a"] | lr.pairs["failed_b"]).sum())}

    def equivalent(a, b):
        lr = paired_log_ratio(r, a, b, policy)
        res = tost_paired(lr, np.log(margin))
        pw = power_tost_paired(paired_log_ratio(r, a, b, "drop"), np.log(margin))
        return {**verdict_row("", res, "equivalent", power=pw.power), "n_needed": pw.n_needed, "failures": fails(lr.n_fail),
                "n_censored": int((lr.pairs["failed_a"] | lr.pairs["failed_b"]).sum())}

    def gap(control):
        res = compare_gap(r, "tangent", control, "greater", policy, n_boot=n_boot, seed=seed)
        clean = gap_log_ratios(r, "tangent", control, "drop")
        return {**verdict_row("", res, "greater", "explained by dimension alone", margin,
                              power_paired(clean, alternative="greater").power),
                "n_needed": n_needed_paired(clean, "greater"), "failures": fails(res.n_fail),
                "n_censored": int(clean.pairs["any_failed"].sum())}

    def share():
        on = r[(r["condition"] == "on") & (r["subspace"] == "tangent")]
        if on.empty:
            raise ValueError("no records for arm ('on', 'tangent')")
        res = one_sample_share_test(on["grad_share"], on["k"], on["n"], n_boot=n_boot, seed=seed)
        x = np.log(np.maximum(on["grad_share"].to_numpy(float), 1e-12) / (on["k"] / on["n"]).to_numpy(float))
        return {**verdict_row("", res, "less", margin=margin), "n_needed": n_needed_paired(x[~np.isnan(x)], "less"),
                "failures": "none involved (clean image)"}

    def cosine(a, b):
        lr = paired_difference(r, a, b, "class_cosine")
        res = paired_tests(lr, "greater", n_boot=n_boot, seed=seed)
        return {**verdict_row("", res, "greater", margin=float(np.exp(cosine_margin))), "scale": "difference",
                "n_needed": n_needed_paired(lr, "greater"), "failures": "no cosine (failed): " + fails(lr.n_fail)}

    def splits_row(rr):
        res = split_difference(rr, ON_T, OFF_T, ("train", "test"), policy, margin)
        return {**split_verdict_row("", res), "n_needed": res.n_needed, "failures": fails(res.n_fail),
                "n_censored": sum(res.n_fail.values())}

    for ds in sorted(records["dataset"].unique()):
        rd = records[records["dataset"] == ds]
        for split in [s for s in ("test", "train") if s in set(rd["split"])] + \
                     sorted(set(rd["split"]) - {"test", "train"}):
            r = rd[rd["split"] == split]
            add("1", ds, split, lambda: paired(ON_T, OFF_T, "greater"))
            add("2", ds, split, lambda: equivalent(OFF_T, UNC))
            for c in controls:
                add("3", ds, split, lambda: gap(c), control=c)
            add("4", ds, split, share)
            add("5a", ds, split, lambda: cosine(ON_T, OFF_T))
            add("5b", ds, split, lambda: cosine(ON_T, ("on", "random")))
        if {"train", "test"} <= set(rd["split"]):
            add("6", ds, "train vs test", lambda: splits_row(rd))
    return rows, skipped


def verdicts(rows, alpha: float = ALPHA) -> pd.DataFrame:
    """``verdict_table`` (Holm over all rows) keeping the rows' other keys (dataset, split, claim_id, ...), with
    two additions:
      - rows with "scale": "difference" (e.g. of cosines) enter ``verdict_table`` on the exp scale (effect
        exp(median difference), margin exp(margin)) and are shown as differences;
      - a directional claim that is not significant but whose CI lies entirely on the wrong side of 1 (the
        data exclude the predicted direction) is "not supported" rather than "inconclusive": a one-sided p
        cannot see an effect in the other direction, its CI can. (Not for "no difference" claims, whose
        "predicted" side is only a device of ``split_verdict_row``.)"""
    rows = list(rows)
    if not rows:
        return pd.DataFrame(columns=["claim", "statistic", "effect_text", "effect", "ci_low", "ci_high", "p_raw",
                                     "p_holm", "n", "power", "verdict"])
    src = pd.DataFrame(rows)
    t = verdict_table(rows, alpha)
    wrong = ((src["predicted"] == "greater") & (t["ci_high"] < 1)) | ((src["predicted"] == "less") & (t["ci_low"] > 1))
    wrong &= src["null_means"] != "supported"  # "no difference" claims (split_verdict_row): only a Holm p refutes them
    t.loc[wrong & (t["verdict"] == "inconclusive"), "verdict"] = "not supported"
    if "scale" in src:
        diff = (src["scale"] == "difference").to_numpy()
        for col in ("effect", "ci_low", "ci_high"):
            t.loc[diff, col] = np.log(t.loc[diff, col].astype(float))
        t.loc[diff, "effect_text"] = [f"Δ {e:+.3g} [{lo:+.3g}, {hi:+.3g}] (95% CI)" for e, lo, hi
                                      in t.loc[diff, ["effect", "ci_low", "ci_high"]].to_numpy()]
    if "effect_bound" in src:  # over half the images hold a failure ranked at the top: the median is TOP's doing
        bound = src["effect_bound"].fillna(False).astype(bool).to_numpy()
        t.loc[bound, "effect_text"] += "; over half the images had a failed attack: a bound, not a size"
    extra = [c for c in src.columns if c not in t.columns and c not in ("p", "ci_level", "predicted", "null_means")]
    return pd.concat([t, src[extra]], axis=1)


def evaluate_claims(records, controls=("coordinate", "random", "pca"), margin: float = 1.1,
                    cosine_margin: float = 0.05, alpha: float = ALPHA, n_boot: int = 2000, seed: int = 0) -> dict:
    """The verdicts under both failure policies, each its own Holm family: {"rank_top": table (main),
    "drop": table (sensitivity), "agreement": one row per claim with both verdicts and whether they agree,
    "skipped": [reasons]}."""
    import warnings

    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    out, skipped = {}, []
    for policy in FAILURE_POLICIES:
        # power_paired's root finder fails noisily for large effects; a failed attack's norm of 0 has log -inf
        # (never used: failures are ranked or dropped)
        with warnings.catch_warnings(), np.errstate(divide="ignore"):
            warnings.simplefilter("ignore", ConvergenceWarning)
            rows, sk = claim_rows(records, policy, controls, margin, cosine_margin, n_boot, seed)
        out[policy] = verdicts(rows, alpha)
        skipped = skipped or sk
    keys = ["claim_id", "short", "dataset", "split"]
    if len(out["rank_top"]):
        agree = out["rank_top"][keys + ["verdict"]].merge(out["drop"][keys + ["verdict"]], on=keys,
                                                          suffixes=(" (rank_top)", " (drop)"))
        agree["agree"] = agree["verdict (rank_top)"] == agree["verdict (drop)"]
        out["rank_top"]["verdict_drop"] = agree["verdict (drop)"].to_numpy()
        out["rank_top"]["agree"] = agree["agree"].to_numpy()
    else:
        agree = pd.DataFrame(columns=keys + ["verdict (rank_top)", "verdict (drop)", "agree"])
    out["agreement"], out["skipped"] = agree, skipped
    return out
