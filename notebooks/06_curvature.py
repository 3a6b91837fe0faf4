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
# # 06 · Curvature of the decision boundary
#
# DMM speaks of the decision boundary's *shape*: it "clings" to the data manifold and is "dimpled" around the
# training images. This notebook measures that shape, following Fawzi, Moosavi-Dezfooli, Frossard & Soatto,
# "Empirical study of the topology and geometry of deep networks" (CVPR 2018), on the classifiers and
# autoencoders of notebooks 01–03, and relates it to the autoencoder's tangent space.
#
# **Protocol.** For a correctly classified image x of class i, DeepFool (Moosavi-Dezfooli, Fawzi & Frossard 2016)
# finds a short perturbation r to the nearest boundary; bisection on the segment x → x + r puts the point
# z = x + r on the boundary (to 2⁻³⁰‖r‖), between i and the class j across. With F = f_j − f_i (negative on the
# image's side), n = ∇F/‖∇F‖ and P = I − nnᵀ, the **shape operator** is G = P H_F P / ‖∇F‖; its eigenvalues on the
# n − 1 directions orthogonal to n are the **principal curvatures**. Sign: the boundary of a ball of class i has
# curvature +1/r; positive curvature bends the boundary around the image's own class. G is applied through
# Hessian-vector products (torch.func), the whole spectrum at once for n = 784 (G applied to n probe vectors,
# then `torch.linalg.eigh`); `bench/bench_curvature.py` compares Lanczos (ARPACK) for the extremes.
#
# **ReLU.** The MNIST MLP is piecewise linear: its Hessian is zero almost everywhere. Two ways around it, both
# shown: (1) the MLP's **softplus twin** — the same weights, every ReLU replaced by Softplus(β) — whose Hessian
# exists (labels agree with the MLP on > 99% of images at β = 10); (2) the MLP itself with a **central-difference**
# HVP, (∇F(z + hv) − ∇F(z − hv)) / 2h, at the authors' scale h = √n · (pixel range) / 512 = 0.055, which measures the
# bending at the scale h (and is not linear in v: its spectrum depends on the probe vectors). The numbers that
# enter the verdicts come from the twin; the finite-difference MLP is the check beside them.
#
# Each section's measurements are cached (keyed by its settings, the models, the images and the code that computes
# them), so a re-run with nothing changed reads them back in seconds.

# %% tags=["parameters"]
from typing import Optional

profile: str = "quick"                   # [any] smoke | quick | paper: which settings these are, for the record
datasets: list[str] = ["mnist", "fashion_mnist"]  # [non-empty] MLP data sets (mnist, fashion_mnist); cifar10 / imagenet: not measured here
splits: list[str] = ["test", "train"]    # [non-empty] boundary points of test images and of training images
n_points: int = 40                       # [≥ 1] correctly classified images per data set and split (full spectrum each)
beta: float = 10.0                       # [> 0] Softplus(beta) of the smooth twin, whose curvatures enter the verdicts
fd_h: Optional[float] = None             # [> 0] central-difference step for the ReLU MLP (pixel-L2); None: sqrt(n)/512 (authors')
n_scale: int = 8                         # [≥ 1] test images for the scale-dependence figure (h sweep and beta sweep)
h_sweep: list[float] = [0.01, 0.03, 0.1, 0.3]  # [non-empty, > 0] central-difference steps h tried on the ReLU MLP
beta_sweep: list[float] = [3.0, 10.0, 30.0]    # [non-empty, > 0] softplus sharpness tried on the twin
shared_points: int = 100                 # [≥ 1] training points whose top curved directions build S (paper: 100)
shared_per_point: int = 20               # [≥ 1] top principal directions (by |curvature|) taken per point
shared_dim: Optional[int] = None         # [≥ 1] dim S; None: the paper's 200 of 3072 scaled to n (51 of 784)
noise_norms: list[float] = [0.5, 1.0, 2.0, 4.0, 8.0]  # [non-empty, > 0] L2 norms of the noise drawn in S and in S-perp
n_detect: int = 40                       # [≥ 1] test images for detection (natural, DeepFool- and PGD-perturbed)
detect_draws: int = 20                   # [≥ 1] T: random unit vectors per class in Algorithm 2
pgd: dict[str, float] = {"eps": 10.0, "alpha": 0.05, "steps": 200}  # [any] greedy L2 PGD for the detection's perturbed images
dynamics_datasets: list[str] = ["mnist"]  # [any] data sets whose classifier is retrained with checkpoints (cached once)
dynamics_epochs: list[int] = [1, 2, 5, 10, 20, 50, 100, 200]  # [non-empty, ≥ 1] checkpoints (epochs beyond the training's are dropped)
n_dynamics: int = 20                     # [≥ 1] test images measured at every checkpoint
margin: float = 1.1                      # [> 1] negligible band for ratios: [1/margin, margin]
seed: int = 0                            # [≥ 0] seeds the image choice, the random subspaces and the probe vectors
device: str = "auto"                     # [any] auto | cpu | cuda | cuda:N
model_settings: Optional[dict] = None    # [any] the models (docs/running.md, "Profiles"; a key left out: the paper's); None: the profile's

