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
# # 10 · DMM's claims about training
#
# Two claims of the Dimpled Manifold Model's abstract (Shamir, Melamed & BenShmuel 2021) concern training, and each
# has a rival explanation, so each gets a control that tells them apart.
#
# **Mislabelled adversarial training.** "A network that was adversarially trained with incorrectly labeled images
# might still correctly classify most test images": the experiment of Ilyas et al. 2019 ("Adversarial examples are
# not bugs, they are features"). Each training image x of class y gets a target t ≠ y (*D_rand*: uniform over the other
# classes; *D_det*: t = y + 1 mod 10), is moved toward t by targeted L2 PGD from the notebook-01 classifier (every step
# of the budget run, as Ilyas et al. do; only the images it then calls t are kept), and is labelled t. A fresh
# classifier of the same architecture trained on that set alone is tested on clean test images with their **true**
# labels. Ilyas et al. read its success as non-robust features; Wallace (2019, Distill) as distillation. The variants
# separate the readings: the perturbation's steps confined to the autoencoder's **tangent space** (*on*), to its
# **normal space** (*off*), or to a **random subspace of the same k** (what the dimension alone does). DMM's account
# (the perturbation crosses a dimple off the manifold, so it carries what the old boundary knows there) predicts that
# *off* teaches what *unconstrained* teaches and *on* less. Controls: the same images labelled t without any
# perturbation (what the labels alone teach), and the original images and labels.
#
# **The budget decides what such a set can teach.** Ilyas et al. perturbed CIFAR-10 images by ε = 0.5, far below an
# image's own norm: their sets look like their old labels. An MNIST digit's L2 norm is about 9, and a perturbation of
# norm 5 or 10 can redraw a "2" as a "3"; a fresh classifier that learns from such a set may learn the target classes'
# visible shapes, not non-robust features, and neither reading is DMM's. So the study runs at a **sweep of budgets**,
# from the *minimal crossing* (each image stopped at its first step into t's region: the least perturbation this
# attack finds) up to ε = 10, with a **visibility check** per budget (does an independent classifier, or the nearest
# class mean, already call the perturbed image t?), and every fresh classifier trains on the **same number of
# images** at every budget, so that its accuracy moves with the budget and the subspace alone.
#
# **Does adversarial training "just deepen the dimples"?** The notebook-01 classifier is fine-tuned by L2 PGD
# adversarial training (Madry et al. 2018) at a budget set by a rule: the median minimal unconstrained norm of
# notebook 03's attack on training images. On the same test images before and after: the minimal norms off and on the
# manifold (DMM predicts the off-manifold one, the dimple's depth, grows much more), the on/off gap against a random
# subspace, and the loss gradient's fraction in the tangent space ‖P_T g‖/‖g‖, which the alignment view (Bordt et al.
# 2023; Srinivas, Bordt & Lakkaraju 2023) predicts grows (Bordt et al.: 0.31 → 0.675 on a known manifold).

# %% tags=["parameters"]
from typing import Optional

profile: str = "quick"                   # [any] smoke | quick | paper: which settings these are, for the record
datasets: list[str] = ["mnist"]          # [non-empty] quick: MNIST only; paper: add fashion_mnist
relabellings: list[str] = ["rand", "det"]  # [non-empty] D_rand: t uniform over the other classes; D_det: t is y + 1 mod C
variants: list[str] = ["unconstrained", "on", "off", "random"]  # [non-empty] where the perturbation may go (random: a random k-subspace)
n_relabel: int = 2000                    # [≥ 1] training images perturbed per relabelling (a seeded random subset; paper: all)
relabel_budgets: list = ["minimal", 1.0, 2.0, 5.0, 10.0]  # [non-empty, > 0] targeted L2 budgets ([0, 1] pixels); "minimal": each image's first crossing
relabel_steps: int = 50                  # [≥ 1] targeted PGD steps, every one run, each 2.5 eps / steps long ("minimal": within the largest eps)
equal_size: bool = True                  # [any] every fresh classifier trains on ceil(min_success x n_relabel) images (False: all of its set's)
fresh_epochs: int = 40                   # [≥ 1] epochs of each fresh classifier (notebook 01's architecture, optimiser and epochs)
fresh_seeds: int = 3                     # [≥ 1] fresh classifiers (training seeds) per set at the budgets the verdicts read
min_success: float = 0.3                 # [> 0, ≤ 1] small verdict budget: the first keeping this share unconstrained; a set keeping less is not trained
advtrain_eps_scale: float = 1.0          # [> 0] adversarial training budget: this x the median minimal unconstrained norm (train images)
advtrain_steps: int = 10                 # [≥ 1] PGD steps per minibatch in adversarial training (step 2.5 eps / steps)
advtrain_epochs: int = 10                # [≥ 1] epochs of adversarial fine-tuning of the notebook-01 classifier
advtrain_lr: float = 0.01                # [> 0] its learning rate (notebook 01's optimiser: SGD)
advtrain_subset: Optional[int] = 4000    # [≥ 1] adversarial fine-tuning on a seeded random this many training images (None: all)
robust_steps: int = 50                   # [≥ 1] PGD steps of the robust-accuracy attack (at the training budget)
accuracy_margin: float = 0.05            # [> 0, < 1] accuracy differences within ±5 points are negligible
margin: float = 1.1                      # [> 1] norm and fraction ratios within [1/margin, margin] are negligible
alpha: float = 0.05                      # [> 0, < 1] family-wise error rate: Holm over this notebook's rows
# the attacked test images and the attack settings: shared with notebooks 03 and 04 (params `all`), so that the
# "before" attacks are theirs (cached)
n_images: int = 200                      # [≥ 1] correctly classified test images attacked before and after adversarial training
attack: Optional[dict[str, dict[str, float]]] = None  # [any] greedy PGD per condition {eps, alpha, steps}, [0, 1] pixel scale; None: the profile's
shard_size: int = 50                     # [≥ 1] images per attack shard: one cache entry each
seed: int = 0                            # [≥ 0] seeds the subsets, targets, random subspaces and fresh classifiers
device: str = "auto"                     # [any] auto | cpu | cuda | cuda:N
torch_threads: Optional[int] = 1         # [≥ 1] torch CPU threads; None: torch's default (on a busy shared CPU, 1 is far steadier)
model_settings: Optional[dict] = None    # [any] the models (docs/running.md, "Profiles"; a key left out: the paper's); None: the profile's

