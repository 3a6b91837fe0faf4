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
# # 07 · The Isometric-Autoencoder defence, attacked honestly
#
# If adversarial perturbations leave the data manifold (the Dimpled Manifold Model, Shamir, Melamed & BenShmuel
# 2021), projecting an input back onto the manifold before classifying it should undo them. Karner ("The Dimpled
# Manifold Revisited", section 4) proposed this projection with an **Isometric Autoencoder** (I-AE; Gropp, Atzmon &
# Lipman 2020), whose decoder D is an isometry and whose encoder E is D's pseudo-inverse, so that D(E(x)) is,
# near the data, the *orthogonal* projection onto the learned manifold, but could not get the I-AE to train.
# Here it is trained, checked for isometry, and attacked by an attacker who knows the defence.
#
# **The I-AE loss** (lib/learn/iae.py): ‖D(E(x)) − x‖² + λ (L_iso + L_piso), one λ for both terms, with
# L_iso = E (‖J_D(z) u‖ − 1)² (z drawn from a diagonal Gaussian fitted to the batch's encodings, u a random unit
# latent vector; J_D u by a forward-mode jvp) and L_piso = E (‖uᵀ J_E(x)‖ − 1)² (a reverse-mode vjp). The norms are of
# whole vectors, not element-wise.
#
# **Training** starts from the plain autoencoder of notebook 02 (the same layers; warm start, `iae_warm_start`; the
# paper profile trains from random weights with Softplus β = 100, as Gropp et al.) with two changes that
# made it train: (1) BatchNorm is folded into the convolution before it (the same function): torch.func cannot
# differentiate a train-mode BatchNorm, a network whose Jacobian terms see eval-mode and whose reconstruction sees
# train-mode BatchNorm optimises two different functions, and with frozen BatchNorm Adam diverges even on the
# reconstruction alone; (2) the latent space is first rescaled by the one factor that minimises the two regularisers
# (the plain autoencoder's latent scale is arbitrary, D(E(x)) does not change). λ is chosen by a stated rule, never by
# robust accuracy: the most isometric of the values whose held-out reconstruction error stays within
# `recon_tolerance` of the plain autoencoder's.
#
# **The defence**: classify D(E(x)). A projection changes what the classifier sees: where one of the projections costs
# more than `finetune_threshold` of clean test accuracy, the classifier of notebook 01 is fine-tuned on P(x) of its own
# training images (a random `finetune_subset` of them) for *every* projection defence of that data set (like for like;
# the tables say which). **Attacks** (L2 PGD, Madry et al. 2018, margin loss, step 2.5 ε / steps, [0, 1] pixel scale):
# *transfer*, PGD on the bare classifier whose final iterate is shown to the defended model; *adaptive*, PGD through
# D(E(·)) end to end (the defence is differentiable, so no BPDA is needed; Athalye et al. 2018), with a check that more
# steps and restarts change nothing. **Baselines** on the same images and budgets: no defence, the plain autoencoder of
# the same k, and the orthogonal projection onto the top-k principal components (PCA) of the training images. And the
# attacks of notebook 03: greedy PGD whose gradient is confined to the defence's own manifold (*on*) or to its normal
# space (*off*).

# %% tags=["parameters"]
from typing import Optional

