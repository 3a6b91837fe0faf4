"""The report's figures: one function per kind, matplotlib, axes labelled with units."""
import matplotlib.pyplot as plt
import numpy as np

from lib.inference import stats
from lib.inference.rules import COLOURS


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


def monitored_curves(curves, ylabel, title, marks=(), logy=False, percent=False):
    """One line per model: a test figure measured after every epoch of its training (lib.learn.train's monitor),
    with published figures as dashed horizontal lines, `marks` = [(label, value)]."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for label, h in curves.items():
        ax.plot(np.arange(1, len(h) + 1), h, marker="o" if len(h) < 30 else None, ms=3, label=label)
    values = np.concatenate([np.asarray(h, float) for h in curves.values()]) if curves else np.array([1.0])
    near = (lambda v: values.min() / 10 <= v <= values.max() * 10) if logy else (lambda v: True)
    far = [(label, value) for label, value in marks if not near(value)]  # a mark decades away would flatten the curves
    for (label, value), colour in zip([m for m in marks if near(m[1])], ("tab:red", "0.3", "tab:purple", "tab:brown")):
        ax.axhline(value, ls="--", lw=1, color=colour, label=label)
    ax.set(xlabel="epoch", ylabel=ylabel, title=title)
    if far:
        ax.text(0.01, -0.3, "off the scale: " + "; ".join(label for label, _ in far), transform=ax.transAxes,
                fontsize=7, color="0.3", va="top")
    if logy:
        ax.set_yscale("log")
    if percent:
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}" if v < 0.995 else f"{v:.1%}"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
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


def _finite(values):
    """Values as floats with infinities (medians set by failed attacks) as NaN: not drawn, never overflowing an axis."""
    v = np.asarray(values, dtype=float)
    return np.where(np.isfinite(v), v, np.nan)


def ratio_by_subspace(table, title):
    """Median on/off ratio (bootstrap 95% CI) per subspace type, the learned manifold beside its controls;
    one marker per split; the flat-boundary prediction (the table's column) as a dashed line."""
    subs = list(dict.fromkeys(table["subspace"]))
    splits = list(dict.fromkeys(table["split"]))
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(subs), 3.4))
    for j, split in enumerate(splits):
        t = table[table["split"] == split].set_index("subspace").reindex(subs)
        x = np.arange(len(subs)) + (j - (len(splits) - 1) / 2) * 0.15
        med, lo, hi = (_finite(t[c]) for c in ("median ratio", "CI low", "CI high"))
        ax.errorbar(x, med, yerr=np.nan_to_num(np.array([med - lo, hi - med])), fmt="o", capsize=3, label=split)
        for xi in x[np.isposinf(t["median ratio"].to_numpy(float))]:  # most "on" attacks failed: no finite median
            ax.annotate("most\nfailed", (xi, 1), xycoords=("data", "axes fraction"), ha="center", va="top", fontsize=6)
    ax.axhline(table["flat boundary"].iloc[0], color="r", ls="--", label="flat boundary (median, random subspace)")
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
    groups = [
        (v, np.zeros(len(v), bool)) for v in (r.loc[r["subspace"] == s, "grad_share"].to_numpy(float) for s in subs)
    ]
    _strips(ax, groups, subs, "‖P g‖² / ‖g‖²", title)
    k_over_n = (r["k"] / r["n"]).iloc[0]
    ax.axhline(k_over_n, color="r", ls="--", label=f"k/n = {k_over_n:.4f} (random subspace)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def ratio_vs_k(table, n, title):
    """Median on/off ratio against k (log-log) per subspace type, with the flat-boundary curve (the median for a
    random subspace, lib.inference.stats.flat_boundary_median)."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for sub, t in table.groupby("subspace", sort=False):
        t = t.sort_values("k")
        med, lo, hi = (_finite(t[c]) for c in ("median ratio", "CI low", "CI high"))
        ax.errorbar(t["k"], med, yerr=np.nan_to_num(np.array([med - lo, hi - med])), fmt="o-" if len(t) > 1 else "s",
                    capsize=3, label=sub, ms=5)
    ks = np.geomspace(table["k"].min() / 1.5, min(table["k"].max() * 1.5, n - 1), 100)
    ax.plot(ks, [stats.flat_boundary_median(max(1, int(round(k))), n) for k in ks], "r--",
            label="flat boundary (median, random subspace)")
    ax.set(xscale="log", yscale="log", xlabel="subspace dimension k", ylabel="median on / off norm ratio", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


VERDICT_COLOURS = COLOURS  # lib.inference.rules: one colour per verdict


def on_off_answer(summaries, title):
    """The figure that carries the argument: per data set, the median on/off norm ratio (distribution-free 95% CI)
    of the learned tangent space beside random, coordinate and PCA subspaces of the same k, with and without
    clipping to [0, 1], and the flat-boundary prediction for a random subspace (dashed). summaries: {dataset:
    DataFrame with subspace, clip, median ratio, CI low, CI high, flat boundary}. An infinite median (most "on"
    attacks failed: the budget, not the boundary, decided) is an arrow at the top."""
    fig, axes = plt.subplots(1, len(summaries), figsize=(4.8 * len(summaries), 3.1), squeeze=False, sharey=True)
    finite = np.concatenate(
        [
            t[c].to_numpy(float)
            for t in summaries.values()
            for c in ("median ratio", "CI low", "CI high", "flat boundary")
        ]
    )
    finite = finite[np.isfinite(finite) & (finite > 0)]
    top = finite.max() * 2 if len(finite) else 10
    for ax, (name, t) in zip(axes[0], summaries.items()):
        subs = list(dict.fromkeys(t["subspace"]))
        for j, (clip, label, marker) in enumerate(((True, "clipped to [0, 1]", "o"), (False, "no clipping", "s"))):
            tt = t[t["clip"] == clip].set_index("subspace").reindex(subs)
            if tt["median ratio"].isna().all():
                continue
            x = np.arange(len(subs)) + (j - 0.5) * 0.2
            med = tt["median ratio"].to_numpy(float)
            lo, hi = tt["CI low"].to_numpy(float), tt["CI high"].to_numpy(float)
            ok = np.isfinite(med)
            err = np.array([med - lo, np.where(np.isfinite(hi), hi, top) - med])[:, ok]
            ax.errorbar(x[ok], med[ok], yerr=np.nan_to_num(err), fmt=marker, capsize=3, color=f"C{j}", label=label)
            for xi in x[np.isposinf(med)]:
                ax.annotate("", (xi, top), (xi, top / 2.2), arrowprops=dict(arrowstyle="->", color=f"C{j}"))
                ax.text(xi, top / 2.6, "most\nfailed", ha="center", va="top", fontsize=6, color=f"C{j}")
        ax.axhline(t["flat boundary"].iloc[0], color="r", ls="--", lw=1, label="flat boundary, random subspace")
        ax.axhline(1, color="k", lw=0.6)
        ax.set_xticks(
            range(len(subs)), [s if s != "tangent" else "tangent\n(learned manifold)" for s in subs], fontsize=8
        )
        ax.set(yscale="log", title=f"{name} (k = {int(t['k'].iloc[0])})")
        ax.set_ylim(0.5, top * 1.2)
        _plain_log_y(ax)
        ax.grid(alpha=0.3, axis="y")
    axes[0, 0].set_ylabel("median on / off norm ratio")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="upper center", ncol=3, bbox_to_anchor=(0.5, 0.92), frameon=False)
    fig.suptitle(title, fontsize=10, y=0.99)
    fig.tight_layout(rect=(0, 0, 1, 0.84))
    return fig


def _plain_log_y(ax):
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.3g}"))
    ax.yaxis.set_minor_formatter(plt.NullFormatter())


def _plain_log_x(ax):
    """A log x axis labelled 0.2, 0.5, 1, 2, 5 ... (evenly spaced plain ticks when it spans under 3x)."""
    plain = plt.FuncFormatter(lambda v, _: f"{v:.3g}")
    lo, hi = ax.get_xlim()
    narrow = hi / lo < 3
    ax.xaxis.set_major_locator(plt.MaxNLocator(6) if narrow else plt.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plt.NullFormatter())


def verdict_forest(table, title, margin=1.1, difference_margin=None):
    """Every claim's effect with its CI, coloured by verdict (notebook 05): ratios on a log axis around 1 with
    the precise-null band [1/margin, margin] shaded; differences (rows with scale "difference", e.g. of
    cosines) in a second panel on a linear axis around 0, band ±difference_margin. An infinite estimate (censored:
    most attacks failed) is an arrow at the edge: a direction only."""
    diff = (table["scale"] == "difference").to_numpy() if "scale" in table else np.zeros(len(table), bool)
    parts = [(False, table[~diff]), (True, table[diff])]
    parts = [(d, t) for d, t in parts if len(t)]
    heights = [len(t) for _, t in parts]
    fig, axes = plt.subplots(len(parts), 1, figsize=(8.5, 1.2 + 0.3 * sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, (is_diff, t) in zip(axes[:, 0], parts):
        y = np.arange(len(t))[::-1]
        est, lo, hi = (t[c].to_numpy(float) for c in ("effect", "ci_low", "ci_high"))
        if not is_diff:  # log axis: keep what a log axis can show
            est, lo, hi = (np.where(v > 0, v, np.nan) for v in (est, lo, hi))
        bound = np.zeros(len(t), bool) if is_diff else (est == np.inf) | (t["effect"].to_numpy(float) == 0)
        ref, band = (0.0, difference_margin) if is_diff else (1.0, margin)
        shown = np.r_[lo[~bound], hi[~bound], est[~bound], ref]
        shown = shown[np.isfinite(shown)]
        span = (shown.min(), shown.max()) if is_diff else (shown.min() / 1.5, shown.max() * 1.5)
        for yi, e, low, high, v, b, raw in zip(y, est, lo, hi, t["verdict"], bound, t["effect"].to_numpy(float)):
            c = VERDICT_COLOURS.get(v, "k")
            if b:  # set by failed attacks: an arrow at the edge, in its direction
                left = raw < ref
                ax.plot(span[0] if left else span[1], yi, "<" if left else ">", color=c, ms=8)
                continue
            if np.isfinite(low) and np.isfinite(high):
                ax.hlines(yi, low, high, color=c, lw=2)
            if np.isfinite(e):
                ax.plot(e, yi, "o", color=c, ms=6)
        ax.axvline(ref, color="k", lw=0.8)
        if band:
            ax.axvspan(*((-band, band) if is_diff else (1 / band, band)), color="0.85", zorder=0)
        clip = t["clip"].astype(bool) if "clip" in t else np.ones(len(t), bool)
        ax.set_yticks(
            y,
            [f"{s} · {sp}" + ("" if c else " · no clip") for s, sp, c in zip(t["short"], t["split"], clip)],
            fontsize=8,
        )
        ax.set_ylim(-0.7, len(t) - 0.3)
        if is_diff:
            ax.set_xlabel("effect: median per-image difference (0 = none), 95% CI")
        else:
            ax.set_xscale("log")
            _plain_log_x(ax)
            ax.set_xlabel("effect: median ratio (1 = none), 95% CI (claim 2: mean ratio, 90% CI)")
        ax.grid(alpha=0.3, axis="x")
    handles = [plt.Line2D([], [], color=c, marker="o", lw=2, label=v) for v, c in VERDICT_COLOURS.items()]
    handles.append(plt.Line2D([], [], color="k", marker=">", lw=0, label="infinite (most attacks failed)"))
    axes[0, 0].legend(handles=handles, fontsize=7, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=4, frameon=False)
    fig.suptitle(title, fontsize=10, y=1.0)
    fig.tight_layout()
    return fig


def effect_strips(effects, title, xlabel, log=True, reference=None, band=None):
    """Per-image values of one effect per row (jittered dots), with the estimate and its CI from the verdict
    table (black diamond and bar). effects: {label: (values, (estimate, low, high))}; reference: a vertical
    line (1 for ratios, 0 for differences); band: (low, high) shaded, e.g. the precise-null margin."""
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.45 * len(effects)))
    rng = np.random.default_rng(0)
    labels = list(effects)
    for i, label in enumerate(labels):
        y = len(labels) - 1 - i
        values, (est, lo, hi) = effects[label]
        v = np.asarray(values, float)
        v = v[np.isfinite(v) & ((v > 0) if log else True)]
        ax.scatter(v, y + rng.uniform(-0.18, 0.18, len(v)), s=7, alpha=0.45, color="C0")
        if np.isfinite(lo) and np.isfinite(hi):
            ax.hlines(y, lo, hi, color="k", lw=2.2, zorder=3)
        ax.plot(est, y, "D", color="k", ms=6, zorder=4)
    if band is not None:
        ax.axvspan(*band, color="0.88", zorder=0)
    if reference is not None:
        ax.axvline(reference, color="r", ls="--", lw=1)
    ax.set_yticks(range(len(labels))[::-1], labels, fontsize=8)
    ax.set_ylim(-0.6, len(labels) - 0.4)
    ax.set(xlabel=xlabel, title=title)
    if log:
        ax.set_xscale("log")
        _plain_log_x(ax)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig
