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
# # 08 · Can the method see DMM where it is true?
#
# Two answers a supporter of the Dimpled Manifold Model (DMM; Shamir, Melamed & BenShmuel 2021) could give to
# notebooks 03–05: "your autoencoder's tangent space is not the data manifold", and "your attacks and tests would say
# the same whatever the geometry". This notebook answers both with **positive controls**: synthetic worlds (offline,
# seeded, n = 784 pixels so that k/n is MNIST's) whose manifold and tangent space, and in world 1 the decision boundary
# too, are known exactly, run through the same chain as notebooks 03–05: greedy L2 PGD with the gradient projected on
# or off a subspace (`lib.boundary.attacks.pgd_l2` via `lib.experiments.shards.attack_images`), a random orthonormal
# subspace of the same k as the control (`lib.geometry.subspaces`), per-image records of the same columns, the claims of
# notebook 05 (`lib.studies.manifold.claims`, unchanged) and the report's one verdict rule
# (`lib.inference.verdicts.judge`).
#
# * **World 1, a dimpled world** (DMM true by construction): data on a k-dimensional affine subspace x = c + U z inside
#   the [0, 1] box, two classes on either side of a hyperplane h(z) = w·z = 0 inside it, and a classifier written in
#   closed form, F(x) = h(z) + β v·(x − c − UUᵀ(x − c)) with v normal to the manifold. A straight attack along the
#   projected gradient meets the boundary at |h| on the manifold, |h|/β off it, |h|/√(1+β²) unconstrained: every
#   claim's value is known. The steepness s = β/‖∇h‖ moves the world from a boundary across the manifold (s → 0),
# through   "general position" (the tangent space behaves like a random subspace, s ≈ √((n−k)/k)), to a deep dimple.
# * **World 2, a linear manifold with a trained network** (Melamed, Yehudai & Vardi 2023): ten classes as clusters
#   inside a known k-dimensional subspace, notebook 01's MLP trained on them. Their theorem: a two-layer ReLU network
#   trained on data in a linear subspace has a large gradient orthogonal to it, shrunk by a smaller initialisation
#   scale or by weight decay. Does training make a dimple, and do the knobs move it as the theory says?
# * **World 3, a curved manifold of images**: images G(z) of a fixed decoder G (an MNIST autoencoder's) from
#   k-dimensional codes, labels from clusters of the codes; the true tangent space at G(z) is the column space of
#   J_G(z). A classifier and a *fresh* autoencoder of the same k trained on these images: how close is the fresh
#   autoencoder's tangent space to the true one, and what do the claims say with each? Compared with Bordt, Upadhyay,
#   Akata & von Luxburg 2023 (VAE-generated MNIST-like images, k = 10, d = 1024: gradient fraction ‖P_T g‖/‖g‖ 0.31
#   for a standard LeNet, 0.096 for a random vector, 0.675 after L2 adversarial training).
#
# Every verdict row here is **synthetic** (the data set column says which world) and is judged in its own Holm family,
# *08 · known manifolds*, never pooled with the real data sets of notebook 05.

# %% tags=["parameters"]
profile: str = "quick"  # [any] smoke | quick | paper: which settings these are, for the record
seed: int = 0  # [≥ 0] seeds every world (manifold, classifier, images, random subspaces)
k: int = 16  # [≥ 1, < 784] the manifold's dimension in every world (MNIST's latent dimension, so k/n is MNIST's)
world_images: int = 50  # [≥ 1] test images per world (world 1: per steepness)
steepness: list[float] = [1.0, 4.0, 7.0, 8.0, 9.0, 10.0, 12.0, 16.0, 32.0]  # [non-empty, ≥ 0] world 1's dimple steepness s: beta / ||grad h||, the normal slope against h's
world_attack: dict[str, float] = {"eps": 10.0, "alpha": 0.01, "steps": 1000}  # [any] PGD of every world and condition, [0, 1] pixel scale, unclipped
init_scales: list[float] = [1.0, 0.25, 0.0625]  # [non-empty, > 0] world 2: the MLP's first-layer initialisation scale (x1, x1/4, x1/16)
weight_decays: list[float] = [0.0, 0.0001, 0.001]  # [non-empty, ≥ 0] world 2: weight decays (at init x1)
w2_train: int = 2000  # [≥ 10] world 2: training points (ten clusters in the subspace)
w2_epochs: int = 40  # [≥ 1] world 2: SGD epochs (lr 0.01, batch 200: notebook 01's MNIST setting)
g_epochs: int = 5  # [≥ 1] world 3: epochs of the MNIST autoencoder whose decoder is G (cached; 02's settings give 02's model)
g_train: int = 2000  # [≥ 1] world 3: MNIST training images G is trained on
g_width: int = 8  # [≥ 1] world 3: G's first conv width
w3_train: int = 2000  # [≥ 1] world 3: training images G(z) for the classifier and the fresh autoencoder
w3_clf_epochs: int = 20  # [≥ 1] world 3: epochs of notebook 01's MLP on G's images
w3_ae_epochs: int = 6  # [≥ 1] world 3: epochs of the fresh autoencoder (same k, width g_width)
fp_worlds: int = 12  # [≥ 1] independent world-1 seeds at the flat-boundary steepness and at the margin: false-positive rate
margin: float = 1.1  # [> 1] ratios within [1/margin, margin] are negligible (notebook 05's margin)
alpha: float = 0.05  # [> 0, < 1] family-wise error rate: Holm over every row of this notebook

