# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Statistical verdicts
#
# Every claim of the Dimpled Manifold Model (DMM) that notebooks 03 and 04 measured, tested on their per-image
# records and summed up in **one verdict table** (`../shared/science.md`, section 5). The unit is the image; the
# attacks on one image are paired; norms enter as ratios, tested on the log scale.
#
# **The claims.** DMM says the decision boundary clings to the data manifold and dimples around the data, so:
#
# 1. **On-manifold attacks need larger perturbations than off-manifold ones** (per-image on/off norm ratio > 1;
#    one-sided Wilcoxon signed-rank). *Caveat:* confining an attack to *any* k-dimensional subspace lengthens it
#    by about √(n/k), so this alone cannot tell the manifold from dimension.
# 2. **Off-manifold perturbations are as small as unconstrained ones**: off/unconstrained within the stated margin
#    (`tost_margin`, ±10%), tested for *equivalence* by a paired TOST (two one-sided t tests on the log-ratios).
#    A flat boundary predicts the same (√(n/(n−k)) ≈ 1.01 for MNIST's k = 16), so this too is no evidence for a manifold.
# 3. **The on/off gap is larger for the learned manifold than for a random subspace of the same k** — DMM's
#    distinctive prediction and *the* test here. Per image, log(on/off) in the autoencoder's tangent space minus
#    log(on/off) in a control subspace (random orthonormal, random pixels, PCA), one-sided Wilcoxon.
# 4. **The loss gradient is more perpendicular to the manifold than to a random subspace**: the share of the clean
#    image's gradient energy inside the tangent space is below k/n, what a random k-dimensional subspace holds
#    (one-sample Wilcoxon of log(share / (k/n)), alternative "less").
# 5. **On-manifold perturbations carry features of the target class** (DMM's pictures, as a number): the cosine
#    between the perturbation and (mean image of the adversarial class − mean image of the true class) is larger
#    on the manifold than (a) off it and (b) in a random subspace of the same k (paired by image, one-sided Wilcoxon
#    on the differences).
# 6. **Each holds for training and test images alike**: claims 1-5 get a row per split, and the on/off log-ratio
#    of the two splits is compared directly (different images: unpaired Mann-Whitney test).
#
# **What would refute DMM.** Claim 3 decides it. If the tangent space's gap is no larger than a random subspace's of the
# same k — with an interval tight enough to exclude a difference beyond the margin — the on/off gap is *explained by
# dimension alone*. A gradient share at or above k/n (claim 4), or class cosines no larger on the manifold (claim 5),
# would refute DMM's mechanism and its visual claim. Claims 1 and 2 are predicted by DMM *and* by dimension alone:
# their support is expected either way.
#
# **How to read a verdict.** *p (Holm)*: the rank test's p-value, Holm-corrected over every row of the table
# (all claims, data sets and splits: one family).
# * **supported** — Holm p < α and the effect lies on the predicted side (claim 2: equivalent within the margin);
# * **not supported** — a significant effect the other way, a 95% interval that excludes the predicted direction,
#   or a precise null (interval inside the margin) for claims 1, 2, 4, 5; claim 6: a significant difference between splits;
# * **explained by dimension alone** — claim 3 only: no significant difference from the control, and the interval of
#   the gap ratio inside [1/margin, margin];
# * **inconclusive** — none of these: the data are too few to say (the power table says how many images would do).
#
# **Failed attacks** (budget exhausted) are censored: the true norm is at least the recorded one. The main table ranks
# them at the top (`failure_policy="rank_top"`: only the rank tests are valid then); the sensitivity table drops
# images with any failure (`"drop"`, biased toward easy images). Both verdicts stand side by side, with whether they agree.