# %%
import pandas as pd
import torch
from IPython.display import display

from lib.experiments import experiment
from lib.inference import published, verdicts
from lib.infra import runtime
from lib.learn import data, session
from lib.reporting import report
from lib.figures import plots_training
from lib.studies.training import advtrain, mislabeled_study, training_claims

run, model_settings, found, missing = session.start("10_training_claims", profile, seed, device,
                                                    datasets, model_settings)
if torch_threads:
    torch.set_num_threads(torch_threads)
settings = experiment.settings_from(run.shared("attack", attack))
models = data.each_available(found, missing, lambda d: model_settings.models(d, run.device))  # 01 and 02's

# %% [markdown]
# ## Mislabelled adversarial training, budget by budget
# Per relabelling and budget: each set's attack success rate (Wilson 95% CI), the median norm of the kept
# perturbations beside a training image's own norm, the visibility check, the images its fresh classifier trained on
# and that classifier's clean test accuracy with the true labels (Wilson 95% CI over the test images; where several
# training seeds were trained, their mean and spread too). Chance is 10%. The independent classifier is notebook 01's
# architecture trained from seed `seed + 1` (notebook 09's replicate: the attack never saw it); the nearest class mean
# compares the image with each class's mean training image. Cached: a re-run costs nothing.

# %%
study, sweep_tables = {}, []
for name, (clf, ae) in models.items():
    judge = model_settings.classifier(found[name], run.device, seed=seed + 1)
    study[name] = mislabeled_study.run_study(
        clf, ae, found[name], judge, relabellings=relabellings, variants=variants, budgets=relabel_budgets,
        steps=relabel_steps, n_relabel=n_relabel, fresh_epochs=fresh_epochs, min_success=min_success,
        n_seeds=fresh_seeds, equal_size=equal_size, seed=seed, device=run.device)
    sweep_tables.append(mislabeled_study.sweep_table(study[name], name))
sweep = pd.concat(sweep_tables, ignore_index=True) if sweep_tables else pd.DataFrame()
judged = {name: s["judged"] for name, s in study.items()}
for name in study:
    plots_training.show_sweep(study[name], sweep[sweep["dataset"] == name], found[name], name, min_success)
pct = "{:.1%}"

# %% [markdown]
# ## Adversarial training
# The notebook-01 classifier fine-tuned on the PGD examples of a seeded random `advtrain_subset` of its training
# images (Madry et al. 2018). The budget rule: eps = `advtrain_eps_scale` × the median minimal norm of notebook 03's
# greedy unconstrained PGD on its training images (its cached attacks). Clean and robust accuracy (fixed-budget L2 PGD
# at that eps, margin loss) on every test image, before and after, with Wilson 95% intervals.

# %%
tuned, budgets, acc_rows = {}, {}, []
for name, (clf, ae) in models.items():
    tuned[name], budgets[name], rows, text = advtrain.fine_tune(
        clf, found[name], settings=settings, n_images=n_images, scale=advtrain_eps_scale, steps=advtrain_steps,
        epochs=advtrain_epochs, lr=advtrain_lr, robust_steps=robust_steps, train_subset=advtrain_subset, seed=seed,
        device=run.device, shard_size=shard_size)
    acc_rows += rows
    runtime.show(text)