profile: str = "quick"                   # [any] smoke | quick | paper: which settings these are, for the record
datasets: list[str] = ["mnist", "fashion_mnist"]  # [non-empty] any of mnist, fashion_mnist (28x28 conv autoencoders)
n_images: int = 100                      # [≥ 1] correctly classified test images attacked per data set
n_seeds: int = 3                         # [≥ 2] training seeds of the defence: seed (this page's run), seed + 1, ... (paper: 5)
seed_images: int = 50                    # [≥ 1] the first this many attacked images (at most n_images), attacked again for every seed
lambdas: list[float] = [10.0, 30.0]   # [non-empty, > 0] the lambda sweep (one weight for L_iso + L_piso; the paper profile: 3 to 300)
recon_tolerance: float = 0.25            # [> 0] a lambda qualifies if its held-out reconstruction error is at most 1 + this times the plain AE's
iae_epochs: int = 4                      # [≥ 1] I-AE epochs
iae_warm_start: bool = True              # [any] start from the plain AE of notebook 02 (False: from random weights, as Gropp et al.)
iae_train_subset: int = 1000             # [≥ 1] I-AE training images (a random subset of the plain AE's)
iae_batch_size: int = 144                # [≥ 1] images per step (the plain AE's)
iae_lr: float = 3e-4                     # [> 0] Adam learning rate (1e-3 diverges without BatchNorm)
softplus_beta: float = 1.0               # [> 0] Softplus sharpness: 1 is the plain AE's (warm start keeps its function); Gropp et al. use 100
iae_monitor: int = 20                    # [≥ 1] test images at whose encodings the isometry criterion is tracked after every epoch
eps_grid: list[float] = [1.0, 1.5, 2.0, 3.0, 6.0]  # [non-empty, > 0] L2 budgets, [0, 1] pixel scale (6: a large budget, a check of the attack)
attack_steps: int = 50                   # [≥ 1] PGD steps per budget
attack_restarts: int = 1                 # [≥ 1] adaptive PGD restarts (the first from x, the others from random points in the ball)
convergence_eps: float = 1.5             # [> 0] budget of the convergence check
convergence_steps: int = 100             # [≥ 1] steps per restart in the convergence check (2 x 100: 4 x the main run)
convergence_restarts: int = 2            # [≥ 1] restarts in the convergence check
verdict_eps: list[float] = [1.0, 2.0]    # [non-empty, in eps_grid] budgets at which the defences are compared in the verdict table
margin: float = 0.05                     # [> 0, < 1] negligible difference of robust accuracies (5 points)
aa_steps: int = 20                       # [≥ 1] AutoAttack: iterations of APGD-CE, APGD-T and FAB-T (its standard: 100)
aa_targets: int = 3                      # [≥ 1] AutoAttack: target classes of APGD-T and FAB-T (its standard: 9)
square_queries: int = 300                # [≥ 1] AutoAttack: Square Attack's queries per image (its standard: 5,000)
linf_eps: dict[str, float] = {"mnist": 0.3}  # [> 0] AutoAttack in L-inf at this budget per data set (MNIST's standard threat model)
n_jacobian: int = 50                     # [≥ 1] test images at which singular values of J_D and the projection property are measured
projection_radius: float = 0.5           # [> 0] ||n|| of the normal / tangent perturbations of the projection check
finetune_threshold: float = 0.02         # [0..1] a projection costing more clean test accuracy than this: every projection defence of that data set gets a fine-tuned classifier
finetune_epochs: int = 5                 # [≥ 1] epochs of fine-tuning on P(x) (the classifier's own optimiser and training images)
finetune_lr: float = 0.01                # [> 0] learning rate of the fine-tuning
finetune_subset: Optional[int] = 12000   # [≥ 1] fine-tune on a random this many of the classifier's training images (None: all)
manifold_alpha: float = 0.05             # [> 0] step of the on/off-manifold PGD (notebook 03's greedy attack), budget max(eps_grid)
manifold_steps: int = 200               # [≥ 1] its steps (200 x 0.05 is 10: past the budget, then along its sphere)
seed: int = 0                            # [≥ 0] seeds image choice, sampling and attacks
device: str = "auto"                     # [any] auto | cpu | cuda | cuda:N
model_settings: Optional[dict] = None    # [any] the models (docs/running.md, "Profiles"; a key left out: the paper's); None: the profile's

# %%
import pandas as pd

from lib.boundary import autoattack
from lib.figures import plots_defence
from lib.inference import published, verdicts
from lib.infra import runtime
from lib.learn import session
from lib.reporting import report, tables
from lib.studies.defence import checklist, defence, defence_report, defence_seeds, defence_setup, iae_study

run, model_settings, found, missing = session.start("07_isometric_autoencoder_defence", profile, seed, device,
                                                    datasets, model_settings)
defence_report.check_params(lambdas, recon_tolerance, eps_grid, finetune_threshold, seed_images, n_images)
for name, why in defence_setup.drop_unsupported(found, missing).items():
    runtime.show(f"> **{name}: not run.** {runtime.escape(why)}")

# %% [markdown]
# ## Training the I-AE: the λ sweep
# Each λ trains from the same warm start; the held-out terms are measured on test images. The three terms per
# training step show whether the training converged.

