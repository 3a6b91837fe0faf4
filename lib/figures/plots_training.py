"""Notebook 10's figures: what fresh classifiers learned from mislabelled adversarial sets, the sets themselves,
and the geometry of the same test images before and after adversarial training."""
import matplotlib.pyplot as plt
import numpy as np

from lib.inference import published


def accuracies(table, title):
    """Test accuracy (true labels) of each fresh classifier with its Wilson 95% interval, one panel per relabelling;
    Ilyas et al.'s published CIFAR-10 accuracies as open diamonds (another data set and network)."""
    groups = list(dict.fromkeys(table["relabelling"]))
    fig, axes = plt.subplots(1, len(groups), figsize=(5.6 * len(groups), 3.4), squeeze=False, sharex=True)
    for ax, rl in zip(axes[0], groups):
        t = table[table["relabelling"] == rl].reset_index(drop=True)
        y = np.arange(len(t))[::-1]
        ax.errorbar(t["test accuracy"], y, xerr=[t["test accuracy"] - t["CI low"], t["CI high"] - t["test accuracy"]],
                    fmt="o", color="k", capsize=3, label="ours (MNIST, MLP)")
        pub = {"unconstrained": published.ILYAS_TEST_ACC.get(rl), "original": published.ILYAS_TEST_ACC["original"]}
        for yi, s in zip(y, t["set"]):
            if pub.get(s) is not None:
                ax.plot(pub[s], yi, "D", mfc="none", color="tab:red", ms=8,
                        label=published.ILYAS if s == "unconstrained" else None)
        ax.axvline(0.1, color="grey", ls=":", lw=1)
        ax.axvline(0.5, color="grey", ls="--", lw=1)
        ax.set_yticks(y, [f"{s} (n={n})" for s, n in zip(t["set"], t["trained on"])])
        ax.set_xlim(0, 1)
        ax.set_xlabel("clean test accuracy, true labels")
        ax.set_title(rl)
    axes[0][0].legend(loc="lower right", fontsize=8)
    fig.suptitle(title + "  (dotted: chance; dashed: 'most')")
    fig.tight_layout()
    return fig


def study_figures(table, study, classes, name):
    """The accuracy figure and, per relabelling, the examples figure of one data set's study."""
    accuracies(table[table["dataset"] == name], f"{name}: what a fresh classifier learns from each set")
    for r in study:
        images, y, t = (({k.split("/", 1)[1]: v for k, v in r["state_dict"].items() if k.startswith("examples/")},
                         r["meta"]["shown_y"], r["meta"]["shown_t"]))
        relabelled_examples(images, y, t, classes, f"{name}, D_{r['relabelling']}: the images each set trained on (the "
                            "same source images), titled with their training label")


def relabelled_examples(images, y, t, classes, title):
    """One row per set, one column per source image: the image that set trained on, titled with its label."""
    names = list(images)
    cols = len(y)
    if not cols:
        return None
    fig, axes = plt.subplots(len(names), cols, figsize=(1.3 * cols + 1.6, 1.35 * len(names)), squeeze=False)
    for i, name in enumerate(names):
        for j in range(cols):
            ax = axes[i][j]
            ax.imshow(images[name][j].permute(1, 2, 0).squeeze(-1).clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            label = y[j] if name == "original" else t[j]
            ax.set_title(f"label {classes[label]}", fontsize=7)
            if j == 0:
                ax.set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def before_after(growth_on, growth_off, fractions, title):
    """Left: per image, growth of the on- vs the off-manifold minimal norm (after / before; both attacks succeeded
    before and after), the diagonal = equal growth. Right: the gradient fraction ||P g|| / ||g|| per image before and
    after, tangent space and random subspace, with Bordt et al.'s known-manifold values."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.scatter(growth_on, growth_off, s=10, alpha=0.6)
    both = np.concatenate([growth_on, growth_off]) if len(growth_on) else np.array([1.0])
    lim = (min(both.min(), 1) / 1.2, max(both.max(), 1) * 1.2)
    a.plot(lim, lim, "k--", lw=1)
    a.set(xscale="log", yscale="log", xlim=lim, ylim=lim, xlabel="on-manifold norm: after / before",
          ylabel="off-manifold norm: after / before", title="growth per image (above the diagonal: off grows more)")
    plain = plt.FuncFormatter(lambda v, _: f"{v:.3g}")
    for axis in (a.xaxis, a.yaxis):
        axis.set_major_locator(plt.LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(plt.NullFormatter())
    pos = 0
    ticks = []
    for (sub, model), f in fractions.items():
        b.boxplot([f], positions=[pos], widths=0.6)
        ticks.append((pos, f"{sub}\n{model}"))
        pos += 1
    b.set_xticks([p for p, _ in ticks], [name for _, name in ticks], fontsize=8)
    for name, v in published.BORDT_FRACTION.items():
        b.axhline(v, color="tab:red", ls=":", lw=1)
        b.text(-0.45, v, f"Bordt: {name}", fontsize=7, color="tab:red", va="bottom", ha="left")
    b.set(ylabel="||P g|| / ||g|| at the clean image", ylim=(0, 1), title="gradient fraction in the subspace")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