# %%
import numpy as np
import pandas as pd

from lib.boundary import curvature
from lib.infra import runtime
from lib.learn import data, session
from lib.inference import verdicts
from lib.reporting import report, tables
from lib.studies.curvature import curvature_report, curvature_runs, curvature_analysis
from lib.figures import plots_curvature

run, model_settings, found, missing = session.start("06_curvature", profile, seed, device, datasets, model_settings)
for name in [n for n in found if found[n].n > 784]:  # conv nets: n = 3072 needs Lanczos, not a full spectrum
    missing[name] = "not measured in this notebook: its full spectra are sized for n = 784 (the MLP data sets)"
    runtime.show(f"> **{name}: left out.** {runtime.escape(missing[name])}")
    found.pop(name)

# %% [markdown]
# ## Boundary points and full curvature spectra
# Per data set and split: `n_points` correctly classified images (seeded), their DeepFool boundary points, the full
# spectrum of G for the softplus twin (exact HVPs), and G restricted to the autoencoder's tangent space at the clean
# image (k = 16) and to a random orthonormal subspace of the same k, for the twin and for the ReLU MLP (central
# differences at h; its full spectra are in the scale section below).

# %%
models, frames, profiles, boundary = {}, [], {}, {}
for name, (clf, ae) in data.each_available(found, missing, lambda d: model_settings.models(d, run.device)).items():
    d = found[name]
    m = models[name] = curvature_runs.nets_for(clf.model, ae.model, beta, fd_h or curvature.default_h(d.n), d.test_x[:1000].to(run.device),
                                     keys=(clf.key, ae.key))  # the keys of its cached measurements
    print(f"{name}: classifier {clf.summary()}, autoencoder (k = {m.k}) {ae.summary()}; "
          f"softplus twin (beta={beta}) agrees with the MLP on {m.agree:.1%} of 1,000 test labels; h = {m.h:.4f}")
    f, profiles[name], boundary[name] = curvature_runs.boundary_spectra(name, m, d, splits, n_points, seed, run.device)
    frames += f
records = tables.stack(frames)
if len(records):
    print(f"{len(records):,} per-image records -> {tables.save_csv(records, profile, '06_records.csv')}")

# %% [markdown]
# ## The curvature profile
# Fawzi et al. (CIFAR-10, 1,000 images) found the boundary flat in most directions near natural images, curved in a
# few, with the negative curvatures slightly larger than the positive ones (mean curvature < 0). Our sign is that of
# their Algorithm 2 (F_c = f_c − f_k̂, k̂ the image's class): positive means the boundary bends around the image's
# class.

# %%
for name in models:
    plots_curvature.curvature_profiles({f"{split}, {method}": p for (split, method), p in profiles[name].items()},
                          f"{name}: principal curvatures at DeepFool boundary points, sorted per image and averaged")

# %%
summary = curvature_report.summary_table(records)
summary.style.format({"median_distance": "{:.3f}", "mean_curvature": "{:+.5f}", "min_curvature": "{:+.3f}",
                      "max_curvature": "{:+.3f}", "share_negative_mean": "{:.0%}"}).hide(axis="index").set_caption(
    "softplus twin. median_distance: DeepFool ‖r‖; mean / min / max: over images, of each image's mean, most negative and "
    "most positive principal curvature (1 / pixel-L2); share_negative_mean: images whose mean curvature is < 0")

