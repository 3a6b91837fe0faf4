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
# **The I-AE loss** (lib/iae.py): ‖D(E(x)) − x‖² + λ (L_iso + L_piso), one λ for both terms, with
# L_iso = E (‖J_D(z) u‖ − 1)² (z drawn from a diagonal Gaussian fitted to the batch's encodings, u a random unit
# latent vector; J_D u by a forward-mode jvp) and L_piso = E (‖uᵀ J_E(x)‖ − 1)² (a reverse-mode vjp). The norms are of
# whole vectors, not element-wise.
#
# **Training** starts from the plain autoencoder of notebook 02 (the same layers; warm start) with two changes that
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
# training images for *every* projection defence of that data set (like for like; the tables say which). **Attacks** (L2 PGD, Madry
# et al. 2018, margin loss, step 2.5 ε / steps, [0, 1] pixel scale): *transfer*, PGD on the bare classifier whose final
# iterate is shown to the defended model; *adaptive*, PGD through D(E(·)) end to end (the defence is
# differentiable, so no BPDA is needed; Athalye et al. 2018), with a check that more steps and restarts change
# nothing. **Baselines** on the same images and budgets: no defence, the plain autoencoder of the same k, and the
# orthogonal projection onto the top-k principal components (PCA) of the training images. And the attacks of notebook
# 03: greedy PGD whose gradient is confined to the defence's own manifold (*on*) or to its normal space (*off*).

# %% tags=["parameters"]
from typing import Optional, Union

profile: str = "quick"                   # smoke | quick | paper: which settings these are, for the record
datasets: list[str] = ["mnist", "fashion_mnist"]  # any of mnist, fashion_mnist (28x28 conv autoencoders)
n_images: int = 100                      # correctly classified test images attacked per data set
lambdas: list[float] = [10.0, 30.0, 100.0]  # the lambda sweep (one weight for L_iso + L_piso)
recon_tolerance: float = 0.25            # a lambda qualifies if its held-out reconstruction error is at most 1 + this times the plain AE's
iae_epochs: int = 4                      # I-AE epochs (warm start from the plain AE of notebook 02)
iae_train_subset: int = 1000             # I-AE training images (a random subset of the plain AE's)
iae_batch_size: int = 144                # images per step (the plain AE's)
iae_lr: float = 3e-4                     # Adam learning rate (1e-3 diverges without BatchNorm)
softplus_beta: float = 1.0               # Softplus sharpness: 1 is the plain AE's (warm start keeps its function); Gropp et al. use 100
eps_grid: list[float] = [0.5, 1.0, 1.5, 2.0, 3.0, 6.0]  # L2 budgets, [0, 1] pixel scale (6: a large budget, a check of the attack)
attack_steps: int = 50                   # PGD steps per budget
attack_restarts: int = 1                 # adaptive PGD restarts (the first from x, the others from random points in the ball)
convergence_eps: float = 1.5             # budget of the convergence check
convergence_steps: int = 150             # steps per restart in the convergence check
convergence_restarts: int = 2            # restarts in the convergence check
verdict_eps: list[float] = [1.0, 2.0]    # budgets at which the defences are compared in the verdict table
margin: float = 0.05                     # negligible difference of robust accuracies (5 points)
n_jacobian: int = 50                     # test images at which singular values of J_D and the projection property are measured
projection_radius: float = 0.5           # ||n|| of the normal / tangent perturbations of the projection check
finetune_threshold: float = 0.02         # a projection costing more clean test accuracy than this: every projection defence of that data set gets a fine-tuned classifier
finetune_epochs: int = 5                 # epochs of fine-tuning on P(x) (the classifier's own optimiser and training images)
finetune_lr: float = 0.01                # learning rate of the fine-tuning
manifold_alpha: float = 0.05             # step of the on/off-manifold PGD (notebook 03's greedy attack), budget max(eps_grid)
manifold_steps: int = 300                # its steps
seed: int = 0                            # seeds image choice, sampling and attacks
device: str = "auto"                     # auto | cpu | cuda | cuda:N
# The models' settings: shared with notebooks 01 and 02 (params/<profile>.yaml, `all`), so these are their models.
classifier_epochs: Union[int, dict[str, int], None] = {"mnist": 200}  # epochs (or {dataset: epochs}); None: the paper's 40 (MNIST: 200 on the 4,000-image sample)
classifier_train_subset: Union[int, dict[str, int], None] = None  # train on this many random images (or {dataset: n}); None: all
ae_epochs: Union[int, dict[str, int], None] = {"mnist": 40, "fashion_mnist": 12}  # epochs (or {dataset: epochs}); None: the paper's
ae_train_subset: Union[int, dict[str, int], None] = {"fashion_mnist": 12000}  # train on this many random images (or {dataset: n}); None: all
ae_latent_dim: Union[int, dict[str, int], None] = None  # latent dimension k (or {dataset: k}); None: the paper's
ae_width: Optional[int] = 16             # channels of the first conv layer; None: 32 (16: a third of the CPU time)

