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
# # 11 · Does the answer depend on how well the models are trained?
#
# The report's autoencoders train far shorter than the papers' (Shamir, Melamed & BenShmuel 2021 train MNIST's for
# 1,000 epochs to a test reconstruction error of 0.00003; the reproduction, Karner 2023, reaches 0.007). A supporter
# of the Dimpled Manifold Model can say: *your networks are undertrained; a converged autoencoder's tangent space, or
# a converged classifier, would show the dimple.* This notebook measures whether the discriminating effects move
# toward DMM as the models improve, and how far from DMM they are.
#
# **Three series of models**, every pair measured on the same test images (correctly classified by every classifier
# of the series) with notebook 03's attacks:
#
# * **the autoencoder's training**: the checkpoints that notebook 02's training kept (after epochs 1, 2, 5, 10, ...,
#   and its last), the classifier of notebook 01 fixed; quality: the test reconstruction error (MSE);
# * **the classifier's training**: notebook 01's checkpoints, the autoencoder fixed; quality: the test error;
# * **the autoencoder's training images**: autoencoders trained on fewer images for the same number of optimiser steps
#   as notebook 02's after `data_epochs` epochs (its checkpoint there is the series' last point); quality: the images.
#
# At every point the discriminating claims of notebook 09: **3** (the tangent space's on/off gap against a random
# subspace of the same k), **4** (the gradient's energy share in the tangent space against a random subspace's),
# **5b** (the class cosine of on-manifold perturbations against a random subspace's; 09 says why not 05's claim 5)
# and **1b** (the tangent on/off ratio against a flat boundary's).
#
# **The trend as a claim.** Per series and claim: "the effect moves toward DMM's prediction as the models improve".
# Its effect is the least-squares slope of the points' median effects on the quality in decades (x = −log10 of the
# error, or log10 of the images): the change per tenfold improvement. Its uncertainty has two parts: the images (every
# point is measured on the same images, so the points' medians share their sampling error; a bootstrap over images
# that keeps each image's values across the points together gives their covariance) and the points' scatter about the
# line beyond what the images explain (a checkpoint that happens to be better or worse); the test uses t with
# Satterthwaite's degrees of freedom. The negligible band is the claim's own margin, per decade. The rows are judged
# by the report's one rule, one Holm family. Where a trend continued would reach DMM's side of the margin is stated in
# the series' units, with the band of the fitted line: an extrapolation, not a measurement.
#
# **The steepness scale.** Notebook 08's dimpled world has input gradient U w + s v: a tangent part of length 1 and a
# normal part of length s (the dimple's steepness). There claim 3's effect is s divided by a random subspace's on/off
# ratio R (for a flat boundary the Beta median, 7.07 at k = 16, n = 784) and claim 4's is 1 / ((1 + s²) m), m a random
# subspace's median share. Inverted, each real network's effect reads as the steepness of the world that would show
# it. Which R and m to use for real networks is a choice: the table shows the analytic ones (those of the world) and
# the ones measured on the network's own random-subspace attacks. DMM needs s above notebook 08's turning points.

# %% tags=["parameters"]
from typing import Optional