# %% tags=["parameters"]
profile = "quick"                        # smoke | quick | paper: which settings these are, for the record
datasets = ["mnist", "fashion_mnist"]    # data sets whose records (notebooks 03 and 04) are judged
splits = ["test", "train"]               # splits judged; claim 6 compares train with test when both are here
controls = ["coordinate", "random", "pca"]  # control subspaces of the tangent space's k for claim 3 (notebook 04's names)
tost_margin = 1.1                        # equivalence margin as a ratio, 1.1: within ±10% (claim 2); also the precise-null band of every ratio
cosine_margin = 0.05                     # class-cosine differences within ±0.05 count as no effect (claim 5)
alpha = 0.05                             # family-wise error rate: Holm over every row of the verdict table
n_boot = 2000                            # bootstrap resamples for the 95% intervals of median ratios
seed = 0                                 # seeds the bootstrap

# %%
import json
import warnings

import numpy as np
import pandas as pd
from IPython.display import display

from lib import plots, report, runtime, stats

run = runtime.start("05_statistics", profile, seed, "cpu")
# A failed attack may record a norm of 0 (censored): its log is -inf, and never used (failures are ranked or dropped).
warnings.filterwarnings("ignore", message="divide by zero encountered in log")
if tost_margin <= 1 or cosine_margin <= 0:
    raise ValueError(f"tost_margin must be a ratio > 1 and cosine_margin > 0; got {tost_margin}, {cosine_margin}")
results = report.results_dir(profile)
paths = {nb: results / f"{nb}_records.csv" for nb in ("03", "04")}
missing_files = [str(p) for p in paths.values() if not p.exists()]
if missing_files:
    runtime.show(f"> **No records to judge: run notebooks 03 and 04 first** (`make report` does). "
                 f"Missing: {', '.join(f'`{p}`' for p in missing_files)}.")
    records, notes = stats.same_k_records([])
else:
    records, notes = stats.same_k_records([pd.read_csv(p) for p in paths.values()], datasets, splits)
for note in notes if not missing_files else []:
    runtime.show(f"> {note}")
found = [d for d in datasets if d in set(records["dataset"])]
# Where the data came from, and why a data set is missing: notebook 03's own account.
info03 = results / "03_on_off_manifold_attacks.json"
info03 = json.loads(info03.read_text()) if info03.exists() else {}
data_sources = {d: info03.get("data_sources", {}).get(d, "records of notebooks 03 and 04") for d in found}
unavailable = {d: info03.get("unavailable", {}).get(d, "no records of notebooks 03 and 04 for this data set")
               for d in datasets if d not in found}
for name, message in unavailable.items():
    runtime.show(f"> **{name}: not available** — {message}")

# %% [markdown]
# ## The records
# Rows of notebooks 03 and 04 at the tangent space's dimension k only (04 also attacks in control subspaces at other k;
# those belong to its k sweep, not to the same-k comparison here). Attacks and failures per data set, split and arm:

# %%
if len(records):
    counts = stats.failure_counts(records)
    counts["k"] = [int(records.loc[(records["dataset"] == d) & (records["subspace"] == s), "k"].iloc[0])
                   for d, s in zip(counts["dataset"], counts["subspace"])]
    display(counts.style.format({"success_rate": "{:.1%}"}).hide(axis="index"))

# %% [markdown]
# ## The verdict table
# Failures ranked at the top (main analysis); Holm over all rows. *effect*: the median per-image ratio (claims 1, 3, 4;
# claim 2: the geometric-mean ratio with the TOST's 90% interval; claim 6: the Hodges-Lehmann ratio of the train and test
# on/off ratios) or the median per-image difference of cosines (claim 5, Δ), with a 95% interval. *power*: achieved power
# of the paired t test at the observed effect, on the images where no attack failed (claim 2: of the TOST; claim 6: to detect
# a difference as large as the margin); *N for 80%*: the images that power would need. *verdict (drop)*: the verdict when
# images with a failed attack are dropped instead. Where over half the images had a failed attack, the median is set by the
# failures ranked at the top: the effect says "at least this far in this direction", and the table says so.

# %%
out = stats.evaluate_claims(records, controls, tost_margin, cosine_margin, alpha, n_boot, seed)
main, drop = out["rank_top"], out["drop"]
for reason in out["skipped"]:
    runtime.show(f"> skipped: {reason}")
shown = ["claim", "dataset", "split", "statistic", "effect_text", "p_raw", "p_holm", "n", "power", "n_needed",
         "verdict", "verdict_drop"]
