"""Per-image attack records: arms, pairing, censoring, per-image effects, summaries.

A record is one attack on one image (lib/experiments/experiment.py writes them): dataset, split, image_id, clip,
condition (unconstrained | on | off), subspace (none | tangent | coordinate | random | pca), k, n, success,
norm, subspace_share, grad_share, class_cosine. An *arm* is a (condition, subspace) pair; arms are paired
within an image (same dataset, split, clip setting and image_id).

Censoring. A failed attack (budget exhausted) did not find a perturbation as short as it was allowed:
its recorded norm is only a lower bound of the norm it needs. So the per-image log ratio
log(norm_a / norm_b) is an interval [low, high]:
  [x, x]            both attacks succeeded: exact,
  [x, +inf]         only a failed (x from a's recorded norm: the ratio is at least that),
  [-inf, x]         only b failed,
  [-inf, +inf]      both failed: nothing is known.
Differences of log ratios are intervals too ([la - hb, ha - lb]). Where an interval contains the null
value the image is *undecided*: lib/inference/stats.py's sign test counts it against the claim (the worst case)
and the median's interval widens as far as the bounds demand; nothing is imputed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lib.inference import stats
from lib.infra.names import CONDITIONS, SUBSPACES

SUBSPACES = ("none",) + SUBSPACES  # the subspace column of a record ("none": the unconstrained attack)
KEYS = ["dataset", "split", "clip", "image_id"]
ON_T, OFF_T, UNC = ("on", "tangent"), ("off", "tangent"), ("unconstrained", "none")


def with_clip(records: pd.DataFrame) -> pd.DataFrame:
    """Records with a boolean ``clip`` column (records written before it existed were all clipped)."""
    if "clip" not in records:
        return records.assign(clip=True)
    if records["clip"].dtype == bool:  # already so: no copy (arm() calls this for every arm it reads)
        return records
    return records.assign(clip=records["clip"].astype(bool))


def as_arm(arm) -> tuple:
    """("on", "tangent") stays; a bare "unconstrained" means ("unconstrained", "none")."""
    arm = (arm, "none") if isinstance(arm, str) else tuple(arm)
    if len(arm) != 2:
        raise ValueError(f"arm {arm!r} must be a (condition, subspace) pair")
    stats.check_choice(arm[0], CONDITIONS, "condition")
    stats.check_choice(arm[1], SUBSPACES, "subspace")
    if (arm[0] == "unconstrained") != (arm[1] == "none"):
        raise ValueError(f"arm {arm!r}: subspace 'none' goes with condition 'unconstrained' only")
    return arm


def arm_label(arm) -> str:
    arm = as_arm(arm)
    return arm[0] if arm[1] == "none" else f"{arm[0]}/{arm[1]}"


def arm(records: pd.DataFrame, which) -> pd.DataFrame:
    """The rows of one arm indexed by image (KEYS), with a boolean ``failed`` column."""
    condition, subspace = as_arm(which)
    rows = with_clip(records)
    rows = rows[(rows["condition"] == condition) & (rows["subspace"] == subspace)].set_index(KEYS)
    if rows.empty:
        raise LookupError(f"no records for arm {which!r}")
    if rows.index.has_duplicates:
        raise ValueError(f"arm {which!r} has more than one row per image")
    failed = ~rows["success"].astype(bool)
    if not (rows.loc[~failed, "norm"] > 0).all():
        raise ValueError(f"arm {which!r}: norms of successful attacks must be > 0")
    return rows.assign(failed=failed)


@dataclass
class Effect:
    """Per-image values of one effect as intervals [low, high] (log ratios or differences), images as index.
    An exact value has low == high; a censored one is bounded on one side (or neither: both attacks failed).
    NaN is missing (e.g. a failed attack has no class cosine)."""
    label: str
    low: pd.Series
    high: pd.Series
    failures: dict = field(default_factory=dict)   # arm label -> failed attacks among the paired images

    @property
    def complete(self) -> np.ndarray:
        """Exact values: images where every attack involved succeeded."""
        exact = (self.low == self.high) & np.isfinite(self.low)
        return self.low[exact].to_numpy(float)

    @property
    def n(self) -> int:
        """Images with a value or an interval (missing ones left out)."""
        return int((self.low.notna() & self.high.notna()).sum())

    @property
    def n_censored(self) -> int:
        return int((self.low < self.high).sum())

    def undecided(self, null: float = 0.0) -> int:
        """Images whose interval contains ``null``: which side they lie on is not known."""
        return int(((self.low <= null) & (self.high >= null) & (self.low < self.high)).sum())

    def shifted(self, by: float) -> "Effect":
        return Effect(self.label, self.low - by, self.high - by, self.failures)


def _log_ratio_bounds(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Bounds of log(true norm_a / true norm_b): a failed attack's recorded norm is a lower bound of its true norm."""
    p = a[["norm", "failed"]].add_suffix("_a").join(b[["norm", "failed"]].add_suffix("_b"), how="inner")
    with np.errstate(divide="ignore"):
        x = np.log(p["norm_a"].astype(float)) - np.log(p["norm_b"].astype(float))
    low = x.where(~p["failed_b"], -np.inf)   # b failed: b may be longer, the ratio smaller
    high = x.where(~p["failed_a"], np.inf)   # a failed: a may be longer, the ratio larger
    low[p["failed_a"] & p["failed_b"]] = -np.inf
    return low, high