profile: str = "quick"                   # [any] smoke | quick | paper: which settings these are, for the record
datasets: list[str] = ["mnist"]          # [non-empty] quick: MNIST only (the extra autoencoders dominate); paper: every data set
n_images: int = 200                      # [≥ 2] test images every pair attacks (correctly classified by every classifier checkpoint)
attack: Optional[dict[str, dict[str, float]]] = None  # [any] greedy PGD per condition {eps, alpha, steps}, [0, 1] pixel scale; None: the profile's
classifier_epochs_at: Optional[list[int]] = None  # [any] classifier checkpoints to measure (kept epochs: 1, 2, 5, 10, 20, ...); None: all kept
ae_epochs_at: Optional[list[int]] = None  # [any] autoencoder checkpoints to measure; None: all kept
data_sizes: list[int] = [1000, 4000, 15000]  # [non-empty, ≥ 1] training images of the extra autoencoders (all of notebook 02's: its checkpoint)
data_epochs: int = 1                     # [≥ 1] the extra autoencoders' steps: this many epochs over all of notebook 02's images (a kept epoch)
flat_boundary: bool = True               # [any] claim 1b: the tangent attacks again without clipping
margin: float = 1.1                      # [> 1] ratios within [1/margin, margin] are negligible (per decade for a trend)
cosine_margin: float = 0.05              # [> 0] class-cosine differences within ±cosine_margin are negligible (per decade for a trend)
max_failure_rate: float = 0.5            # [0..1] a point's row with more undecided images (or control "on" failures) is not testable
alpha: float = 0.05                      # [> 0, < 1] family-wise error rate: Holm over the trend rows
test_subset: Optional[int] = None        # [≥ 1] measure quality and pick images among this many random test images; None: all
n_boot: int = 2000                       # [≥ 100] bootstrap draws over images for the trends' covariance
shard_size: int = 50                     # [≥ 1] images per attack shard: one cache entry each
scheduler: Optional[str] = None          # [any] dask scheduler address whose workers run the shards; None: $DIMPLED_SCHEDULER, else here
seed: int = 0                            # [≥ 0] seeds the image choice, the random subspaces, the subsets and the bootstrap
device: str = "auto"                     # [any] auto | cpu | cuda | cuda:N
model_settings: Optional[dict] = None    # [any] the models (docs/running.md, "Profiles"; a key left out: the paper's); None: the profile's

# %%
import pandas as pd
from IPython.display import display

from lib.experiments import experiment
from lib.figures import plots_quality
from lib.inference import verdicts
from lib.infra import runtime
from lib.learn import data, session
from lib.reporting import report, tables
from lib.studies.quality import quality

run, model_settings, found, missing = session.start("11_model_quality", profile, seed, device, datasets, model_settings,
                                                   test_subset)

# %% [markdown]
# ## The models of each series
# The checkpoints are read from the cache (notebooks 01 and 02's training kept them); the autoencoders on fewer images
# are trained here (cached). Quality on every test image.

# %%
built = data.each_available(found, missing, lambda d: quality.points_for(
    d, model_settings, run.device, data_sizes=data_sizes, data_epochs=data_epochs, classifier_at=classifier_epochs_at,
    ae_at=ae_epochs_at))
points = {name: pts for name, (pts, _) in built.items()}
for note in (n for _, notes in built.values() for n in notes):
    runtime.show(f"> {note}")
summary = pd.concat([quality.summary(p, n) for n, p in points.items()], ignore_index=True) if points else pd.DataFrame()
if len(summary):
    display(summary.drop(columns=["quality"]).style.format({"test reconstruction MSE": "{:.5f}", "test error": "{:.2%}",
                                                          "autoencoder images": "{:,.0f}", "x": "{:.2f}"}, na_rep="–").hide(axis="index"))

# %% [markdown]
# ## The attacks and each point's claims
# Notebook 09's attacks on the same images at every point (cached shards: pairs that two series share are attacked
# once). Each point's rows are shown as notebook 05 shows one network's; the verdicts that count are the trends'.

# %%
settings = experiment.settings_from(run.shared("attack", attack))
records = {name: quality.attack_points(found[name], pts, n_images, settings, seed=seed, device=run.device, shard_size=shard_size,
                                       scheduler=scheduler, flat_boundary=flat_boundary) for name, pts in points.items()}
records = pd.concat(records.values(), ignore_index=True) if records else pd.DataFrame()
if len(records):
    report.save_records(records, profile, "11_records.csv", records.groupby(["dataset", "series", "point"]).ngroups, "points")
    runtime.show(experiment.projection_check(records))
by_point = quality.point_rows(records, margin, cosine_margin, max_failure_rate) if len(records) else {}
table = quality.point_table(by_point, records) if by_point else pd.DataFrame()
if len(table):
    display(table[["dataset", "series", "point", "short", "effect_text", "n", "verdict"]].style.hide(axis="index"))