# %%
from IPython.display import display

from lib.figures import plots_worlds
from lib.inference import verdicts
from lib.infra import runtime
from lib.reporting import report
from lib.studies.worlds import worlds, worlds_report, worlds_trained
from lib.experiments.shards import AttackSettings

run = runtime.start("08_known_manifolds", profile, seed, "cpu")
runtime.show("**Data**: synthetic worlds generated here from the seed (no data set is read); n = 784, k = "
             f"{k}; {world_images} test images per world.")
settings = {c: AttackSettings(**world_attack, clip=False) for c in ("unconstrained", "on", "off")}
FAMILY = "08 · known manifolds"
results = report.results_dir(profile)
results.mkdir(parents=True, exist_ok=True)
progress = lambda it: runtime.progress(it, desc="world 1: steepness", leave=False)

# %% [markdown]
# ## World 1: the power curve of the whole chain
# For each steepness: unconstrained PGD, PGD on and off the world's true tangent space span(U), and on and off a random
# orthonormal subspace of the same k (drawn per image). The world is placed so that clipping never binds, so the
# attacks run unclipped (claim 1b's flat-boundary reference holds only there); the check below counts adversarial pixels
# outside [0, 1]. Each attack's refined norm is compared with its analytic distance |F| / ‖P g‖.

# %%
w1_records, w1_errors = worlds.sweep(steepness, settings, world_images, k, seed, progress)
tol = world_attack["alpha"] / 2 ** 12
runtime.show(f"Largest |refined PGD norm − analytic distance| over every successful attack: "
             f"{max(w1_errors.values()):.2g} (bisection tolerance α/2¹² = {tol:.2g}, plus float32 rounding over the "
             f"steps); success rate {w1_records['success'].mean():.1%}.")
w1_rows = worlds.world_rows(w1_records, margin)

# %% [markdown]
# ## World 2: does training make a dimple? (Melamed, Yehudai & Vardi 2023)
# The first layer's initial weights scaled by `init_scales` (at weight decay 0), then the weight decays (at ×1). Why the
# knobs should matter: the loss gradient with respect to the first layer is (error)·xᵀ with x in the data's span, so the
# first layer's weights off the subspace keep their initial values, shrunk by weight decay only by exp(−lr·wd·steps)
# (last column). Per image: the input gradient's norm in the subspace and off it, at correctly classified test images.

# %%
grads, w2_records, w2_summary = worlds_trained.melamed_sweep(
    init_scales, weight_decays, settings, k, world_images, w2_train, w2_epochs, seed,
    progress=lambda it: runtime.progress(it, desc="world 2: settings", leave=False))
display(w2_summary.style.format(precision=3).hide(axis="index"))
fig = plots_worlds.melamed_sweep(grads, f"World 2: the input gradient in and off the data's subspace (k = {k})")
trends = worlds_trained.trend_table(grads)
runtime.show("**Trend tests** (Page's L test, images as blocks, settings in the knob's order; *grad_off*: the gradient "
             "off the subspace should fall, *share*: its energy share in the subspace should rise):")
display(trends.style.format({"L": "{:.0f}", "p": "{:.2g}"}).hide(axis="index"))
w2_rows = worlds.world_rows(w2_records, margin)

# %% [markdown]
# ## World 3: a curved manifold of images
# G is the decoder of an MNIST autoencoder (`g_*`: lib.learn.train's cache; notebook 02's settings would give 02's
# model), the codes are its encodings of MNIST training images. *Overlap*: ‖Q_aeᵀ Q_true‖²_F / k, the mean squared
# cosine of the principal angles between the fresh autoencoder's tangent space and the true one (1: the same; a random
# subspace: about k/n). *Fraction*: ‖P g‖/‖g‖ of the classifier's input gradient, not squared, as Bordt et al. report
# it.