# %%
iae_settings = dict(iae_subset=iae_train_subset, epochs=iae_epochs, batch_size=iae_batch_size, lr=iae_lr,
                    softplus_beta=softplus_beta, tolerance=recon_tolerance, monitor=iae_monitor, warm_start=iae_warm_start)
models, sweeps = iae_study.sweep_datasets(  # models: {data set: {"clf", "ae", "iae" (the chosen λ's), "k"}}
    found, model_settings, lambdas, seed=seed, device=run.device, **iae_settings)
sweep_table = iae_study.sweep_table(sweeps)
sweep_table.style.format({"recon": "{:.2f}", "iso": "{:.4f}", "piso": "{:.4f}", "lambda": "{:g}", "train s": "{:.0f}"},
                         na_rep="–").hide(axis="index")

# %%
plots_defence.loss_terms(iae_study.histories(sweeps), iae_warm_start)

# %% [markdown]
# **The isometry criterion**, stated before training: the decoder is isometric when at least 90% of the singular
# values σ of J_D at test encodings lie within ±25% of 1. The curves below track it after every epoch (`iae_monitor`
# test images): the share within ±25% (top) and the 5-95% band of σ (bottom).
#
# **Why the I-AE loss stops short of it.** For u uniform on the unit sphere of the k-dimensional latent space,
# ‖J_D u‖² = Σᵢ σᵢ² uᵢ² has mean mean(σ²) and variance 2 Var(σ²) / (k + 2), so
# L_iso ≈ (√mean(σ²) − 1)² + Var(σ²) / (2 (k + 2) mean(σ²)): once the mean is right, the *spread* of the singular
# values costs only 1/36 of its variance at k = 16, and drawing more u per image changes the noise of the gradient,
# not this expectation. The reconstruction term pays for every bit of flattening, so the optimum keeps a spread.
# Measured outside this page by `bench/bench_isometry.py` (MNIST, the 4,000 offline training images, k = 16, one
# CPU thread, about 5 CPU minutes per setting; share within ±25% and σ 5-95% after the last epoch, held-out
# reconstruction error beside the plain autoencoder's ≈ 9):
#
# | I-AE training | epochs | share | σ 5-95% | reconstruction |
# |---|---|---|---|---|
# | Gropp et al.'s recipe from random weights (Softplus β = 100, λ = 10, Adam 10⁻³) | 23 | 0.38 | 0.17-1.55 | 10.6 |
# | warm start from the plain autoencoder (β = 1, λ = 100, Adam 3·10⁻⁴) | 25 | 0.48 | 0.42-1.48 | 8.5 |
# | metric loss E‖J_Dᵀ J_D u − u‖² = mean (σᵢ² − 1)² in place of L_iso, from random weights, λ = 10 | 17 | 0.58 | 0.20-1.29 | 11.9 |
# | the metric loss, warm start, λ = 100 | 18 | 0.71 | 0.47-1.17 | 12.1 |
#
# Gropp et al.'s loss converges (the warm-started run's share sat at 0.45-0.48 from epoch 4 to 25 while L_iso
# settled near 0.01 and the reconstruction improved) below the criterion; the metric loss, which weighs the spread as
# much as the mean, gets further, at a cost in reconstruction, and none reached 90% in the CPU time tried. **What this
# page shows** (quick profile): the I-AE warm-started from the plain autoencoder and trained `iae_epochs` epochs on
# `iae_train_subset` images: a regularised plain autoencoder whose decoder is closer to an isometry than the plain
# one, not an isometric one, so the verdicts below are about that model. The paper profile trains Gropp et al.'s
# recipe from random weights (Softplus β = 100, 100 epochs on every training image) and shows its curve.

# %%
plots_defence.isometry_curve(iae_study.histories(sweeps), iae_train_subset, iae_monitor)