robustness = pd.DataFrame(acc_rows)
if len(robustness):
    display(robustness.style.format({"value": pct, "CI low": pct, "CI high": pct}).hide(axis="index"))

# %% [markdown]
# ## The geometry before and after, on the same test images
# Greedy minimal-norm attacks (notebook 03's settings; the "before" ones are notebooks 03 and 04's cached shards):
# unconstrained, on and off the tangent space, on and off a random orthonormal subspace of the same k. The images are
# those the notebook-01 classifier classifies correctly, less those the adversarially trained one gets wrong.
# *Gradient fraction*: ‖P g‖/‖g‖ of the margin loss's gradient at the clean image (a random k-subspace: about √(k/n)).

# %%
frames = []
for name, (clf, ae) in models.items():
    recs, dropped, _ = advtrain.before_after({"before": clf, "after": tuned[name]}, ae, found[name], n_images,
                                             settings, ae.model.latent_dim, seed, run.device, shard_size)
    runtime.show(f"{name}: {recs['image_id'].nunique()} test images ({dropped} left out: wrong after adversarial "
                 "training). " + experiment.projection_check(recs))
    frames.append(recs)
    plots_training.before_after(*training_claims.growth_pairs(recs), training_claims.fractions(recs), f"{name}: adversarial training, per test image")
records = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
geometry = training_claims.geometry_table(records)
if len(records):
    report.results_dir(profile).mkdir(parents=True, exist_ok=True)
    records.to_csv(report.results_dir(profile) / "10_records.csv", index=False)
    display(geometry.style.format({"value": "{:.3f}", "CI low": "{:.3f}", "CI high": "{:.3f}", "success rate": pct},
                                  na_rep="–").hide(axis="index"))

# %% [markdown]
# ## Verdicts
# One Holm family. Margins, stated before the numbers: accuracies within ±`accuracy_margin` (5 points) are the same;
# norm and fraction ratios within ×/÷ `margin` (1.1) are negligible. Rows A-D are read at two budgets per relabelling
# (the budget is in each row's label): the smallest budget of the sweep at which the unconstrained attack keeps at
# least `min_success` of its images, and the largest. At each, every set's `fresh_seeds` fresh classifiers (training
# seeds) are tested on the same test images: each classifier's row is a paired test over the test images, and the
# rows are pooled over the classifiers (the mean of their per-image outcomes, with a standard error from their spread
# plus the test images they share; t test). A pooled row whose classifiers disagree in sign is not *supported*.
# E and F are per-image location tests on one adversarially trained classifier (sign test with failed attacks as
# intervals; the median with the sign test). Discriminating: D (tangent space against the dimension alone), E and F.

# %%
rows, per_seed = [], []
for name in study:
    pooled, seeds_table = training_claims.sweep_rows(study[name], name, accuracy_margin, min_success, alpha)
    rows += pooled
    per_seed.append(seeds_table)
for name, recs in records.groupby("dataset") if len(records) else ():
    rows += [training_claims.depth_row(recs, name, margin), training_claims.alignment_row(recs, name, margin)]
table = training_claims.judge(rows, alpha, pd.concat(per_seed, ignore_index=True) if per_seed else None)
cols = ["dataset", "split", "short", "effect_text", "margin_text", "p_holm", "p_margin_holm", "n", "power", "verdict",
        "agreeing_seeds"]  # each row's test in words: the verdict table of the report's index
if len(table):
    display(table[[c for c in cols if c in table]].style.format(
        {"p_holm": "{:.2g}", "p_margin_holm": "{:.2g}", "power": "{:.2f}"}, na_rep="–").hide(axis="index"))
    runtime.show(verdicts.rules_markdown(training_claims.FAMILY, f"Negligible bands: accuracies ±{100 * accuracy_margin:g} points, "
                                                    f"ratios ×/÷ {margin:g}."))

# %%
answer = training_claims.answer(table, sweep, geometry, judged)
for sentence in answer:
    runtime.show(sentence)
report.write_results(
    run, "10 · DMM's claims about training",
    headline=training_claims.headlines(sweep, table, judged, published.ILYAS_TEST_ACC, published.ILYAS),
    data_sources={name: d.describe() for name, d in found.items()}, unavailable=missing, answer=answer,
    verdicts=verdicts.results(table),
    accuracies=sweep.drop(columns=["budget"]).to_dict(orient="records"),
    robustness=robustness.to_dict(orient="records"),
    geometry=geometry.to_dict(orient="records"), budgets=budgets, records_csv="10_records.csv",
    published={"ilyas": published.ILYAS_TEST_ACC, "bordt": published.BORDT_FRACTION},
)
print(f"wall time: {run.elapsed():.0f} s")
