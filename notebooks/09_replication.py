# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 09 · Does it replicate? Verdicts across training seeds
#
# Every verdict of notebook 05 rests on one classifier and one autoencoder per data set. The image is the unit of its
# tests, but all images share that one pair of networks, so an interval there says what holds for *this* network,
# not for networks trained this way. Stutz, Hein & Schiele (CVPR 2019) train five models per setting; the DMM papers
# (Shamir, Melamed & BenShmuel 2021 and its reproduction) train one.
#
# Here the classifier and the autoencoder of notebooks 01 and 02 are retrained with `n_seeds` seeds (seed s: both
# networks with seed s; the first is notebooks 01-02's pair), every pair attacks the **same test images** (correctly
# classified by every seed's classifier) with notebook 03's settings, and the discriminating claims are measured per
# pair exactly as notebook 05 measures them:
#
# * **3** · the tangent space's on/off gap against a random orthonormal subspace of the same k;
# * **4** · the gradient's energy share in the tangent space against a random subspace's;
# * **5b** · the class cosine of on-manifold perturbations against a random subspace's (05's claim 5 takes the
#   better of random and PCA, a choice that could differ between seeds; the random control stays the same);
# * **1b** · the tangent on/off ratio against a flat boundary's (without clipping).
#
# **Pooling.** Each seed gives the claim's median per-image effect. The seeds are **not independent studies**: every
# seed is measured on the same images, and an image that is easy for one network tends to be easy for the next, so
# the seeds' medians share sampling error (their correlation, *rho*, is in the table). A meta-analysis that takes
# them as independent gives an interval too narrow. So the pooled effect is the mean of the seeds' medians, and its
# standard error adds to the seeds' observed spread (which estimates the between-seed variance tau² plus the images'
# part that the seeds do not share) the images' covariance across seeds, measured by a bootstrap over images that
# keeps each image's values across the seeds together (`lib.inference.pooling.pool_shared_images`). The test and the
# interval use t with seeds − 1 df, the Hartung-Knapp-Sidik-Jonkman reference: with three seeds DerSimonian-Laird's z
# is too narrow (IntHout, Ioannidis & Borm 2014, BMC Med Res Methodol 14:25). The pooled row is judged by the
# report's one rule (one Holm family for this table): p tests no effect and p (margin) the margin, one-sided in DMM's
# direction. One check of replication is added: a claim the rule calls *supported* although its seeds' effects lie
# on both sides of no effect is *inconclusive* instead: another network could reverse it.
#
# **Units.** Each seed's row has the image as its unit and conditions on one trained pair of networks; the pooled
# row's unit is the trained pair (seed), its N the seeds. This notebook replicates claims 3, 4 and 5b (5b, not 05's
# deciding claim 5, whose control may change between seeds) and 1b; notebooks 05-07 and 10 judge one network each.
#
# **What three seeds can tell about tau².** Little: tau² is estimated from seeds − 1 degrees of freedom, and an
# estimate of 0 is common where the true tau² is positive. The tables show each tau² with its upper 95% bound: the
# largest between-seed variance these seeds cannot rule out.
#
# **Which network carries the variance?** Two more series vary one network only: the classifier's seed with the
# autoencoder at seed 0, and the autoencoder's seed with the classifier at seed 0 (claims 3, 4 and 5b, from the same
# clipped attacks). Their tau² say where the between-seed variance comes from.

# %% tags=["parameters"]
from typing import Optional, Union