# %% [markdown]
# ## Is it isometric?
# *Singular values* of J_D at the encodings of test images: all 1 for an isometry. The plain autoencoder's latent
# space is first rescaled by the factor that makes it as isometric as one number can (its D(E(x)) is unchanged), so
# the comparison is about the *spread*, not the arbitrary scale. *Spread* per image: mean |log σ| over the k singular
# values. *Re-encoding*: ‖E(D(z)) − z‖ relative to the rms spread of the encodings (0 if E inverts D on its image).
# *Projection property*: for a perturbation n of norm `projection_radius` orthogonal to the tangent space at x,
# ‖D(E(x + n)) − D(E(x))‖ / ‖n‖ should be 0 for an orthogonal projection, and 1 for n inside the tangent space.

# %%
geometry, sv_values, spread = iae_study.isometry_table(models, found, n_jacobian, projection_radius, seed, run.device)
geometry.style.format(precision=3).hide(axis="index")

# %%
plots_defence.singular_values(sv_values, {name: m["k"] for name, m in models.items()})

# %% [markdown]
# ## The defence under attack
# Images: `n_images` test images the bare classifier gets right. *Clean accuracy* on all test images. Robust
# accuracy: the share of the attacked images that no iterate of the attack misclassified (Wilson 95% intervals); an
# image that a defended model gets wrong without any attack counts as broken at every budget.

# %%
finetune = defence.FinetuneConfig(finetune_epochs, finetune_lr, seed, finetune_subset)
setups, defended, keys, records = defence_report.defend_and_attack(  # keys: each defended model's identity, its results' cache key
    models, found, finetune_threshold, finetune, n_images, eps_grid=eps_grid, steps=attack_steps, restarts=attack_restarts, seed=seed, device=run.device)
clean = pd.DataFrame([row for s in setups.values() for row in s.clean_rows])
clean.style.format({"clean accuracy": "{:.1%}", "CI low": "{:.1%}", "CI high": "{:.1%}"}).hide(axis="index")

# %%
robust = defence_report.robust_table(records, models)
wide = robust.pivot_table(index=["dataset", "attack", "defence"], columns="eps", values="robust accuracy", sort=False)
wide.style.format("{:.0%}")

# %%
results = tables.save_csv(records, profile, "07_records.csv").parent
plots_defence.robust_accuracy_by_dataset(robust, models, f"robust accuracy (n = {n_images}, Wilson 95% intervals)",
                                         save=results / "07_answer.png")

# %% [markdown]
# ## Did the adaptive attack converge?
# At ε = `convergence_eps`: robust accuracy after each iteration of a longer attack with restarts, beside the
# value of the main run. A curve that is still falling means the main run overstates robustness.

# %%
curves, long_records, convergence_table, unconverged = defence_report.convergence(
    defended, robust, keys=keys, eps=convergence_eps, steps=convergence_steps, restarts=convergence_restarts,
    attack_steps=attack_steps, margin=margin, seed=seed)
plots_defence.convergence(curves, convergence_eps)
defence_report.show_unconverged(unconverged, margin)
convergence_table.style.format(precision=2).hide(axis="index")

# %% [markdown]
# ## AutoAttack
# The field's standard attack (Croce & Hein 2020; torchattacks' implementation), end to end through every defended
# model: APGD-CE, APGD-T (`aa_targets` target classes), FAB-T and the black-box Square Attack (`square_queries`
# queries per image), each run on the images the ones before it left robust, `aa_steps` iterations, at the verdict
# budgets in L2 and, for MNIST, at its standard threat model L-inf ε = 0.3. Each column: robust accuracy after that
# attack and all before it; the last is AutoAttack's. Every adversarial example is checked again (inside the box and
# the ball, misclassified). The verdicts below count an image robust only if neither our attacks nor AutoAttack broke
# it.

# %%
aa_cfg = autoattack.SuiteConfig(aa_steps, aa_targets, square_queries, seed).check()
suite, aa_records, aa_table = defence_report.autoattack(
    defended, keys, transfer=records, l2_eps=verdict_eps, linf_eps=linf_eps, square_eps=max(verdict_eps), cfg=aa_cfg)
tables.save_csv(suite, profile, "07_autoattack_records.csv")
aa_table.style.format({"eps": "{:g}", **{c: "{:.0%}" for c in aa_table if c.startswith("after")}}).hide(axis="index")