colour = {v: f"background-color: {c}33" for v, c in plots.VERDICT_COLOURS.items()}
if len(main):
    display(main[shown].rename(columns={"effect_text": "effect [CI]", "p_raw": "p (raw)", "p_holm": "p (Holm)",
                                        "n_needed": "N for 80%", "verdict_drop": "verdict (drop)"})
            .style.format({"p (raw)": "{:.2g}", "p (Holm)": "{:.2g}", "power": "{:.2f}", "N for 80%": "{:,.0f}"}, na_rep="–")
            .map(lambda v: colour.get(v, ""), subset=["verdict", "verdict (drop)"]).hide(axis="index"))
    counts_by = main.groupby("dataset")["verdict"].value_counts().unstack(fill_value=0)
    display(counts_by)
else:
    runtime.show("> No verdicts: no records.")

# %%
for name in found:
    plots.verdict_forest(main[main["dataset"] == name], f"{name}: every claim, effect and interval, coloured by verdict",
                         tost_margin, cosine_margin)


# %% [markdown]
# ## Claims 1 and 3: the on/off gap, on the manifold and in random subspaces
# Each line is one image: its on- and off-subspace norms. Claim 1 asks whether the lines fall from "on" to "off" in the
# tangent space; claim 3 whether they fall *more* there than in the control subspaces of the same k beside it.
# Below, the per-image gap ratio (on/off in the tangent space ÷ on/off in the control) with the verdict table's estimate and
# interval; 1 means the learned manifold behaves like a random subspace of its dimension; the grey band is the margin.
# Images with a failed attack cannot be drawn (their ratio is only a bound); where over half of them failed, the table's
# median is itself a bound and no diamond is drawn.

# %%
def row(cid, name, split, short=None):
    """The main verdict row of one claim, data set and split (None if it was not tested)."""
    t = main[(main["claim_id"] == cid) & (main["dataset"] == name) & (main["split"] == split)]
    t = t[t["short"] == short] if short else t
    return t.iloc[0] if len(t) else None


def estimate(r):
    return (np.nan, np.nan, np.nan) if r is None else (r["effect"], r["ci_low"], r["ci_high"])


subs = ["tangent"] + [c for c in controls if c in set(records["subspace"])]
for name in found:
    for split in [s for s in splits if s in set(records.loc[records["dataset"] == name, "split"])]:
        r = records[(records["dataset"] == name) & (records["split"] == split)]
        plots.paired_norms(r, [s for s in subs if s in set(r["subspace"])], f"{name}, {split} images: on vs off per image")
    gaps = {}
    for split in splits:
        r = records[(records["dataset"] == name) & (records["split"] == split)]
        for c in controls:
            v = row("3", name, split, f"3 gap: tangent > {c}")
            if v is not None:
                lr = stats.gap_log_ratios(r, "tangent", c, "drop")
                n_out = int(lr.pairs["any_failed"].sum())
                label = f"tangent ÷ {c} ({split})" + (f"\n{n_out} with a failure not drawn" if n_out else "")
                gaps[label] = (np.exp(lr.values), (np.nan,) * 3 if v["effect_bound"] else estimate(v))
    if gaps:
        plots.effect_strips(gaps, f"{name}: claim 3, per-image gap ratio (dots: images without failures)",
                            "(on/off, tangent) ÷ (on/off, control)", reference=1, band=(1 / tost_margin, tost_margin))

# %% [markdown]
# ## Claim 2: off-manifold against unconstrained
# Per-image off/unconstrained ratios; the diamond and bar are the geometric-mean ratio and the TOST's 90% interval. Equivalence
# holds when the bar lies inside the grey band (±margin).

# %%
for name in found:
    eq = {}
    for split in splits:
        v = row("2", name, split)
        if v is not None:
            r = records[(records["dataset"] == name) & (records["split"] == split)]
            eq[split] = (np.exp(stats.paired_log_ratio(r, stats.OFF_T, stats.UNC, "drop").values), estimate(v))
    if eq:
        plots.effect_strips(eq, f"{name}: claim 2, off-manifold ÷ unconstrained norm", "ratio of norms (per image)",
                            reference=1, band=(1 / tost_margin, tost_margin))