# %% [markdown]
# ## How the curvatures depend on the scale
# The ReLU MLP's curvatures at steps h (central differences), and its softplus twins' at sharpness β, on `n_scale`
# test images: the extremes (mean over images of the most negative and most positive principal curvature) and the
# mean curvature. A ReLU boundary is flat between kinks and bent at them: the smaller h, the fewer kinks a probe
# crosses and the spikier (or the more exactly zero) the estimate.

# %%
scales = pd.DataFrame([row for name, m in models.items()
                       for row in curvature_runs.scale_sweep(name, m, found[name], n_scale, h_sweep, beta_sweep, seed, run.device)])
for name in models:
    plots_curvature.scale_dependence(scales[scales["dataset"] == name], f"{name}: curvature against the scale")

# %% [markdown]
# ## Tangent space vs a random subspace of the same k
# Inside a k-dimensional subspace V (orthonormal basis Q) the boundary's shape is the k × k matrix A = Qᵀ G Q; its
# RMS eigenvalue ‖A‖_F / √k says how curved the boundary is along V. DMM pictures a boundary that runs along the
# data manifold, near it and parallel to it: flat along the manifold (the "clinging"), its normal nearly orthogonal to
# the manifold. Both are per-image comparisons with a random orthonormal subspace of the same k (drawn per image),
# which controls for the dimension: a random subspace holds ‖P n‖ ≈ √(k/n) of a unit normal.
#
# * **flatter along the manifold**: RMS curvature in the tangent space < in the random subspace;
# * **normal off the manifold**: ‖P_tangent n‖ < ‖P_random n‖.
#
# Test: one-sided sign tests of the median per-image log ratio (the parameter the table shows; the unit is the image,
# on one trained network), of no effect and of the margin
# (ratio beyond 1/`margin`); the median ratio with a distribution-free 95% interval; p-values Holm-corrected over
# this notebook's rows (its own family); the report's verdict rule, stated below the table.

# %%
smooth = records[records["method"] == curvature_runs.TWIN] if len(records) else records
if len(smooth):
    plots_curvature.tangent_vs_random(smooth, "softplus twin: tangent space (red) vs a random subspace of the same k (grey), per image")

# %%
verdict_table, check_table = curvature_analysis.verdict_tables(records, np.log(margin))
runtime.show(verdicts.rules_markdown(curvature_analysis.FAMILY))
answer = curvature_analysis.answer(verdict_table)
for sentence in answer:
    runtime.show(f"**{sentence}**")
curvature_report.verdict_view(verdict_table)

# %% [markdown]
# The same comparisons for the ReLU MLP with central differences at the authors' h (a check, not in the verdict
# table; Holm-corrected among themselves):

# %%
curvature_report.verdict_view(check_table)

# %% [markdown]
# ## Shared curved directions (Fawzi et al. 2018, Table 1 and Figure 7)
# **Construction (the CVPR text's).** At `shared_points` training points: the twin's top `shared_per_point`
# principal directions by |curvature|, stacked as the columns of M; S = the `shared_dim` leading left singular
# vectors of M. The paper took dim S = 200 for CIFAR-10 (n = 3,072); scaled to n = 784 that is 51, so a random
# direction has share √(51/784) ≈ 0.255, the paper's 0.25. (The authors' MATLAB code differs: the mean Hessian per
# target class, no projection, top eigenpairs by magnitude.) Then for `n_points` test images: the share
# ‖P_S v‖/‖v‖ of the DeepFool perturbation ("adversarial"), a Gaussian direction ("random"), the difference of two
# test images ("x₂ − x₁") and the gradient of the cross-entropy loss at x ("gradient"). DeepFool reaches the boundary
# of this nearly piecewise-linear net in one or two steps, so its perturbation is close to ∇(f_j − f_i) at x.

# %%
shares, noise_tables = curvature_report.shared_directions_all(
    models, found, boundary, points=shared_points, per_point=shared_per_point, dim=shared_dim, n_points=n_points,
    noise_norms=noise_norms, seed=seed, device=run.device)
shares.style.hide(axis="index").format(precision=3)

# %%
if noise_tables:
    plots_curvature.noise_misclassification(pd.concat(noise_tables), "noise in the shared curved directions S vs in S-perp (twin)")