# %% [markdown]
# ## The evaluation checklist (Carlini et al. 2019)
# Each check is an assertion on the records above; a failure is shown, not hidden. Noise: two robust accuracies near p
# on n images differ by chance within 1.96 √(2p(1 − p)/n) (at least one image). *White-box*: AutoAttack's APGD-CE,
# APGD-T and FAB-T; *black-box*: Square alone (`square_queries` queries) at the largest verdict budget; *transfer*: PGD
# on the undefended classifier. On the images the white-box attacks left, AutoAttack's own Square run (the same
# settings) is Square alone, and breaking none of them beyond noise is white-box ≤ black-box; Square alone runs again
# only where black-box ≤ transfer needs it, on the images the white-box and the transfer attacks both broke (not for
# "none", which has no transfer check), so its robust accuracy is an upper bound and that check conservative. Published
# projection defences after a standard attack follow, for scale.

# %%
checks = checklist.checklist(tables.stack([records, long_records, aa_records]), suite, large_eps=max(eps_grid),
                             order_eps=max(verdict_eps), converge_eps=convergence_eps, verdict_eps=verdict_eps)
runtime.show(f"**Checklist: {int(checks['pass'].sum())} of {len(checks)} checks pass.**")
checks.style.hide(axis="index")

# %%
published.projection_defences().style.format(precision=2, na_rep="–").hide(axis="index")

# %% [markdown]
# ## On- and off-manifold attacks of the defended models
# The greedy PGD of notebook 03 (step `manifold_alpha`, at most `manifold_steps` steps, budget the largest ε of
# `eps_grid`, the crossing refined by bisection) with its gradient projected onto the tangent space of the defence's
# own manifold (*on-manifold*) or onto its normal space (*off-manifold*): the I-AE's tangent space for the I-AE
# defence, the plain autoencoder's for the plain AE defence and for no defence (notebook 03's attack), the principal
# subspace for PCA. An orthogonal projection removes a normal perturbation to first order and lets a tangent one
# through. PCA removes it exactly, so an off-manifold attack on PCA succeeds only through what clipping x + δ to
# [0, 1] moves into the principal subspace: the column *share of ‖δ‖² in its subspace* measures that leak. Robust
# accuracy at each budget follows from the smallest perturbation found for each image.

# %%
manifold_records, manifold_table = defence_report.manifold_attacks(defended, keys=keys, eps_grid=eps_grid, alpha=manifold_alpha,
                                                       steps=manifold_steps)
manifold_robust = defence_report.robust_table(manifold_records, defended)
plots_defence.robust_accuracy_by_dataset(manifold_robust, defended,
                                         f"attacks confined to each defence's manifold (n = {n_images})")
tables.save_csv(manifold_records, profile, "07_manifold_records.csv")
manifold_table.style.format(precision=2, na_rep="–").format(  # a median among failures: beyond the budget
    lambda v: f"> {max(eps_grid):g}" if v == float("inf") else f"{v:.2f}",
    subset=[c for c in manifold_table.columns if c.startswith("median ‖δ‖")]).hide(axis="index")

# %% [markdown]
# ## Verdicts over training seeds
# *Isometry*: (07a) the I-AE's per-image spread mean|log σ| is smaller than the plain autoencoder's by more than
# log 1.1 (paired sign tests); (07b) the I-AE's per-image spread lies below log 1.25 (sign test: more than half the
# images within ±25% on average). *Defence*, at each budget in `verdict_eps`: (07c) the I-AE defence keeps more
# images robust under off-manifold than under on-manifold PGD (DMM's reading of a projection defence: it stops what
# leaves the manifold); (07d) the I-AE defence keeps more images robust than each baseline, an image counting as
# robust only if no attack run on that defence broke it at that budget. Both by more than `margin` (Tango's score
# test against the margin; Agresti-Min 95% interval of the difference).
#
# **Why over seeds.** Rounding-level changes of the trained weights (another thread count, another order of sums)
# move the I-AE, the classifiers fine-tuned on P(x) and, with them, these verdicts: one training run is one draw of
# the defence. So the defence is trained `n_seeds` times. **What a seed varies**: the I-AE's training at the λ chosen
# above on the first seed's sweep by the stated rule (its subset of training images, batch order and latent draws),
# and the classifiers fine-tuned on P(x) of every projection defence (their training subset and batch order), the
# fine-tune policy applied again to each seed's projections. **What it keeps**: notebook 01's classifier (the "none"
# defence), notebook 02's plain autoencoder (retraining it per seed is notebook 09's subject and costs minutes per
# seed), the PCA projection, the attacked images and every attack with its own seed: the instrument stays, the trained
# defence changes. The first seed is the run above. Every seed's rows use the same attacks on the first `seed_images`
# attacked images (the images every seed shares) at the verdict budgets: 07c the I-AE's on- and off-manifold PGD; 07d
# the worst case per image of transfer PGD, adaptive PGD and AutoAttack (L2, run on the images PGD left robust, the
# only ones where it can change the worst case). The baselines' confined PGD, Square alone and the longer run are left
# out (on the first seed the line below says how much they change), and the convergence check is the first seed's.
#
# Each seed's rows are judged as one network's table (its own Holm family); each row is then pooled over the seeds:
# the mean of the seeds' robust-accuracy differences (each the mean of its per-image paired outcomes −1, 0, 1; for
# 07a and 07b the seeds' medians), with a standard error that adds the images' covariance across seeds (a bootstrap
# over images that keeps each image's outcomes across seeds together) to the seeds' own spread, and a t test with
# Satterthwaite's degrees of freedom (as notebook 09 pools). The pooled rows form this notebook's Holm family; a row
# is *supported* only where the pooled test clears the margin and every seed's effect lies on the predicted side.