def log_ratio(records: pd.DataFrame, a, b) -> Effect:
    """Per image log(norm_a / norm_b), as an interval where an attack failed (module docstring)."""
    ra, rb = arm(records, a), arm(records, b)
    low, high = _log_ratio_bounds(ra, rb)
    idx = low.index
    return Effect(f"{arm_label(a)} / {arm_label(b)}", low, high,
                  {arm_label(a): int(ra.loc[idx, "failed"].sum()), arm_label(b): int(rb.loc[idx, "failed"].sum())})


def gap(records: pd.DataFrame, subspace_a: str = "tangent", subspace_b: str = "random") -> Effect:
    """Per image log(on_a / off_a) - log(on_b / off_b): how much larger subspace a's on/off gap is than
    subspace b's; interval arithmetic on censored terms ([la - hb, ha - lb])."""
    ga, gb = log_ratio(records, ("on", subspace_a), ("off", subspace_a)), \
        log_ratio(records, ("on", subspace_b), ("off", subspace_b))
    idx = ga.low.index.intersection(gb.low.index)
    with np.errstate(invalid="ignore"):
        low = ga.low[idx] - gb.high[idx]
        high = ga.high[idx] - gb.low[idx]
    return Effect(f"on/off {subspace_a} vs on/off {subspace_b}", low, high, {**ga.failures, **gb.failures})


def difference(records: pd.DataFrame, a, b, column: str = "class_cosine", bounds: tuple = (-1.0, 1.0)) -> Effect:
    """Per image column[a] - column[b] (e.g. class cosines). A failed attack reached no target class and has no
    value: its value is only known to lie in ``bounds`` (a cosine's [-1, 1]), so the difference is an interval
    (interval arithmetic), undecided where it contains 0; nothing is dropped."""
    ra, rb = arm(records, a), arm(records, b)
    va, vb = ra[column].astype(float).align(rb[column].astype(float), join="inner")
    fa, fb = ra.loc[va.index, "failed"], rb.loc[vb.index, "failed"]
    if (va[~fa].isna().any() or vb[~fb].isna().any()):
        raise ValueError(f"{column}: a successful attack without a value")
    lo_b, hi_b = bounds
    low = va.where(~fa, lo_b) - vb.where(~fb, hi_b)
    high = va.where(~fa, hi_b) - vb.where(~fb, lo_b)
    return Effect(f"{column}: {arm_label(a)} - {arm_label(b)}", low, high,
                  {arm_label(a): int(fa.sum()), arm_label(b): int(fb.sum())})