# %%
w3_rows, w3_images, w3_facts = worlds_trained.curved_world(
    settings, k, world_images, g_epochs=g_epochs, g_train=g_train, g_width=g_width, n_train=w3_train,
    clf_epochs=w3_clf_epochs, ae_epochs=w3_ae_epochs, margin=margin, seed=seed)
if len(w3_images):
    display(worlds_trained.fraction_table(w3_images, k).style.format(precision=3).set_caption("World 3, per test image"))

# %% [markdown]
# ## Every world's verdicts, one Holm family
# Claims 1, 1b, 3 (against a random subspace) and 4 of every world, judged as one family. World 1's rows against the
# steepness first (the power curve), then the other worlds' table.

# %%
table = verdicts.judge(w1_rows + w2_rows + w3_rows, FAMILY, alpha)
w1, analytic, turning = worlds_report.power_curve(table, k, margin)  # analytic: {claim: effect as a function of s}
fig = plots_worlds.power_curve(w1, analytic, dict(zip(turning["claim_id"], turning["s analytic"])), margin,
                               f"World 1: each discriminating claim's effect against the dimple's steepness (k = {k}, "
                               f"n = 784, {world_images} images per point)")
fig.savefig(results / "08_power_curve.png", dpi=110, bbox_inches="tight")
display(turning.rename(columns={"s measured": "first swept s from which supported", "s analytic": "analytic s (effect "
                                "= margin)"}).style.format(precision=2, na_rep="not within the sweep").hide(axis="index"))

# %%
cols = {"dataset": "world", "short": "claim", "effect_text": "effect [CI]", "analytic": "analytic", "statistic": "test",
        "p_margin_holm": "p (margin, Holm)", "n": "N", "power": "power", "verdict": "verdict"}
display(w1[list(cols)].rename(columns=cols).style.format({"analytic": "{:.3g}", "p (margin, Holm)": "{:.2g}",
                                                          "power": "{:.2f}"}, na_rep="–").hide(axis="index"))
others = table[~table["dataset"].str.startswith("world 1")]
display(others[[c for c in cols if c in others]].rename(columns=cols).style.format(
    {"p (margin, Holm)": "{:.2g}", "power": "{:.2f}"}, na_rep="–").hide(axis="index"))
runtime.show(verdicts.rules_markdown(FAMILY, f"Negligible band: ratios within ×/÷ {margin:g}."))

# %% [markdown]
# ### False positives on the flat side
# `fp_worlds` independent worlds (seeds) at the flat-boundary steepness, where the true tangent space is in general
# position (every discriminating effect is 0: "dimension alone"; claim 1 is supported there, as dimension alone
# predicts), and, for claims 3 and 4, at the claim's analytic turning point, where its effect sits exactly at the margin
# (the least favourable null: the rule promises at most α there). Each world's rows are judged as their own Holm family.
# With a dozen worlds the check cannot show a rate ≤ α: 0 of 12 bounds it only below about 26% (the interval in the
# table says so). The flat worlds are not the test of the promise; the margin is, and it needs a hundred worlds or
# more: with simulated per-image records at the margin (`bench/simulate_verdicts.py`, 300 worlds) the rule's rates
# are 3.7-4.0% for claim 4's median, 4.3% for seeds pooled over shared images.

# %%
fp = worlds_report.false_positives(settings, fp_worlds, world_images, k, margin, alpha, seed)
display(fp.style.format({"steepness": "{:.2f}", "rate": "{:.0%}", "CI low": "{:.0%}", "CI high": "{:.0%}"})
        .hide(axis="index"))

# %%
report.write_results(
    run, "08 · Can the method see DMM where it is true?", headline=worlds_report.headlines(turning, w3_images, k),
    answer=worlds_report.answer(turning, fp, w3_images),
    data_sources={"synthetic": "worlds generated from the seed (n = 784)",
                  **({"mnist": f"world 3's G: {w3_facts['mnist_source']}"} if "mnist_source" in w3_facts else {})},
    verdicts=verdicts.results(table), turning_points=turning, false_positives=fp,
    power_curve=dict(zip(("analytic", "measured"), worlds_report.curve_records(w1, analytic))),
    analytic_errors=w1_errors, melamed=w2_summary, melamed_trends=trends,
    world3={"facts": w3_facts, "per_image_median": w3_images.median().to_dict(), "per_image_mean": w3_images.mean().to_dict()},
    settings={"k": k, "world_images": world_images, "steepness": steepness, "margin": margin, "alpha": alpha})
print(f"wall time: {run.elapsed():.0f} s")