# %% [markdown]
# ## Claim 4: how much of the gradient lies in the tangent space
# The share of the clean image's loss-gradient energy inside each subspace, divided by k/n (what a random subspace holds
# on average). DMM predicts the tangent space holds less (ratio < 1). The controls are shown as a check of the measurement:
# the random subspaces should sit at about 1 (they are not tested here).

# %%
share_rows = []
for name in found:
    sh = {}
    for split in splits:
        r = records[(records["dataset"] == name) & (records["split"] == split) & (records["condition"] == "on")]
        for sub in subs:
            s = r[r["subspace"] == sub]
            if s.empty:
                continue
            ratio = s["grad_share"].to_numpy(float) / (s["k"] / s["n"]).to_numpy(float)
            med, lo, hi = stats.bootstrap_median_ratio(np.log(np.maximum(ratio[~np.isnan(ratio)], 1e-12)), n_boot, seed)
            share_rows.append({"dataset": name, "split": split, "subspace": sub, "k/n": float((s["k"] / s["n"]).iloc[0]),
                               "median share": s["grad_share"].median(), "median share ÷ (k/n)": med,
                               "CI low": lo, "CI high": hi})
            sh[f"{sub} ({split})"] = (ratio, estimate(row("4", name, split)) if sub == "tangent" else (med, lo, hi))
    if sh:
        plots.effect_strips(sh, f"{name}: claim 4, gradient energy share ÷ (k/n)", "‖P g‖² / ‖g‖² ÷ (k/n)  (per image)",
                            reference=1, band=(1 / tost_margin, tost_margin))
if share_rows:
    display(pd.DataFrame(share_rows).style.format({"k/n": "{:.4f}", "median share": "{:.4f}", "median share ÷ (k/n)": "{:.2f}",
                                                   "CI low": "{:.2f}", "CI high": "{:.2f}"}, na_rep="–").hide(axis="index"))

# %% [markdown]
# ## Claim 5: do on-manifold perturbations point toward the target class?
# Per image, the cosine between the perturbation and (mean training image of the class it is pushed into − mean image of its
# true class), on the manifold minus off it, and on the manifold minus in a random subspace of the same k. A failed attack
# has no target class and is left out. Positive differences support DMM's pictures; the grey band is ±`cosine_margin`.

# %%
for name in found:
    cos = {}
    for split in splits:
        r = records[(records["dataset"] == name) & (records["split"] == split)]
        for cid, b, label in (("5a", stats.OFF_T, "on − off, tangent"), ("5b", ("on", "random"), "on tangent − on random")):
            v = row(cid, name, split)
            if v is not None:
                cos[f"{label} ({split})"] = (stats.paired_difference(r, stats.ON_T, b).values, estimate(v))
    if cos:
        plots.effect_strips(cos, f"{name}: claim 5, difference of class cosines", "Δ cos(δ, μ_target − μ_true)  (per image)",
                            log=False, reference=0, band=(-cosine_margin, cosine_margin))

# %% [markdown]
# ## Claim 6: training and test images
# The per-image on/off ratio in the tangent space, per split, with the median and its bootstrap 95% interval (dots: images
# without failures). The verdict row compares the two splits by a Mann-Whitney test; its effect is the Hodges-Lehmann ratio
# of the two splits' ratios.

# %%
for name in found:
    per_split = {}
    for split in splits:
        r = records[(records["dataset"] == name) & (records["split"] == split)]
        if len(r):
            lr = stats.paired_log_ratio(r, stats.ON_T, stats.OFF_T, "rank_top")
            ok = ~(lr.pairs["failed_a"] | lr.pairs["failed_b"]).to_numpy()
            per_split[split] = (np.exp(lr.values[ok]), stats.bootstrap_median_ratio(lr.values, n_boot, seed))
    v = row("6", name, "train vs test")
    if per_split:
        plots.effect_strips(per_split, f"{name}: claim 6, on/off ratio per split"
                            + (f" (train ÷ test: {v['effect_text']}, {v['verdict']})" if v is not None else ""),
                            "on / off norm ratio, tangent space (per image)", reference=1)