profile: str = "quick"                   # [any] smoke | quick | paper: which settings these are, for the record
datasets: list[str] = ["mnist"]          # [non-empty] quick: MNIST only (training the extra models dominates); paper: every data set
n_seeds: int = 3                         # [≥ 2] model seeds seed, seed + 1, ...: the first is notebooks 01-02's pair (paper: 5)
n_images: int = 100                      # [≥ 1] test images every seed pair attacks (correctly classified by every seed's classifier)
attack: Optional[dict[str, dict[str, float]]] = None  # [any] greedy PGD per condition {eps, alpha, steps}, [0, 1] pixel scale; None: the profile's
extra_ae_epochs: Union[int, dict[str, int], None] = {"mnist": 4}  # [≥ 1] autoencoder epochs of the extra seeds (or {dataset: epochs}); None: as the first seed's
vary_separately: bool = True             # [any] also vary one network's seed with the other at the first seed (claims 3, 4, 5b)
flat_boundary: bool = True               # [any] claim 1b: each seed pair's tangent on/off attacks again without clipping
tau2_method: str = "dl"                  # [any] tau² estimator where seeds used different images: dl (DerSimonian-Laird) | pm (Paule-Mandel)
hksj: bool = True                        # [any] HKSJ t (seeds - 1 df); False: DerSimonian-Laird's z (seeds on different images only)
margin: float = 1.1                      # [> 1] ratios within [1/margin, margin] are negligible (as notebook 05)
cosine_margin: float = 0.05              # [> 0] class-cosine differences within ±cosine_margin are negligible
max_failure_rate: float = 0.5            # [0..1] a seed's row with more undecided images (or control "on" failures) is not testable
alpha: float = 0.05                      # [> 0, < 1] family-wise error rate: Holm over the pooled table
shard_size: int = 50                     # [≥ 1] images per attack shard: one cache entry each
scheduler: Optional[str] = None          # [any] dask scheduler address whose workers run the shards; None: $DIMPLED_SCHEDULER, else here
seed: int = 0                            # [≥ 0] the first model seed; seeds the image choice and the random subspaces
device: str = "auto"                     # [any] auto | cpu | cuda | cuda:N
model_settings: Optional[dict] = None    # [any] the models (docs/running.md, "Profiles"; a key left out: the paper's); None: the profile's

# %%
import pandas as pd
from IPython.display import display

from lib.experiments import experiment
from lib.inference import verdicts
from lib.infra import runtime
from lib.learn import data, session
from lib.reporting import report
from lib.figures import plots_replication
from lib.studies.manifold import replication

run, model_settings, found, missing = session.start("09_replication", profile, seed, device, datasets, model_settings)
seeds = replication.seeds_of(seed, n_seeds)

# %% [markdown]
# ## The models, one pair per seed
# Cached like notebooks 01 and 02's (the first seed's pair *is* theirs). Test accuracy and reconstruction MSE per seed.

# %%
models = data.each_available(found, missing, lambda d: replication.seed_models(d, seeds, model_settings, run.device, extra_ae_epochs))
shorter = ", ".join(f"{n}: {runtime.per_dataset(extra_ae_epochs, n)} of {m.autoencoders[seeds[0]].meta['config']['epochs']}"
                    for n, m in models.items() if runtime.per_dataset(extra_ae_epochs, n))
if shorter:
    runtime.show(f"> The extra seeds' autoencoders train fewer epochs than the first seed's ({shorter}; `extra_ae_epochs`) to "
                 "fit this profile's time: an autoencoder's seed and its training length vary together.")
summary = pd.concat([m.summary for m in models.values()], ignore_index=True) if models else pd.DataFrame()
summary.style.format({"test accuracy": "{:.2%}", "test MSE": "{:.4f}"}).hide(axis="index")

# %% [markdown]
# ## The attacks, per seed pair
# On and off the tangent space and a random subspace of the same k (clipped), and the tangent attacks without
# clipping (claim 1b), in cached shards as in notebooks 03 and 04.

# %%
records, notes = replication.attack_all({n: found[n] for n in models}, models, n_images, experiment.settings_from(run.shared("attack", attack)), seed=seed,
                               device=run.device, shard_size=shard_size, scheduler=scheduler,
                               separately=vary_separately, flat_boundary=flat_boundary)
for note in notes:
    runtime.show(f"> {note}")
if len(records):
    report.save_records(records, profile, "09_records.csv", records.groupby(["clf_seed", "ae_seed"]).ngroups, "seed pairs")
    runtime.show(experiment.projection_check(records))

# %% [markdown]
# ## Each seed pair's verdicts
# Each pair's rows judged as notebook 05 judges its one pair (each pair its own Holm family, so seed 0's verdicts may
# differ from 05's, which judges a larger family on other images).

# %%
by_pair = replication.seed_rows(records, margin, cosine_margin, max_failure_rate) if len(records) else {}
per_seed = replication.per_seed_table(by_pair)
cols = ["dataset", "clf_seed", "short", "effect_text", "p_holm", "p_margin_holm", "n", "verdict"]
if len(per_seed):
    display(per_seed[cols].style.format({"p_holm": "{:.2g}", "p_margin_holm": "{:.2g}"}).hide(axis="index"))