# %%
import numpy as np
import pandas as pd
import torch

from lib import data, defence, defence_claims, experiment, iae, manifold, plots_defence, report, runtime, stats, subspaces, train, verdicts

run = runtime.start("07_isometric_autoencoder_defence", profile, seed, device)
if not 0 < recon_tolerance or not lambdas or min(lambdas) < 0:
    raise ValueError("recon_tolerance must be > 0 and lambdas a non-empty list of values >= 0")
if not 0 <= finetune_threshold < 1 or not eps_grid or min(eps_grid) <= 0:
    raise ValueError("finetune_threshold must be in [0, 1) and eps_grid a non-empty list of budgets > 0")
found, missing = data.load_all(datasets)
for name, message in missing.items():
    runtime.show(f"> **{name}: data not available.** {runtime.escape(message)}")
for name in [n for n in found if found[n].shape != (1, 28, 28)]:
    missing[name] = "the I-AE of this notebook is the 28x28 conv autoencoder (MNIST, Fashion-MNIST)"
    runtime.show(f"> **{name}: not run.** {runtime.escape(missing[name])}")
    found.pop(name)

# %% [markdown]
# ## Training the I-AE: the λ sweep
# Each λ trains from the same warm start; the held-out terms are measured on test images. The three terms per
# training step show whether the training converged.

