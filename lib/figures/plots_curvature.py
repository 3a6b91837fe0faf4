"""Notebook 06's figures (decision-boundary curvature): one function per kind, axes labelled with units.
Curvatures are in 1 / (L2 distance in [0, 1] pixel scale)."""
import matplotlib.pyplot as plt
import numpy as np


def curvature_profiles(profiles, title):
    """Fawzi et al.'s profile: per image the principal curvatures sorted, averaged index by index; one line each.
    profiles: {label: (n-1,) array}. Two panels: all of it, and the first and last 40 (where the curvature is)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for label, p in profiles.items():
        idx = np.arange(1, len(p) + 1)
        axes[0].plot(idx, p, label=label, lw=1.2)
        m = min(40, len(p) // 2)
        axes[1].plot(np.r_[idx[:m], idx[-m:] - len(p) + 2 * m + 5], np.r_[p[:m], p[-m:]], ".", ms=3, label=label)
    axes[0].set(
        xlabel="index of the sorted principal curvature", ylabel="mean curvature (1 / pixel-L2)", title="all n − 1"
    )
    axes[1].set(xlabel="the 40 most negative | the 40 most positive", ylabel="mean curvature", title="the two ends")
    axes[1].set_xticks([])
    for ax in axes:
        ax.axhline(0, color="k", lw=0.6)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def scale_dependence(table, title):
    """Mean extreme curvatures (most negative, most positive) and the mean over all principal curvatures
    against the scale: finite-difference step h for the ReLU net, 1 / beta for its softplus twins.
    table: DataFrame with columns method, scale, min, max, mean."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for (method, g), marker in zip(table.groupby("method"), "os^"):
        g = g.sort_values("scale")
        for col, ls in (("min", "--"), ("max", "-"), ("mean", ":")):
            ax.plot(g["scale"], g[col], ls, marker=marker, label=f"{method}: {col}")
    ax.set_xscale("log")
    ax.axhline(0, color="k", lw=0.6)
    ax.set(xlabel="scale (h, pixel-L2; or 1/β for the softplus twin)", ylabel="curvature (1 / pixel-L2)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def tangent_vs_random(records, title):
    """Per image, paired: RMS curvature inside the tangent space vs a random subspace of the same k (left), and the
    normal's share ||P n|| in each (right) with sqrt(k/n), a random subspace's typical share. records: one row per
    image with dataset, split and the columns of lib.studies.curvature.curvature_analysis.measure."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    groups = list(records.groupby(["dataset", "split"]))
    for ax, (a, b, ylabel) in zip(axes, (("tangent_rms", "random_rms", "RMS curvature in the subspace (1 / pixel-L2)"),
                                         ("tangent_normal_share", "random_normal_share", "‖P n‖: the normal's share"))):
        for g, ((name, split), r) in enumerate(groups):
            x0 = 3 * g
            for t, row in r.iterrows():
                ax.plot([x0, x0 + 1], [row[b], row[a]], color="0.7", lw=0.5)
            ax.plot(np.full(len(r), x0), r[b], "o", ms=3, color="tab:gray")
            ax.plot(np.full(len(r), x0 + 1), r[a], "o", ms=3, color="tab:red")
            if a == "tangent_normal_share":
                k, n = int(r["k"].iloc[0]), int(r["n"].iloc[0])
                ax.plot([x0 - 0.3, x0 + 1.3], [np.sqrt(k / n)] * 2, "k--", lw=1)
        ax.set_xticks([3 * g + d for g in range(len(groups)) for d in (0, 1)])
        ax.set_xticklabels(
            [f"{name} {split}\n{w}" for (name, split), _ in groups for w in ("random", "tangent")], fontsize=7
        )
        ax.set(ylabel=ylabel)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[1].set_title("dashed: √(k/n)", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def noise_misclassification(table, title):
    """Share of images whose label changes under noise of growing norm in S (the shared curved directions) vs in
    its orthogonal complement. table: DataFrame norm, subspace, rate, dataset."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for (name, sub), g in table.groupby(["dataset", "subspace"]):
        ax.plot(g["norm"], 100 * g["rate"], "-o" if sub == "S" else "--s", ms=3, label=f"{name}: noise in {sub}")
    ax.set(xlabel="noise norm ‖v‖ (pixel-L2, [0, 1] scale)", ylabel="label changed (% of images)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def roc_curves(curves, title):
    """ROC curves of curvature-based detection. curves: {label: (fpr, tpr, auc)}."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for label, (fpr, tpr, a) in curves.items():
        ax.plot(fpr, tpr, label=f"{label} (AUC {a:.2f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false-positive rate (natural images flagged)", ylabel="true-positive rate (perturbed flagged)",
           title=title, xlim=(0, 1), ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def training_dynamics(table, k, n, title):
    """Four panels against the epoch (log scale): the gradient's energy share in the tangent space and in a random
    subspace (k/n dashed), the tangent / random ratios of gradient share and RMS curvature, the distance to the
    boundary, and the mean and RMS principal curvature. table:
    lib.studies.curvature.curvature_analysis.training_dynamics."""
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.2))
    e = table["epoch"]
    axes[0].plot(e, table["gradient share, tangent"], "-o", ms=3, color="tab:red", label="tangent")
    axes[0].plot(e, table["gradient share, random"], "-o", ms=3, color="tab:gray", label="random")
    axes[0].axhline(k / n, color="k", ls="--", lw=0.8)
    axes[0].set(ylabel="‖P g‖² / ‖g‖² (median)", title="gradient energy share")
    axes[0].set_yscale("log")
    axes[1].plot(e, table["tangent / random gradient share"], "-o", ms=3, label="gradient share")
    axes[1].plot(e, table["tangent / random RMS curvature"], "-s", ms=3, label="RMS curvature")
    axes[1].axhline(1, color="k", lw=0.6)
    axes[1].set(ylabel="tangent / random (median)", title="the manifold vs dimension")
    axes[1].set_yscale("log")
    axes[2].plot(e, table["distance to boundary"], "-o", ms=3)
    axes[2].set(ylabel="DeepFool ‖r‖ (pixel-L2, median)", title="distance to the boundary")
    axes[3].plot(e, table["mean curvature"], "-o", ms=3, label="mean")
    axes[3].plot(e, table["RMS curvature"], "-s", ms=3, label="RMS")
    axes[3].axhline(0, color="k", lw=0.6)
    axes[3].set(ylabel="curvature (1 / pixel-L2)", title="principal curvatures (twin)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    for ax in (axes[0], axes[1], axes[3]):
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