# %% [markdown]
# ## The claims pooled over the seeds
# The mean of the seeds' medians with its 95% interval (images shared across seeds accounted for), tau² (between-seed
# variance, on the log scale for ratios) with its upper 95% bound, the seeds' correlation rho, and how many seed pairs'
# own verdicts agree with the pooled one. Unit: the trained pair of networks (N = seeds). Forest plots: each seed pair's
# median and interval (coloured by its own verdict) and the pooled mean (diamond).

# %%
pooled, one_network, groups = replication.pooled_tables(by_pair, seed, tau2_method, hksj, alpha, vary_separately)
pooled = replication.with_agreement(pooled, per_seed) if len(pooled) else pooled
cols = ["dataset", "short", "effect_text", "tau2", "tau2_upper", "rho", "statistic", "p_holm", "p_margin_holm", "n", "power",
        "n_needed", "agreeing_seeds", "seed_verdicts", "verdict"]
if len(pooled):
    display(pooled[cols].rename(columns={"n": "seeds", "n_needed": "seeds for 80%"}).style.format(
        {"tau2": "{:.3g}", "tau2_upper": "{:.3g}", "rho": "{:.2f}", "p_holm": "{:.2g}", "p_margin_holm": "{:.2g}", "power": "{:.2f}",
         "seeds for 80%": "{:.0f}"}, na_rep="–").hide(axis="index"))
    runtime.show(verdicts.rules_markdown(replication.FAMILY, f"Negligible bands: ratios within ×/÷ {margin:g}, cosine differences "
                                                    f"within ±{cosine_margin:g}; p and intervals from the pooled random-effects mean."))
forests = {}
for name in models:
    panels = replication.forest_panels(groups, pooled, name, per_seed=per_seed, margin=margin, cosine_margin=cosine_margin)
    if panels:
        fig = plots_replication.forest(panels, f"{name}: each seed pair's median and the random-effects pooled mean")
        forests[name] = f"09_forest_{name}.png"
        fig.savefig(report.results_dir(profile) / forests[name], dpi=110, bbox_inches="tight")

# %% [markdown]
# ## Which network carries the between-seed variance?
# tau² of each claim with only the classifier's seed varied (autoencoder at the first seed) and with only the
# autoencoder's seed varied (classifier at the first seed), beside the seed pairs' tau², each with its upper 95% bound:
# with this few seeds the estimates rarely say which network carries the variance, or that there is none.

# %%
source = replication.variance_source(one_network, pooled)
if len(source):
    display(source.style.format({c: "{:.3g}" for c in source.columns if c.startswith("tau")}).hide(axis="index"))
    for name in forests:
        plots_replication.forest(replication.forest_panels(groups, pd.concat([pooled, one_network]), name, ("both", "classifier", "autoencoder"),
                                   per_seed, margin, cosine_margin), f"{name}: one network's seed varied at a time")

# %%
answer = replication.answer(pooled, source) if len(pooled) else []
if answer and shorter:
    answer.append(f"In this profile the extra seeds' autoencoders trained fewer epochs than the first seed's ({shorter}): "
                  "an autoencoder's seed and its training length vary together.")
for sentence in answer:
    runtime.show(sentence)
headline = [report.headline(f"{r['dataset']}: {r['short']} — {r['verdict']} ({r['agreeing_seeds']} seeds agree)", r["effect"],
                            "" if r["scale"] == "difference" else "x", ci=(r["ci_low"], r["ci_high"]),
                            note=f"tau² = {r['tau2']:.3g} between seeds")
            for _, r in pooled.iterrows() if pd.notna(r["effect"])] if len(pooled) else []
report.write_results(
    run, "09 · Replication across training seeds",
    headline=headline or [report.headline("no seed pairs: no data set available", 0, "pairs")],
    data_sources={name: d.describe() for name, d in found.items()}, unavailable=missing,
    answer=answer, verdicts=verdicts.results(pooled),
    one_network=verdicts.results(one_network),
    variance_source=source.to_dict(orient="records"), per_seed=per_seed.drop(columns=["claim"], errors="ignore")
    .to_dict(orient="records") if len(per_seed) else [], models=summary.to_dict(orient="records"), seeds=seeds,
    records_csv="09_records.csv", forest_figures=forests,
    settings={"n_seeds": n_seeds, "n_images": n_images, "extra_ae_epochs": extra_ae_epochs, "tau2_method": tau2_method,
              "hksj": hksj, "margin": margin, "cosine_margin": cosine_margin, "alpha": alpha},
)
print(f"wall time: {run.elapsed():.0f} s")