def share_log_ratio(records: pd.DataFrame, subspace_a: str = "tangent", subspace_b: str = "random") -> Effect:
    """Per image log(grad_share_a / grad_share_b): the gradient energy at the clean image in subspace a
    relative to subspace b (from the "on" rows; no attack involved, so nothing is censored)."""
    sa, sb = (arm(records, ("on", s))["grad_share"].astype(float) for s in (subspace_a, subspace_b))
    sa, sb = sa.align(sb, join="inner")
    if ((sa < 0) | (sa > 1 + 1e-9) | (sb < 0) | (sb > 1 + 1e-9)).any():
        raise ValueError("grad_share must lie in [0, 1]")
    d = np.log(np.maximum(sa, 1e-300) / np.maximum(sb, 1e-300))
    return Effect(f"gradient share: {subspace_a} / {subspace_b}", d, d)


def failure_rate(records: pd.DataFrame, which) -> float:
    return float(arm(records, which)["failed"].mean())


def dimensions(records: pd.DataFrame, subspace: str = "tangent") -> tuple[int, int]:
    """(k, n) of a subspace's records (one value each, or a ValueError)."""
    r = arm(records, ("on", subspace))
    ks, ns = r["k"].unique(), r["n"].unique()
    if len(ks) != 1 or len(ns) != 1:
        raise ValueError(f"{subspace}: records hold several k {list(ks)} or n {list(ns)}")
    return int(ks[0]), int(ns[0])


# ---------------------------------------------------------------- which records are compared

RECORD_KEYS = ["dataset", "split", "clip", "image_id", "condition", "subspace", "k"]


def same_k_records(frames, tangent_k: dict | None = None, datasets=None, splits=None):
    """The records the verdicts compare: per data set the unconstrained rows and every subspace row at the
    tangent space's k. ``tangent_k`` ({dataset: k}, e.g. notebook 03's latent dimensions) says which k that
    is; without it, the k of the first frame's tangent rows. A row held by several frames is kept once,
    from the first. Returns (records, notes): notes are strings for the reader."""
    frames = [with_clip(f) for f in frames if f is not None and len(f)]
    if not frames:
        return pd.DataFrame(columns=RECORD_KEYS + ["n", "norm", "success"]), ["no records"]
    notes, tangent_k = [], dict(tangent_k or {})
    if not tangent_k:
        for ds, ks in frames[0][frames[0]["subspace"] == "tangent"].groupby("dataset")["k"]:
            if ks.nunique() > 1:
                raise ValueError(f"{ds}: the first frame holds tangent rows at several k {sorted(ks.unique())}")
            tangent_k[ds] = int(ks.iloc[0])
    df = pd.concat([f.assign(_frame=i) for i, f in enumerate(frames)], ignore_index=True)
    if datasets is not None:
        df = df[df["dataset"].isin(list(datasets))]
    if splits is not None:
        df = df[df["split"].isin(list(splits))]
    df = df[(df["subspace"] == "none") | (df["k"] == df["dataset"].map(tangent_k))]
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


# ---------------------------------------------------------------- summaries for the notebooks

def failure_counts(records: pd.DataFrame) -> pd.DataFrame:
    """Attacks, failures, success rate and median subspace share (leakage) per data set, split, clip, arm."""
    r = with_clip(records).assign(failed=lambda d: ~d["success"].astype(bool))
    g = r.groupby(["dataset", "split", "clip", "condition", "subspace", "k"])
    out = g.agg(n=("failed", "size"), n_fail=("failed", "sum"), subspace_share=("subspace_share", "median")) \
        if "subspace_share" in r else g.agg(n=("failed", "size"), n_fail=("failed", "sum"))
    out = out.reset_index()
    out["success_rate"] = 1 - out["n_fail"] / out["n"]
    return out