# %%
every = tables.stack([records, manifold_records, long_records, aa_records])
worst = defence_report.robust_table(checklist.worst(every), models)
plan = defence_seeds.Plan(iae_settings, model_settings.ae_train_subset, finetune, finetune_threshold, tuple(eps_grid),
                          tuple(verdict_eps), attack_steps, attack_restarts, (manifold_alpha, manifold_steps), aa_cfg, n_jacobian,
                          projection_radius, margin)
over = defence_seeds.replicate(defence_seeds.FirstRun(models, sweeps, defended, every, spread, unconverged), found,
                               defence_seeds.seeds_of(seed, n_seeds), seed_images, plan, run.device)
defence_seeds.show_summary(over, n_images)

# %% [markdown]
# **Each seed's verdicts** (on the `seed_images` shared images; each seed its own Holm family).

# %%
defence_seeds.per_seed_view(over.per_seed)

# %% [markdown]
# **The verdicts, pooled over the seeds** (N: seeds), with how many seeds' own verdicts agree. Forest plots: each
# seed's robust-accuracy difference with its 95% interval (coloured by its own verdict) and the pooled mean (diamond);
# grey: the negligible band.

# %%
runtime.show(defence_report.rules_markdown(margin))
defence_seeds.pooled_view(over.pooled)

# %%
forests = plots_defence.seed_forests(over, models, margin, results)

# %% [markdown]
# ## The answer

# %%
answer = defence_report.answer(models, worst, manifold_robust, over.pooled, verdict_eps, eps_grid)
for s in answer:
    runtime.show(f"**{s}**")

# %%
report.write_results(
    run, "07 · The Isometric-Autoencoder defence",
    headline=defence_report.headlines(models, worst, spread, verdict_eps),
    data_sources={name: d.describe() for name, d in found.items()}, unavailable=missing,
    answer=answer, answer_figure="07_answer.png" if models else None,
    caveats=defence_report.caveats(iae_epochs, iae_train_subset, n_images, iae_warm_start) if models else [],
    lambda_choice={name: {"lambda": s.lam, "reason": s.why} for name, s in sweeps.items()}, sweep=sweep_table,
    geometry=geometry, clean=clean, robust=robust, convergence=convergence_table, autoattack=aa_table, checklist=checks,
    worst_case=worst, records_csv=["07_records.csv", "07_manifold_records.csv", "07_autoattack_records.csv"],
    finetuned={name: s.finetuned for name, s in setups.items() if s.finetuned}, manifold_attacks=manifold_table,
    manifold_robust=manifold_robust, verdicts=verdicts.results(over.pooled), per_seed=verdicts.results(over.per_seed),
    seed_models=over.models.to_dict(orient="records"), forest_figures=forests,
    seeds={"seeds": over.seeds, "images": seed_images, "varied": "I-AE training, fine-tuned classifiers"})
print(f"wall time: {run.elapsed():.0f} s")