# %% [markdown]
# ## Detection (Algorithm 2 of Fawzi et al., typos of the slides fixed)
# At the input x itself, with k̂ its predicted label and F_c = f_c − f_k̂: s_c = (1/T) Σ_t v_tᵀ G_{F_c}(x) v_t over T
# uniform unit vectors, ρ = (1/L) Σ_{c≠k̂} s_c. Natural images are expected to see negative mean curvature, perturbed
# ones (just across a boundary) positive: flag "perturbed" if ρ > t; the recovered label is argmax_{c≠k̂} s_c.
# Negatives: `n_detect` natural test images; positives: the same images after DeepFool (overshoot 0.02) and after
# greedy L2 PGD (refined crossing). The ROC curve sweeps t; the AUC has a bootstrap 95% interval (AUC < 0.5: the
# rule points the wrong way on this network). The published label recovery (92 / 88 / 74% for GoogLeNet / CaffeNet /
# VGG-19 at t = 0) is on ImageNet networks: an indirect comparison. *Post hoc* (not part of the algorithm, chosen after
# seeing the MNIST numbers, where the signs come out reversed): the label of the *most negative* s_c.

# %%
detection, roc = curvature_report.detection_all(models, found, n_detect, detect_draws, pgd, seed, run.device)
if roc:
    plots_curvature.roc_curves(roc, "curvature-based detection (twin)")
detection.style.hide(axis="index").format(precision=3)

# %% [markdown]
# ## Training dynamics: two phases?
# DMM predicts that training first makes the boundary cling to the data manifold (the gradient, normal to the boundary,
# turns away from the manifold: its energy share in the tangent space falls below a random subspace's k/n), then
# dimples it around the training points. The classifier of the data sets in `dynamics_datasets` is trained again with
# the same settings, seed and batches, its weights copied at the epochs in `dynamics_epochs` (one cache entry: the last
# checkpoint is the model above, bit for bit). At each checkpoint, on `n_dynamics` test images (correct at the end):
# the margin-loss gradient's energy share in the tangent space (the final autoencoder's, at the clean image) and in a
# random subspace of the same k, the DeepFool distance to the boundary, and the twin's principal curvatures.

# %%
dynamics = {}
for name in [n for n in dynamics_datasets if n in models]:
    d, m = found[name], models[name]
    dynamics[name] = curvature_runs.dynamics(m, d, n_dynamics, beta, seed, run.device, model_settings.classifier_epochs,
                                   model_settings.classifier_train_subset, dynamics_epochs, model_settings.classifier_lr)
    plots_curvature.training_dynamics(dynamics[name], m.k, d.n, f"{name}: geometry over training (checkpoints of the quick classifier)")
    runtime.show(curvature_report.dynamics_sentence(name, dynamics[name], margin))
for name in [n for n in dynamics_datasets if n not in models]:
    runtime.show(f"> **{name}: training dynamics not measured** (its data or models are not available here).")
dynamics_table = tables.stack(t.assign(dataset=n) for n, t in dynamics.items())
dynamics_table.style.hide(axis="index").format(precision=4)

# %% [markdown]
# ## Left out
# * **CIFAR-10 and ImageNet**: the conv nets' n = 3,072 / 150,528 call for Lanczos extremes (lib.boundary.curvature has
# them)   rather than full spectra; not run here.
# * The finite-difference curvatures of the ReLU MLP depend on h and on the probe vectors (see above): they are a
#   check, not the measurement.
# * Training dynamics: only the data sets in `dynamics_datasets` (MNIST in the quick profile: Fashion-MNIST's
#   classifier trains on 60,000 images, minutes more of CPU).

# %%
report.write_results(
    run, "06 · Decision-boundary curvature", headline=curvature_report.headlines(models, splits[0], summary, verdict_table, shares, detection),
    answer=answer, data_sources={name: d.describe() for name, d in found.items()}, unavailable=missing,
    verdicts=verdicts.results(verdict_table),
    checks=verdicts.results(check_table),
    summary=summary.to_dict(orient="records"), scales=scales.to_dict(orient="records"),
    shares=shares.to_dict(orient="records"), detection=detection.to_dict(orient="records"),
    records_csv="06_records.csv", settings={"beta": beta, "h": {n: m.h for n, m in models.items()},
                                            "margin": margin, "twin_agreement": {n: m.agree for n, m in models.items()}},
    dynamics=dynamics_table.to_dict(orient="records"),
    left_out=["cifar10 / imagenet (full spectra sized for n = 784)"]
             + [f"training dynamics of {n}" for n in models if n not in dynamics_datasets],
)
print(f"wall time: {run.elapsed():.0f} s")