# %% [markdown]
# ## The trends: does the effect move toward DMM as the models improve?
# Per series and claim: the slope per tenfold improvement with its 95% interval, judged by the one rule; and where the
# line, continued, would reach DMM's side of the margin. Figures: each point's median effect (95% interval) against
# the series' quality (improvement to the right), the negligible band (grey) and DMM's side (red), the fitted trend and
# its continuation to the published models (dashed, with the band of the line).

# %%
trends, fits = quality.trends(by_point, records, alpha, n_boot, seed, margin, cosine_margin) if by_point else (pd.DataFrame(), {})
if len(trends):
    display(tables.verdict_styler(trends.drop(columns=["statistic", "split", "clip", "n_undecided", "n_needed"]),
                                  "The trends over each series (the test: in the introduction)"))
    runtime.show(verdicts.rules_markdown(quality.FAMILY, f"Negligible bands per tenfold improvement: ratios within ×/÷ {margin:g}, "
                                                         f"cosine differences within ±{cosine_margin:g}."))
for name in points:
    for series in quality.SERIES:
        pt = table[(table["dataset"] == name) & (table["series"] == series)]
        plots_quality.series_claims(pt, {cid: fits[name, series, cid][0] for cid in quality.CLAIM_IDS if (name, series, cid) in fits},
                                    trends[(trends["dataset"] == name) & (trends["series"] == quality.SERIES[series])], series,
                                    quality.published_marks(series, name), margin, cosine_margin,
                                    f"{name}: the claims over {quality.SERIES[series]}")

# %% [markdown]
# ## How far from DMM: the steepness scale
# Each point's claim-3 and claim-4 effects as the steepness s of notebook 08's dimpled world that would show them
# (95% intervals carried through the mapping, which is monotone), beside the same with the random subspace's ratio and
# share measured on the point's own networks (no interval: the reference's own uncertainty is not carried).

# %%
steep = pd.concat([quality.steepness_table(table[table["dataset"] == n], records[records["dataset"] == n]) for n in points],
                  ignore_index=True) if len(table) else pd.DataFrame()
figures = {}
if len(steep):
    display(quality.steepness_view(steep).style.hide(axis="index"))
    for name in points:
        k, n = int(steep["k"].iloc[0]), int(steep["n"].iloc[0])
        fig = plots_quality.steepness(steep[steep["dataset"] == name], quality.dmm_steepness(k, n, margin),
                                      {s: quality.published_marks(s, name) for s in quality.SERIES},
                                      {s: fits[name, s, "3"][0] for s in ("autoencoder", "classifier", "data") if (name, s, "3") in fits},
                                      quality.flat_reference(k, n), f"{name}: where the networks sit on the steepness scale")
        figures[name] = f"11_steepness_{name}.png"
        fig.savefig(report.results_dir(profile) / figures[name], dpi=110, bbox_inches="tight")

# %%
answer = quality.answer(trends, fits, steep, margin, cosine_margin) if len(trends) else []
for sentence in answer:
    runtime.show(sentence)
report.write_results(
    run, "11 · Does the answer depend on how well the models are trained?",
    headline=quality.headlines(steep, trends, margin) or [report.headline("no series: no data set available", 0, "points")],
    data_sources={name: d.describe() for name, d in found.items()}, unavailable=missing, answer=answer,
    answer_figure=next(iter(figures.values()), None), verdicts=verdicts.results(trends),
    points=table.drop(columns=["claim"], errors="ignore").to_dict(orient="records") if len(table) else [],
    steepness=steep.to_dict(orient="records"), distance=quality.distance(steep, margin) if len(steep) else [],
    models=summary.to_dict(orient="records"), records_csv="11_records.csv",
    settings={"n_images": n_images, "data_sizes": data_sizes, "data_epochs": data_epochs, "margin": margin,
              "cosine_margin": cosine_margin, "alpha": alpha, "n_boot": n_boot},
)
print(f"wall time: {run.elapsed():.0f} s")
