"""The report's figures: one function per kind, matplotlib, axes labelled with units."""
import matplotlib.pyplot as plt
import numpy as np


def training_curves(histories, ylabel, title, logy=False):
    """One line per run: the mean training loss of each epoch."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for label, h in histories.items():
        ax.plot(np.arange(1, len(h) + 1), h, marker="o" if len(h) < 30 else None, ms=3, label=label)
    ax.set(xlabel="epoch", ylabel=ylabel, title=title)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def _show_image(ax, img):
    img = img.detach().cpu().clamp(0, 1)
    if img.shape[0] == 1:
        ax.imshow(img[0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(img.permute(1, 2, 0))
    ax.set_xticks([])
    ax.set_yticks([])


def reconstruction_grid(originals, reconstructions, title):
    """Originals (top row) above their reconstructions D(E(x)) (bottom row), per-image MSE under each."""
    n = len(originals)
    fig, axes = plt.subplots(2, n, figsize=(1.3 * n, 3.0), squeeze=False)
    for i in range(n):
        _show_image(axes[0, i], originals[i])
        _show_image(axes[1, i], reconstructions[i])
        mse = ((originals[i] - reconstructions[i]) ** 2).mean().item()
        axes[1, i].set_xlabel(f"{mse:.4f}", fontsize=8)
    axes[0, 0].set_ylabel("original")
    axes[1, 0].set_ylabel("D(E(x))")
    fig.suptitle(f"{title}  (number: MSE per pixel)", fontsize=10)
    fig.tight_layout()
    return fig


def attack_examples(x, outcomes, classes, title):
    """The reproduction's appendix-B figure: for each image (column), the clean image, then for each
    attack its perturbation (signed, scaled to its own max) and the adversarial image with its label."""
    n = len(x)
    rows = 1 + 2 * len(outcomes)
    fig, axes = plt.subplots(rows, n, figsize=(1.45 * n, 1.45 * rows), squeeze=False)
    for j in range(n):
        _show_image(axes[0, j], x[j])
        for i, o in enumerate(outcomes):
            d = o.delta[j].detach().cpu()
            ax = axes[1 + 2 * i, j]
            scale = d.abs().max().clamp_min(1e-12)
            ax.imshow((d / scale).mean(0), cmap="seismic", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            rec = o.records.iloc[j]
            ax.set_xlabel(f"‖δ‖={rec['norm']:.2f}" + ("" if rec["success"] else " FAILED"), fontsize=7)
            _show_image(axes[2 + 2 * i, j], (x[j] + d).clamp(0, 1))
            axes[2 + 2 * i, j].set_xlabel(f"→ {classes[int(rec['pred'])]}", fontsize=7)
        axes[0, j].set_xlabel(f"label {classes[int(outcomes[0].records.iloc[j]['label'])]}", fontsize=7)
    axes[0, 0].set_ylabel("image", fontsize=8)
    for i, o in enumerate(outcomes):
        name = o.condition if o.subspace == "none" else f"{o.condition} ({o.subspace})"
        axes[1 + 2 * i, 0].set_ylabel(f"δ {name}", fontsize=8)
        axes[2 + 2 * i, 0].set_ylabel(f"x+δ {name}", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _strips(ax, groups, labels, ylabel, title):
    """One jittered column of points per group (values, failed mask): failures as black crosses, the
    median of the rest as a black bar; log y axis."""
    rng = np.random.default_rng(0)
    for i, (values, failed) in enumerate(groups):
        x = i + rng.uniform(-0.18, 0.18, len(values))
        ax.scatter(x[~failed], values[~failed], s=6, alpha=0.5)
        if failed.any():
            ax.scatter(x[failed], values[failed], s=14, marker="x", color="k")
        ax.hlines(np.median(values[~failed]) if (~failed).any() else np.nan, i - 0.3, i + 0.3, color="k")
    ax.set_xticks(range(len(groups)), labels)
    ax.set(yscale="log", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3, axis="y")


def norm_distributions(records, title):
    """Per-image perturbation norms per attack (log scale); failures drawn as crosses at their final norm."""
    arms = list(dict.fromkeys(zip(records["condition"], records["subspace"])))
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(arms), 3.4))
    groups = []
    for cond, sub in arms:
        r = records[(records["condition"] == cond) & (records["subspace"] == sub)]
        groups.append((r["norm"].to_numpy(float), ~r["success"].to_numpy(bool)))
    _strips(ax, groups, [c if s == "none" else f"{c}\n{s}" for c, s in arms], "‖δ‖₂ (pixels in [0, 1])", title)
    fig.tight_layout()
    return fig


def log_ratio_histograms(ratios, title, reference=None):
    """Histograms of per-image ratios (log axis); one panel per entry {label: ratios}.

    reference: {label: value} drawn as a dashed line (e.g. what a flat boundary predicts)."""
    fig, axes = plt.subplots(1, len(ratios), figsize=(3.4 * len(ratios), 2.9), squeeze=False)
    for ax, (label, r) in zip(axes[0], ratios.items()):
        r = np.asarray(r, float)
        r = r[np.isfinite(r) & (r > 0)]
        if len(r):
            ax.hist(r, bins=np.geomspace(r.min(), r.max() * 1.0001, 25))
            ax.axvline(np.median(r), color="k", label=f"median {np.median(r):.2f}")
        if reference and label in reference:
            ax.axvline(reference[label], color="r", ls="--", label=f"flat boundary {reference[label]:.2f}")
        ax.axvline(1, color="0.6", lw=0.8)
        ax.set(xscale="log", xlabel="ratio of norms (per image)", title=label)
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("images")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def ratio_by_subspace(table, title):
    """Median on/off ratio (bootstrap 95% CI) per subspace type, the learned manifold beside its controls;
    one marker per split; the flat-boundary prediction sqrt((n-k)/k) as a dashed line."""
    subs = list(dict.fromkeys(table["subspace"]))
    splits = list(dict.fromkeys(table["split"]))
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(subs), 3.4))
    for j, split in enumerate(splits):
        t = table[table["split"] == split].set_index("subspace").reindex(subs)
        x = np.arange(len(subs)) + (j - (len(splits) - 1) / 2) * 0.15
        err = np.array([t["median ratio"] - t["CI low"], t["CI high"] - t["median ratio"]])
        ax.errorbar(x, t["median ratio"], yerr=np.nan_to_num(err), fmt="o", capsize=3, label=split)
    ax.axhline(table["flat boundary"].iloc[0], color="r", ls="--", label="flat boundary √((n−k)/k)")
    ax.set_xticks(range(len(subs)), subs)
    ax.set(yscale="log", ylabel="median on / off norm ratio", title=title)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def share_by_subspace(records, title):
    """Fraction of the clean gradient's energy inside each subspace (per image, log scale), against k/n."""
    r = records[(records["condition"] == "on")]
    subs = list(dict.fromkeys(r["subspace"]))
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(subs), 3.4))
    groups = [(v, np.zeros(len(v), bool)) for v in (r.loc[r["subspace"] == s, "grad_share"].to_numpy(float) for s in subs)]
    _strips(ax, groups, subs, "‖P g‖² / ‖g‖²", title)
    k_over_n = (r["k"] / r["n"]).iloc[0]
    ax.axhline(k_over_n, color="r", ls="--", label=f"k/n = {k_over_n:.4f} (random subspace)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def ratio_vs_k(table, n, title):
    """Median on/off ratio against k (log-log) per subspace type, with the flat-boundary curve sqrt((n-k)/k)."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for sub, t in table.groupby("subspace", sort=False):
        t = t.sort_values("k")
        err = np.array([t["median ratio"] - t["CI low"], t["CI high"] - t["median ratio"]])
        ax.errorbar(t["k"], t["median ratio"], yerr=np.nan_to_num(err), fmt="o-" if len(t) > 1 else "s",
                    capsize=3, label=sub, ms=5)
    ks = np.geomspace(table["k"].min() / 1.5, min(table["k"].max() * 1.5, n - 1), 100)
    ax.plot(ks, np.sqrt((n - ks) / ks), "r--", label="flat boundary √((n−k)/k)")
    ax.set(xscale="log", yscale="log", xlabel="subspace dimension k", ylabel="median on / off norm ratio", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