def median_norm(records: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per data set, split, clip and attack: N, success rate, median norm with a distribution-free CI, median
    subspace and gradient shares. Failures count as infinite norms (above every recorded one): the median is
    infinite when more than half the attacks failed."""
    rows = []
    for key, r in with_clip(records).groupby(["dataset", "split", "clip", "condition", "subspace"], sort=False):
        ok = r["success"].to_numpy(bool)
        logs = np.log(np.maximum(r["norm"].to_numpy(float), 1e-300))
        med, lo, hi = stats.median_ci(logs, level, np.where(ok, logs, np.inf))
        rows.append(
            {
                **dict(zip(["dataset", "split", "clip", "condition", "subspace"], key)),
                "k": int(r["k"].iloc[0]),
                "n": int(r["n"].iloc[0]),
                "N": len(r),
                "success rate": r["success"].mean(),
                "median norm": np.exp(med),
                "CI low": np.exp(lo),
                "CI high": np.exp(hi),
                "median subspace share": r["subspace_share"].median() if "subspace_share" in r else np.nan,
                "median gradient share": r["grad_share"].median() if "grad_share" in r else np.nan,
            }
        )
    return pd.DataFrame(rows)


def ratio_summary(records: pd.DataFrame, a, b, level: float = 0.95) -> dict:
    """Median per-image norm ratio a / b with its distribution-free CI; a failed attack bounds its ratio (see
    the module docstring), ``censored`` counts the images with a failure."""
    e = log_ratio(records, a, b)
    med, lo, hi = stats.median_ci(e.low, level, e.high)
    return {"N pairs": e.n, "censored": e.n_censored,
            "failed": " / ".join(str(v) for v in e.failures.values()),
            "median ratio": np.exp(med), "CI low": np.exp(lo), "CI high": np.exp(hi)}


def on_off_summary(records: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Per data set, clip setting and subspace of one split: the median on/off norm ratio with its
    distribution-free 95% CI (``ratio_summary``), k, n, and the flat-boundary median for a random subspace
    of that k. The numbers behind the report's first figure."""
    rows = []
    r = with_clip(records)
    r = r[(r["split"] == split) & (r["subspace"] != "none")]
    for (ds, clip, sub), g in r.groupby(["dataset", "clip", "subspace"], sort=False):
        k, n = dimensions(g, sub)
        rows.append({"dataset": ds, "clip": bool(clip), "subspace": sub, "k": k, "n": n,
                     **ratio_summary(g, ("on", sub), ("off", sub)), "flat boundary": stats.flat_boundary_median(k, n)})
    order = {s: i for i, s in enumerate(SUBSPACES)}
    out = pd.DataFrame(rows)
    return out.sort_values(["dataset", "clip", "subspace"], key=lambda c: c.map(order) if c.name == "subspace" else c,
                           ascending=[True, False, True], kind="stable").reset_index(drop=True) if len(out) else out


def mixed_model(records: pd.DataFrame):
    """Descriptive only: a linear mixed model (statsmodels MixedLM) of log norm ~ arm (+ dataset, split when
    several) with a random intercept per image, fitted to *successful* attacks. Dropping failures is
    informative censoring (the hardest images drop out of the hardest arms), so its coefficients are biased
    toward small norms and enter no verdict. Returns (formula, fixed-effects table, fit)."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    df = with_clip(records)
    df = df[df["success"].astype(bool) & df["clip"]]
    arm_name = np.where(df["subspace"] == "none", df["condition"], df["condition"] + "_" + df["subspace"])
    levels = ["unconstrained"] * ("unconstrained" in arm_name) + sorted(set(arm_name) - {"unconstrained"})
    df = df.assign(log_norm=np.log(df["norm"].astype(float)), arm=pd.Categorical(arm_name, categories=levels),
                   group=df[KEYS].astype(str).agg("/".join, axis=1))
    formula = "log_norm ~ arm" + " + dataset" * (df["dataset"].nunique() > 1) + " + split" * (df["split"].nunique() > 1)
    fit = MixedLM.from_formula(formula, df, groups=df["group"]).fit(reml=True)
    fe = list(fit.fe_params.index)
    ci = fit.conf_int().loc[fe]
    table = pd.DataFrame({"coef": fit.fe_params, "se": fit.bse[fe], "ci_low": ci[0], "ci_high": ci[1]})
    table["ratio"] = np.exp(table["coef"])
    return formula, table.rename_axis("term").reset_index(), fit