# %% [markdown]
# ## Do the verdicts depend on how failures are handled?
# The same claims with images that had a failed attack dropped (a separate Holm family). Below, the verdicts side by side;
# then `stats.policy_sensitivity` for the paired norm tests: the raw Wilcoxon p under each policy and whether
# significance at α agrees.

# %%
if len(main):
    agreement = out["agreement"]
    runtime.show(f"Verdicts agree under both failure policies for **{int(agreement['agree'].sum())} of {len(agreement)}** rows.")
    display(agreement.style.map(lambda v: colour.get(v, ""), subset=["verdict (rank_top)", "verdict (drop)"])
            .map(lambda v: "" if v else "font-weight: bold; color: #c0392b", subset=["agree"]).hide(axis="index"))
    sens = []
    for name in found:
        for split in splits:
            r = records[(records["dataset"] == name) & (records["split"] == split)]
            if r.empty:
                continue
            tests = {"1 on > off": lambda pol: stats.paired_tests(
                stats.paired_log_ratio(r, stats.ON_T, stats.OFF_T, pol), "greater", n_boot=n_boot, seed=seed)}
            tests.update({f"3 gap: tangent > {c}": (lambda pol, c=c: stats.compare_gap(r, "tangent", c, "greater", pol, n_boot, seed))
                          for c in controls if c in set(r["subspace"])})
            for short, fn in tests.items():
                with warnings.catch_warnings():  # power_paired's root finder fails noisily for large effects
                    warnings.simplefilter("ignore")
                    s = stats.policy_sensitivity(fn, alpha)
                fails = s[[c for c in s if c.startswith("n_fail")]]
                s["failures"] = [", ".join(f"{c[7:-1]} {int(v)}" for c, v in r.items() if v > 0) or "none"
                                 for _, r in fails.iterrows()]
                sens.append(s.assign(claim=short, dataset=name, split=split))
    sens = pd.concat(sens, ignore_index=True) if sens else pd.DataFrame()
    if len(sens):
        cols = ["claim", "dataset", "split", "policy", "n", "failures", "median_ratio", "ci_low", "ci_high",
                "p_wilcoxon", "significant", "agree"]
        display(sens[cols].style.format({"median_ratio": "{:.3g}", "ci_low": "{:.3g}", "ci_high": "{:.3g}",
                                         "p_wilcoxon": "{:.2g}"}, na_rep="–").hide(axis="index"))

# %%
if len(drop):
    display(drop[shown[:-1]].rename(columns={"effect_text": "effect [CI]", "p_raw": "p (raw)", "p_holm": "p (Holm)",
                                             "n_needed": "N for 80%"})
            .style.format({"p (raw)": "{:.2g}", "p (Holm)": "{:.2g}", "power": "{:.2f}", "N for 80%": "{:,.0f}"}, na_rep="–")
            .map(lambda v: colour.get(v, ""), subset=["verdict"]).hide(axis="index")
            .set_caption("Sensitivity: images with a failed attack dropped (own Holm family)"))

# %% [markdown]
# ## Across data sets: a mixed model
# log ‖δ‖ for every attack (arm = condition and subspace, reference: unconstrained) with a random intercept per image
# (statsmodels MixedLM): the arm effects pooled over data sets and splits, which enter as fixed effects. *ratio* = exp(coefficient):
# e.g. `arm[T.on_tangent]` is the on-manifold/unconstrained norm ratio. Then the contrasts that matter: the on/off ratio in the
# tangent space, and the gap ratio against each control (claim 3 pooled). Failed attacks are dropped (main); with failures set to
# the top value (sensitivity) the Gaussian model sees them as numbers, so read that column only for its direction.

