"""Figures of notebook 07 (the Isometric-Autoencoder defence): one function per figure kind."""
import matplotlib.pyplot as plt
import numpy as np
from pathlib import Path

from lib.learn.iae import ISO_TARGET, ISO_TOLERANCE

COLOURS = {"none": "tab:gray", "pca": "tab:green", "plain AE": "tab:blue", "I-AE": "tab:red"}


def loss_terms(by_dataset, warm_start=True):
    """The three I-AE terms per training step, one figure per data set: {data set: {λ: history}}."""
    start = "warm start" if warm_start else "random start"
    for name, histories in by_dataset.items():
        _loss_terms(histories, f"{name}: I-AE loss terms during training ({start})")


def _loss_terms(histories, title):
    """The three I-AE terms per training step (log scale), one column per lambda: {lambda: history}."""
    fig, axes = plt.subplots(1, len(histories), figsize=(4 * len(histories), 3), squeeze=False, sharey=True)
    for ax, (lam, h) in zip(axes[0], histories.items()):
        for name, label in (("recon", "reconstruction ||D(E(x)) − x||²"), ("iso", "L_iso"), ("piso", "L_piso")):
            ax.plot(h[name], label=label)
        ax.set_yscale("log")
        ax.set_title(f"λ = {lam:g}")
        ax.set_xlabel("training step (batch)")
    axes[0][0].set_ylabel("loss term (per image)")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    plt.show()


def isometry_curve(histories, n_train, n_images):
    """The isometry criterion against training epochs (top: the share of J_D's singular values within ±ISO_TOLERANCE
    of 1 at `n_images` test encodings, the dashed line its target; bottom: the 5-95% band of those singular values,
    log scale, the dashed lines the tolerance): one column per data set, one colour per λ ({data set: {λ: history}});
    epoch 0 is the starting point (the warm start, or random weights)."""
    cols = max(len(histories), 1)
    fig, axes = plt.subplots(2, cols, figsize=(5 * cols, 5.6), squeeze=False, sharex="col")
    for j, (name, by_lam) in enumerate(histories.items()):
        top, bottom = axes[0][j], axes[1][j]
        for i, (lam, h) in enumerate(by_lam.items()):
            share, colour = h.get("iso_share", []), f"C{i}"
            top.plot(range(len(share)), share, "o-", color=colour, label=f"λ = {lam:g}")
            if h.get("sv_q05"):
                epochs = range(len(h["sv_q05"]))
                bottom.fill_between(epochs, h["sv_q05"], h["sv_q95"], color=colour, alpha=0.25, label=f"λ = {lam:g}")
        top.axhline(ISO_TARGET, color="k", ls="--", lw=0.8)
        for v in (1 - ISO_TOLERANCE, 1 + ISO_TOLERANCE):
            bottom.axhline(v, color="k", ls="--", lw=0.8)
        top.set_title(f"{name} ({n_train:,} training images)")
        top.set_ylim(0, 1)
        top.legend(fontsize=8)
        bottom.set_yscale("log")
        bottom.set_xlabel("epoch (0: the starting weights)")
    axes[0][0].set_ylabel(f"share of σ within ±{ISO_TOLERANCE:.0%} of 1")
    axes[1][0].set_ylabel("σ, 5% to 95% quantile")
    fig.suptitle(f"Isometry criterion during training ({n_images} test encodings; target {ISO_TARGET:.0%})")
    fig.tight_layout()
    plt.show()


def singular_values(by_dataset, latent_dims):
    """`_singular_values` per data set: {data set: {model: σ}}, {data set: latent dimension k}."""
    for name, values in by_dataset.items():
        _singular_values(values, f"{name}: singular values of the decoder's Jacobian (k = {latent_dims[name]})")


def _singular_values(values, title):
    """Histograms of log10 singular values of J_D, one per model: {label: array}; an isometry sits at 0."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    bins = np.linspace(-1.5, 1.0, 60)
    for label, v in values.items():
        ax.hist(np.log10(np.asarray(v).ravel()), bins=bins, alpha=0.55, label=label, density=True)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("log10 singular value of J_D at test encodings (0: isometric)")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.show()


def robust_accuracy_by_dataset(table, names, what, save=None):
    """`robust_accuracy_vs_eps` per data set of `names` (rows of `table` with that dataset), titled "name: what";
    the first data set's figure also saved to the path `save` (the report's answer figure)."""
    for i, name in enumerate(names):
        fig = robust_accuracy_vs_eps(table[table["dataset"] == name], f"{name}: {what}")
        if save is not None and i == 0:
            fig.savefig(save, dpi=90)


def robust_accuracy_vs_eps(table, title):
    """Robust accuracy with Wilson 95% intervals against eps: one panel per attack, one line per defence."""
    attacks = list(dict.fromkeys(table["attack"]))
    fig, axes = plt.subplots(1, len(attacks), figsize=(5 * len(attacks), 3.4), squeeze=False, sharey=True)
    for ax, attack in zip(axes[0], attacks):
        for defence, r in table[table["attack"] == attack].groupby("defence", sort=False):
            r = r.sort_values("eps")
            c = COLOURS.get(defence)
            ax.plot(r["eps"], r["robust accuracy"], "o-", color=c, label=defence)
            ax.fill_between(r["eps"], r["CI low"], r["CI high"], color=c, alpha=0.15)
        ax.set_title(f"{attack} PGD")
        ax.set_xlabel("L2 budget ε ([0, 1] pixel scale)")
        ax.set_ylim(-0.02, 1.02)
    axes[0][0].set_ylabel("robust accuracy")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def convergence(by_dataset, eps):
    """`_convergence` per data set, of the adaptive PGD at budget eps: {data set: {defence: (iters, acc)}}."""
    for name, curves in by_dataset.items():
        _convergence(curves, f"{name}: adaptive PGD at ε = {eps:g}")


def _convergence(curves, title):
    """Robust accuracy against the number of PGD iterations (all restarts in a row): {defence: (iters, acc)}."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for defence, (iters, acc) in curves.items():
        ax.plot(iters, acc, color=COLOURS.get(defence), label=defence)
    ax.set_xscale("log")
    ax.set_xlabel("PGD iterations (restarts one after another)")
    ax.set_ylabel("robust accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.show()


def seed_forests(result, names, margin, folder):
    """Notebook 07's forest plots (lib.figures.plots_replication.forest), one per data set of `names`: each defence
    row's robust-accuracy difference per training seed and pooled (lib.studies.defence.defence_seeds.forest_panels of
    `result`), saved as 07_forest_<data set>.png in `folder`; returns {data set: file name}."""
    from lib.figures.plots_replication import forest
    from lib.studies.defence.defence_seeds import forest_panels

    saved = {}
    for name in names:
        panels = forest_panels(result, name, margin)
        if not panels:
            continue
        fig = forest(panels, f"{name}: robust-accuracy differences per training seed, pooled", "pooled over the seeds")
        saved[name] = f"07_forest_{name}.png"
        fig.savefig(Path(folder) / saved[name], dpi=110, bbox_inches="tight")
    return saved