# %%
models, sweeps, choice = {}, {}, {}
for name, d in found.items():
    clf = train.classifier_for(d, seed, run.device, classifier_epochs, classifier_train_subset)
    ae = train.autoencoder_for(d, seed, run.device, ae_epochs, ae_train_subset, ae_latent_dim, ae_width)
    k = ae.model.latent_dim
    sub = d.subset(runtime.per_dataset(ae_train_subset, name), None, seed).subset(iae_train_subset, None, seed)
    held = d.test_x[:500].to(run.device)
    plain_terms = iae.held_out_terms(iae.rescale_latent(
        iae.fold_batchnorm(ae.model, iae.isometric_autoencoder(d.shape, k, ae.model.feature_shape[0] // 4, 1.0)),
        iae.latent_scale(ae.model, held, torch.Generator().manual_seed(seed))).to(run.device), held, seed)
    trained, sweep = {}, {}
    for lam in lambdas:
        cfg = iae.IAEConfig(name, k, ae.model.feature_shape[0] // 4, lam, iae_epochs, iae_batch_size, iae_lr,
                            softplus_beta, warm_start=ae.key, seed=seed)
        trained[lam] = iae.get_iae(cfg, sub, run.device, warm=ae)
        sweep[lam] = iae.held_out_terms(trained[lam].model, held, seed)
    lam, why = iae.choose_lambda(sweep, plain_terms["recon"], recon_tolerance)
    models[name] = {"clf": clf, "ae": ae, "iae": trained[lam], "k": k}
    sweeps[name], choice[name] = (plain_terms, sweep, trained), (lam, why)
    print(f"{name}: classifier {clf.summary()}, plain AE (k = {k}) {ae.summary()}; "
          + "; ".join(f"I-AE λ={v:g} {t.summary()}" for v, t in trained.items()))

sweep_table = pd.DataFrame(
    [{"dataset": name, "model": "plain AE (latent rescaled)", "lambda": None, **sweeps[name][0]} for name in sweeps]
    + [{"dataset": name, "model": "I-AE", "lambda": lam, **t, "train s": sweeps[name][2][lam].meta["train_seconds"]}
       for name in sweeps for lam, t in sweeps[name][1].items()])
for name, (lam, why) in choice.items():
    runtime.show(f"**{name}**: {why}.")
sweep_table.style.format({"recon": "{:.2f}", "iso": "{:.4f}", "piso": "{:.4f}", "lambda": "{:g}", "train s": "{:.0f}"},
                         na_rep="–").hide(axis="index")

# %%
for name in sweeps:
    plots_defence.loss_terms({lam: t.meta["history"] for lam, t in sweeps[name][2].items()},
                             f"{name}: I-AE loss terms during training (warm start from the plain AE)")

# %% [markdown]
# ## Is it isometric?
# *Singular values* of J_D at the encodings of test images: all 1 for an isometry. The plain autoencoder's latent
# space is first rescaled by the factor that makes it as isometric as one number can (its D(E(x)) is unchanged), so
# the comparison is about the *spread*, not the arbitrary scale. *Spread* per image: mean |log σ| over the k singular
# values. *Re-encoding*: ‖E(D(z)) − z‖ relative to the rms spread of the encodings (0 if E inverts D on its image).
# *Projection property*: for a perturbation n of norm `projection_radius` orthogonal to the tangent space at x,
# ‖D(E(x + n)) − D(E(x))‖ / ‖n‖ should be 0 for an orthogonal projection, and 1 for n inside the tangent space.

# %%
geometry, sv_values, spread = [], {}, {}
for name, m in models.items():
    d = found[name]
    x = d.test_x[:n_jacobian].to(run.device)
    g = torch.Generator().manual_seed(seed)
    plain = iae.fold_batchnorm(m["ae"].model, iae.isometric_autoencoder(d.shape, m["k"], m["ae"].model.feature_shape[0] // 4, 1.0))
    plain = iae.rescale_latent(plain, iae.latent_scale(plain, x, g)).to(run.device).eval()
    for label, net in (("plain AE", plain), ("I-AE", m["iae"].model)):
        z = net.encode(x).detach()
        sv = iae.decoder_singular_values(net, z)
        sv_values[name, label] = sv.cpu().numpy()
        spread[name, label] = sv.log().abs().mean(1).cpu().numpy()
        normal, tangent = iae.projection_ratios(net, x, manifold.tangent_basis(net, x), projection_radius, g)
        zs = iae.gaussian_latents(z, g)
        geometry.append({"dataset": name, "model": label, "median σ": float(sv.median()),
                         "σ 5%": float(sv.quantile(0.05)), "σ 95%": float(sv.quantile(0.95)),
                         "median max σ / min σ": float((sv[:, 0] / sv[:, -1]).median()),
                         "median spread mean|log σ|": float(np.median(spread[name, label])),
                         "re-encoding error (data)": float(iae.reencoding_error(net, z).median()),
                         "re-encoding error (sampled z)": float(iae.reencoding_error(net, zs).median()),
                         "normal ratio": float(normal.median()), "tangent ratio": float(tangent.median())})
geometry = pd.DataFrame(geometry)
geometry.style.format(precision=3).hide(axis="index")

# %%
for name in models:
    plots_defence.singular_values({label: sv_values[name, label] for label in ("plain AE", "I-AE")},
                                  f"{name}: singular values of the decoder's Jacobian (k = {models[name]['k']})")

# %% [markdown]
# ## The defence under attack
# Images: `n_images` test images the bare classifier gets right. *Clean accuracy* on all test images. Robust
# accuracy: the share of the attacked images that no iterate of the attack misclassified (Wilson 95% intervals); an
# image that a defended model gets wrong without any attack counts as broken at every budget.

# %%
def clean_row(name, label, classifier, net, d):
    wrong = defence.misclassified(net, d.test_x.to(run.device), d.test_y.to(run.device))
    k_ok = int((~wrong).sum())
    lo, hi = stats.wilson_ci(k_ok, len(wrong))
    return {"dataset": name, "defence": label, "classifier": classifier, "clean accuracy": k_ok / len(wrong),
            "CI low": lo, "CI high": hi, "n": len(wrong)}


records, clean_rows, defended, finetuned = [], [], {}, {}
for name, m in models.items():
    d = found[name]
    pca = defence.PCAProjection(d.train_x, m["k"]).to(run.device)
    projections = {"pca": (pca, f"pca-k{m['k']}-{d.identity()}"), "plain AE": (m["ae"].model, m["ae"].key),
                   "I-AE": (m["iae"].model, m["iae"].key)}
    defs = {"none": defence.Projected(m["clf"].model),
            **{label: defence.Projected(m["clf"].model, p) for label, (p, _) in projections.items()}}
    base = {label: clean_row(name, label, "notebook 01", net, d) for label, net in defs.items()}
    clean_rows += base.values()
    drop = {label: base["none"]["clean accuracy"] - base[label]["clean accuracy"] for label in projections}
    if max(drop.values()) > finetune_threshold:
        cfg = defence.FinetuneConfig(finetune_epochs, finetune_lr, seed)
        tuned = {label: defence.finetune_on_projection(m["clf"], p, pid, cfg, run.device)
                 for label, (p, pid) in projections.items()}
        defs.update({label: defence.Projected(tuned[label].model, projections[label][0]) for label in tuned})
        clean_rows += [clean_row(name, label, "fine-tuned on P(x)", defs[label], d) for label in tuned]
        finetuned[name] = {label: t.summary() for label, t in tuned.items()}
        runtime.show(f"**{name}**: the largest clean-accuracy cost of a projection is {100 * max(drop.values()):.1f} points "
                     f"({max(drop, key=drop.get)}), above {100 * finetune_threshold:g}: the projection defences below use "
                     f"classifiers fine-tuned on P(x) ({finetune_epochs} epochs; "
                     + ", ".join(f"{k}: {v}" for k, v in finetuned[name].items()) + ").")
    else:
        runtime.show(f"**{name}**: no projection costs more than {100 * finetune_threshold:g} points of clean accuracy: "
                     f"the defences use the classifier of notebook 01.")
    ids = experiment.pick_correct(m["clf"].model, d.test_x, d.test_y, n_images, seed, run.device)
    x, y = d.test_x[ids].to(run.device), d.test_y[ids].to(run.device)
    defended[name] = (defs, x, y)
    r = defence.attack_defences(defs, m["clf"].model, x, y, eps_grid, attack_steps, attack_restarts, seed)
    records.append(r.assign(dataset=name))
records = pd.concat(records, ignore_index=True) if records else pd.DataFrame(
    columns=["defence", "attack", "eps", "image", "broken", "first_step", "dataset"])
clean = pd.DataFrame(clean_rows)
clean.style.format({"clean accuracy": "{:.1%}", "CI low": "{:.1%}", "CI high": "{:.1%}"}).hide(axis="index")

# %%
robust = pd.concat([defence.robust_accuracy(records[records["dataset"] == n]).assign(dataset=n) for n in models]
                   or [pd.DataFrame(columns=["defence", "attack", "eps", "robust accuracy", "dataset"])], ignore_index=True)
wide = robust.pivot_table(index=["dataset", "attack", "defence"], columns="eps", values="robust accuracy", sort=False)
wide.style.format("{:.0%}")

# %%
results = report.results_dir(profile)
results.mkdir(parents=True, exist_ok=True)
records.to_csv(results / "07_records.csv", index=False)
for name in models:
    fig = plots_defence.robust_accuracy_vs_eps(robust[robust["dataset"] == name],
                                               f"{name}: robust accuracy (n = {n_images}, Wilson 95% intervals)")
    if name == next(iter(models)):
        fig.savefig(results / "07_answer.png", dpi=90)

# %% [markdown]
# ## Did the adaptive attack converge?
# At ε = `convergence_eps`: robust accuracy after each iteration of a longer attack with restarts, beside the
# value of the main run. A curve that is still falling means the main run overstates robustness.

# %%
convergence_rows, long_records, unconverged = [], [], {}
for name, (defs, x, y) in defended.items():
    curves, main_acc, long_acc = {}, {}, {}
    for label, net in defs.items():
        out = defence.pgd_budget(net, x, y, eps=convergence_eps, steps=convergence_steps,
                                 restarts=convergence_restarts, seed=seed + 1)
        iters = np.arange(0, convergence_steps * convergence_restarts + 1)
        curves[label] = (iters + 1, [(out.first_step > t).float().mean().item() for t in iters])
        long_records.append(pd.DataFrame({"defence": label, "attack": "adaptive (long)", "eps": float(convergence_eps),
                                          "image": np.arange(len(x)), "broken": out.broken.cpu().numpy(), "dataset": name}))
        main = robust[(robust["dataset"] == name) & (robust["defence"] == label) & (robust["attack"] == "adaptive")
                      & (robust["eps"] == convergence_eps)]["robust accuracy"]
        main_acc[label], long_acc[label] = float(main.iloc[0]) if len(main) else np.nan, curves[label][1][-1]
        convergence_rows.append({"dataset": name, "defence": label, f"main run ({attack_steps} steps)": main_acc[label],
                                 f"{convergence_steps} steps x {convergence_restarts} restarts": long_acc[label]})
    unconverged[name] = defence_claims.not_converged(main_acc, long_acc, margin)
    plots_defence.convergence(curves, f"{name}: adaptive PGD at ε = {convergence_eps:g}")
    if unconverged[name]:
        runtime.show(f"> **{name}: the adaptive attack had not converged** for {', '.join(sorted(unconverged[name]))}: "
                     f"the longer run lowers robust accuracy by more than half the margin ({100 * margin / 2:g} points), "
                     "so verdicts that involve them are inconclusive.")
convergence_table = pd.DataFrame(convergence_rows)
convergence_table.style.format(precision=2).hide(axis="index")

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
manifold_records, manifold_rows = [], []
for name, (defs, x, y) in defended.items():
    m = models[name]
    plain_tangent = subspaces.tangent_subspace(m["ae"].model, x)
    subs = {"none": plain_tangent, "plain AE": plain_tangent, "I-AE": subspaces.tangent_subspace(m["iae"].model, x),
            "pca": subspaces.BasisSubspace(defs["pca"].project.Q, "pca")}
    greedy = defence.subspace_attacks(defs, subs, x, y, eps=max(eps_grid), alpha=manifold_alpha, steps=manifold_steps)
    manifold_records.append(defence.records_at(greedy, eps_grid).assign(dataset=name))
    for (label, attack), r in greedy.groupby(["defence", "attack"], sort=False):
        norms = np.where(r["success"], r["norm"], np.inf)
        manifold_rows.append({"dataset": name, "defence": label, "attack": attack,
                              f"broken within ε = {max(eps_grid):g}": float(r["success"].mean()),
                              "median ‖δ‖ (failures count as larger)": float(np.median(norms)),
                              "median share of ‖δ‖² in its subspace": float(r["subspace_share"].median())})
manifold_records = pd.concat(manifold_records, ignore_index=True) if manifold_records else pd.DataFrame(
    columns=["defence", "attack", "eps", "image", "broken", "first_step", "dataset"])
manifold_robust = pd.concat([defence.robust_accuracy(manifold_records[manifold_records["dataset"] == n]).assign(dataset=n)
                             for n in defended] or [pd.DataFrame(columns=["defence", "attack", "eps", "robust accuracy", "dataset"])],
                            ignore_index=True)
for name in defended:
    plots_defence.robust_accuracy_vs_eps(manifold_robust[manifold_robust["dataset"] == name],
                                         f"{name}: attacks confined to each defence's manifold (n = {n_images})")
manifold_records.to_csv(results / "07_manifold_records.csv", index=False)
manifold_table = pd.DataFrame(manifold_rows)
manifold_table.style.format(precision=2, na_rep="–").hide(axis="index")

# %% [markdown]
# ## Verdicts
# *Isometry*: (07a) the I-AE's per-image spread mean|log σ| is smaller than the plain autoencoder's by more than
# log 1.1 (paired sign tests); (07b) the I-AE's per-image spread lies below log 1.25 (sign test: more than half the
# images within ±25% on average). *Defence*, at each budget in `verdict_eps`: (07c) the I-AE defence keeps more
# images robust under off-manifold than under on-manifold PGD (DMM's reading of a projection defence: it stops what
# leaves the manifold); (07d) the I-AE defence keeps more images robust than each baseline, an image counting as
# robust only if no attack run on that defence broke it at that budget. Both by more than `margin` (Tango's score
# test against the margin; Agresti-Min 95% interval of the difference).

# %%
every_attack = pd.concat([records, manifold_records] + long_records, ignore_index=True)
rows = []
for name in models:
    rows += defence_claims.isometry_rows(name, spread[name, "plain AE"], spread[name, "I-AE"])
    rows += defence_claims.defence_rows(name, every_attack[every_attack["dataset"] == name], verdict_eps, margin,
                                        unconverged.get(name, set()))
table = verdicts.judge(rows, defence_claims.FAMILY)
runtime.show(verdicts.rules_markdown(defence_claims.FAMILY, f"Negligible band: ± {100 * margin:g} points of robust "
                                                             "accuracy; log 1.1 of isometry spread."))
table[["short", "dataset", "claim", "effect_text", "margin_text", "p_margin_holm", "n", "power", "verdict"]].style.format(
    {"p_margin_holm": "{:.3g}", "power": "{:.2f}"}, na_rep="–").hide(axis="index")

# %% [markdown]
# ## The answer

# %%
def acc(name, d, attack, eps):
    r = robust[(robust["dataset"] == name) & (robust["defence"] == d) & (robust["attack"] == attack) & (robust["eps"] == eps)]
    return float(r["robust accuracy"].iloc[0]) if len(r) else np.nan

def acc_ci(name, d, attack, eps):
    r = robust[(robust["dataset"] == name) & (robust["defence"] == d) & (robust["attack"] == attack) & (robust["eps"] == eps)]
    return (float(r["CI low"].iloc[0]), float(r["CI high"].iloc[0])) if len(r) else None

def macc(name, attack, eps):
    r = manifold_robust[(manifold_robust["dataset"] == name) & (manifold_robust["defence"] == "I-AE")
                        & (manifold_robust["attack"] == attack) & (manifold_robust["eps"] == eps)]
    return float(r["robust accuracy"].iloc[0]) if len(r) else np.nan

answer = []
for name in models:
    e = verdict_eps[-1] if verdict_eps else eps_grid[-1]
    v = table[(table["dataset"] == name) & (table["claim_id"] == "07d/plain AE") & np.isclose(table["eps"].astype(float), e)] \
        if len(table) and "eps" in table else table.iloc[:0]
    answer.append(f"{name}: against an adaptive attacker at ε = {e:g}, the I-AE defence keeps "
                  f"{acc(name, 'I-AE', 'adaptive', e):.0%} of the images robust, the plain AE {acc(name, 'plain AE', 'adaptive', e):.0%}, "
                  f"PCA {acc(name, 'pca', 'adaptive', e):.0%}, no defence {acc(name, 'none', 'adaptive', e):.0%} "
                  f"(I-AE better than the plain AE: {v['verdict'].iloc[0] if len(v) else 'not tested'}); at ε = {max(eps_grid):g} "
                  f"the adaptive attack leaves {acc(name, 'I-AE', 'adaptive', max(eps_grid)):.0%} (I-AE). Confined to the "
                  f"I-AE's manifold, PGD leaves {macc(name, 'on-manifold', e):.0%} robust at ε = {e:g}; confined to its "
                  f"normal space, {macc(name, 'off-manifold', e):.0%}.")
for s in answer:
    runtime.show(f"**{s}**")

# %%
keep = ["family", "claim_id", "short", "claim", "dataset", "split", "statistic", "effect_text", "effect", "ci_low",
        "ci_high", "margin_text", "eps", "p", "p_holm", "p_margin", "p_margin_holm", "n", "power", "n_needed", "verdict"]
report.write_results(
    run, "07 · The Isometric-Autoencoder defence",
    headline=[report.headline(f"{name}: robust accuracy under adaptive PGD at ε = {e:g}, {label} (Wilson 95% interval)",
                              acc(name, label, "adaptive", e), "%", ci=acc_ci(name, label, "adaptive", e))
              for name in models for e in verdict_eps[-1:] for label in ("I-AE", "plain AE", "pca", "none")]
             + [report.headline(f"{name}: median spread of J_D singular values mean|log σ|, {label}",
                                float(np.median(spread[name, label]))) for name in models for label in ("I-AE", "plain AE")]
             or [report.headline("no data set available", 0)],
    data_sources={name: d.describe() for name, d in found.items()},
    unavailable=missing,
    answer=answer, answer_figure="07_answer.png" if models else None,
    caveats=[f"The I-AE is trained {iae_epochs} epochs on {iae_train_subset:,} images, warm-started from the plain "
             "autoencoder, and robust accuracies come from our own PGD on "
             f"{n_images} images per data set: upper bounds of what a stronger attack leaves."] if models else [],
    lambda_choice={name: {"lambda": lam, "reason": why} for name, (lam, why) in choice.items()},
    sweep=sweep_table.to_dict(orient="records"), geometry=geometry.to_dict(orient="records") if len(geometry) else [],
    clean=clean.to_dict(orient="records") if len(clean_rows) else [], robust=robust.to_dict(orient="records"),
    convergence=convergence_table.to_dict(orient="records"), records_csv=["07_records.csv", "07_manifold_records.csv"],
    finetuned=finetuned, manifold_attacks=manifold_table.to_dict(orient="records"),
    manifold_robust=manifold_robust.to_dict(orient="records"),
    verdicts=table[[c for c in keep if c in table]].to_dict(orient="records") if len(table) else [],
)
print(f"wall time: {run.elapsed():.0f} s")