# %%
mixed_tables = {}
if len(records):
    formula = stats.pooled_formula(records)
    contrasts = []
    for policy in ("drop", "rank_top"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m = stats.mixed_model(records, formula, failure_policy=policy)
        if policy == "drop":
            fixed = m.table
            runtime.show(f"`{m.formula}`, groups = images: {m.n_obs:,} attacks on {m.n_groups:,} images; converged: "
                         f"{m.converged}; image variance {m.image_var:.3g}, residual variance {m.resid_var:.3g} (log scale)"
                         + "".join(f"; warning: {str(w.message).splitlines()[0]}" for w in caught[:2]))
        arms = set(records["condition"] + "_" + records["subspace"])
        todo = [("on/off, tangent", ["on_tangent"], ["off_tangent"])]
        todo += [(f"gap: tangent ÷ {c}", ["on_tangent", f"off_{c}"], ["off_tangent", f"on_{c}"])
                 for c in controls if f"on_{c}" in arms]
        for label, plus, minus in todo:
            contrasts.append({"policy": policy, **stats.arm_contrast(m, plus, minus, label)})
    display(fixed.style.format({c: "{:.3g}" for c in ["coef", "se", "z", "p", "ci_low", "ci_high", "ratio"]}).hide(axis="index"))
    contrasts = pd.DataFrame(contrasts)
    display(contrasts.style.format({c: "{:.3g}" for c in ["log_estimate", "se", "z", "p", "ratio", "ci_low", "ci_high"]})
            .hide(axis="index"))
    mixed_tables = {"formula": formula, "fixed_effects": fixed.to_dict(orient="records"),
                    "contrasts": contrasts.to_dict(orient="records")}

# %% [markdown]
# ## Power: how many images would settle each claim
# Achieved power at this N and the N for 80% power (α = 0.05 per test, before the Holm correction, which asks for more).
# Power at the *observed* effect is descriptive: it is low exactly where the effect is small, and the interval of the
# effect says more. An infinite N means the observed effect is zero or on the wrong side. Claim 2's power is the TOST's;
# claim 6's is the power to detect a difference as large as the margin, per split. N for 80% is never below what the
# signed-rank test needs to reach α at all (5 images one-sided).

# %%
if len(main):
    display(main[["short", "dataset", "split", "n", "power", "n_needed", "verdict"]]
            .rename(columns={"short": "claim", "n_needed": "N for 80%"})
            .style.format({"power": "{:.2f}", "N for 80%": "{:,.0f}"}, na_rep="–").hide(axis="index"))

# %%
def the_test(name):
    """Claim 3 against the random orthonormal subspace (or the first control tested), on the first split."""
    for c in ["random"] + list(controls):
        for split in splits:
            v = row("3", name, split, f"3 gap: tangent > {c}")
            if v is not None:
                return c, split, v
    return None, None, None


headline = []
for name in found:
    t = main[main["dataset"] == name]
    headline.append(report.headline(f"{name}: claims supported (failures ranked at the top, Holm)",
                                    int((t["verdict"] == "supported").sum()), f"of {len(t)}"))
    c, split, v = the_test(name)
    if v is not None:
        headline.append(report.headline(f"{name} {split}: on/off gap, tangent space ÷ {c} subspace of the same k "
                                        f"(the test of DMM): {v['verdict']}", v["effect"], "x",
                                        "DMM predicts > 1; dimension alone predicts 1"))
if not found:
    headline = [report.headline("no records: run notebooks 03 and 04 first", 0, "records")]
keep = ["claim_id", "claim", "dataset", "split", "statistic", "effect_text", "effect", "ci_low", "ci_high", "effect_bound",
        "p_raw", "p_holm", "n", "power", "n_needed", "failures", "verdict", "verdict_drop", "agree"]
report.write_results(
    run, "05 · Statistical verdicts", headline=headline, data_sources=data_sources, unavailable=unavailable,
    verdicts=main[[c for c in keep if c in main]].to_dict(orient="records"),
    verdicts_drop=drop[[c for c in keep if c in drop]].to_dict(orient="records"),
    policy_agreement=out["agreement"].to_dict(orient="records"), skipped=out["skipped"], mixed_model=mixed_tables,
    settings={"tost_margin": tost_margin, "cosine_margin": cosine_margin, "alpha": alpha, "n_boot": n_boot,
              "controls": controls, "splits": splits},
)
print(f"wall time: {run.elapsed():.0f} s")
