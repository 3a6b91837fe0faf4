"""Notebook 10's figures: what fresh classifiers learned from mislabelled adversarial sets, the sets themselves,
and the geometry of the same test images before and after adversarial training; and the budget sweep's section of
the page (``show_sweep``: its words, figures and table)."""
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from lib.inference import published
from lib.infra import runtime
from lib.studies.training import mislabeled_study


VARIANT_STYLE = {"unconstrained": ("k", "o"), "off": ("tab:blue", "s"), "on": ("tab:orange", "^"),
                 "random": ("tab:green", "D")}


def _positions(budgets):
    return {b: i for i, b in enumerate(budgets)}


def budget_sweep(table, budgets, judged, image_norm, title, min_success):
    """Per relabelling (a row of panels), against the budget (categorical, in sweep order): the fresh classifier's
    clean test accuracy per variant (the mean of its training seeds, each seed a small dot; bars: the first seed's
    Wilson 95% interval over the test images) with the labels-alone floor, the original-data ceiling, chance and
    Ilyas et al.'s CIFAR-10 accuracy (another data set, another budget scale); the attack's success rate; and the
    share of the kept images that already look like their new label (nearest class mean: solid; independent
    classifier: dashed). The budgets the verdicts read are shaded."""
    groups = list(dict.fromkeys(table["relabelling"]))
    pos = _positions(budgets)
    fig, axes = plt.subplots(len(groups), 3, figsize=(15, 3.7 * len(groups)), squeeze=False)
    ticks = [mislabeled_study.budget_label(b).replace("minimal crossing", "minimal\ncrossing").replace("ε = ", "")
             for b in budgets]
    for row, rl in zip(axes, groups):
        t = table[table["relabelling"] == rl]
        swept = t[t["budget"] != "none"]
        for name, (color, marker) in VARIANT_STYLE.items():
            v = swept[swept["set"] == name]
            if not len(v):
                continue
            x = np.array([pos[b] for b in v["budget"]], float)
            trained = v["trained on"].to_numpy() > 0
            acc, first = v["mean accuracy"].to_numpy(float), v["test accuracy"].to_numpy(float)
            row[0].plot(x, np.where(trained, acc, np.nan), "-", color=color, marker=marker, label=name, ms=5)
            for xi, seeds in zip(x, v["seed accuracies"]):  # each training seed's accuracy, where several
                if len(seeds) > 1:
                    row[0].plot([xi] * len(seeds), seeds, ".", color=color, ms=3, alpha=0.7)
            row[0].errorbar(x[trained], first[trained], yerr=[first[trained] - v["CI low"].to_numpy(float)[trained],
                                                              v["CI high"].to_numpy(float)[trained] - first[trained]],
                            fmt="none", ecolor=color, capsize=2, lw=0.8)
            row[1].plot(x, v["success rate"], "-", color=color, marker=marker, label=name, ms=5)
            row[2].plot(x, v["looks like t: means"], "-", color=color, marker=marker, ms=5,
                        label=f"{name}: nearest class mean")
            row[2].plot(x, v["looks like t: judge"], "--", color=color, marker=marker, ms=4, mfc="none",
                        label=f"{name}: independent classifier")
        controls = t[t["budget"] == "none"].set_index("set")
        for name, style, words in (("unperturbed", "--", "labels alone (no perturbation)"),
                                   ("original", ":", "original images and labels")):
            if name in controls.index:
                row[0].axhline(controls.loc[name, "mean accuracy"], color="grey", ls=style, lw=1.2, label=words)
        if "unperturbed" in controls.index:
            for what, style in (("means", "-"), ("judge", "--")):
                row[2].axhline(controls.loc["unperturbed", f"looks like t: {what}"], color="grey", ls=style, lw=0.8)
        row[0].axhline(0.1, color="grey", ls="-.", lw=0.8, label="chance")
        pub = published.ILYAS_TEST_ACC.get(rl)
        if pub is not None:
            both = ", ".join(f"{k} {v:.1%}" for k, v in published.ILYAS_TEST_ACC.items() if k != "original")
            row[0].axhline(pub, color="tab:red", ls=":", lw=1.2,
                           label=f"{published.ILYAS.split(' (')[0]}, CIFAR-10 at ε = 0.5 ({both})")
        row[1].axhline(min_success, color="grey", ls=":", lw=1, label=f"min. success {min_success:.0%}")
        for ax in row:
            for b in judged.get(rl.removeprefix("D_"), []):
                ax.axvspan(pos[b] - 0.3, pos[b] + 0.3, color="gold", alpha=0.25, lw=0)
            ax.set_xticks(range(len(budgets)), ticks)
            ax.set_ylim(-0.02, 1.02)
        row[0].set(ylabel="clean test accuracy, true labels", title=f"{rl}: what a fresh classifier learns")
        row[1].set(ylabel="share of attacked images kept", title=f"{rl}: attack success (target t reached)")
        row[2].set(ylabel="share of kept images called t", title=f"{rl}: do the images look like t already?")
    fig.suptitle(title + "  (shaded: the budgets the verdicts read; a gap: too few images kept to train on)")
    fig.tight_layout()
    fig.subplots_adjust(bottom=0.12 + 0.22 / len(groups))  # room for the legends below the panels
    for ax in axes[-1]:
        ax.set_xlabel(f"L2 budget ([0, 1] pixels; a training image's median norm: {image_norm:.1f})")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2, frameon=False)
    return fig


def sweep_examples(study, classes, title):
    """Per relabelling, one figure: a row per budget; for each shown source image its clean version and each
    variant's perturbed image (blank where that attack did not reach t at that budget), titled with the label the
    set gives it."""
    figs = []
    for r, (ys, ts) in study["shown"].items():
        variants = [v for v in VARIANT_STYLE if any(k[1] == r and k[2] == v for k in study["examples"])]
        budgets = study["budgets"]
        cols = len(ys) * (1 + len(variants))
        if not cols:
            continue
        fig, axes = plt.subplots(len(budgets), cols, figsize=(1.15 * cols + 1.8, 1.25 * len(budgets)), squeeze=False)
        clean, _ = study["examples"][("control", r, "original")]
        for i, b in enumerate(budgets):
            for j in range(len(ys)):
                for c, v in enumerate(["clean"] + variants):
                    ax = axes[i][j * (1 + len(variants)) + c]
                    ax.set_xticks([])
                    ax.set_yticks([])
                    if v == "clean":
                        img, ok, label = clean[j], True, ys[j]
                    else:
                        images, kept = study["examples"][(b, r, v)]
                        img, ok, label = images[j], bool(kept[j]), ts[j]
                    if ok:
                        ax.imshow(img.permute(1, 2, 0).squeeze(-1).clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
                    else:
                        ax.text(0.5, 0.5, "not\nreached", ha="center", va="center", fontsize=6, color="grey")
                    if i == 0:
                        ax.set_title(f"{v}\nlabel {classes[label]}", fontsize=7)
                    if j == 0 and c == 0:
                        ax.set_ylabel(mislabeled_study.budget_label(b).replace("minimal crossing", "minimal"),
                                      fontsize=8, rotation=0, ha="right", va="center")
        fig.suptitle(f"{title}, D_{r}: the images each set trains on, by budget (the same source images)", fontsize=9)
        fig.tight_layout()
        figs.append(fig)
    return figs


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


PCT = "{:.1%}"
SWEEP_COLUMNS = {"relabelling": "relabelling", "budget_text": "budget", "training set": "training set",
                 "success rate": "success rate", "median norm": "median norm", "norm q1": "norm q1",
                 "norm q3": "norm q3", "looks like t: means": "called t: class mean",
                 "looks like t: judge": "called t: independent classifier", "trained on": "trained on",
                 "seeds": "seeds", "test accuracy": "test accuracy", "CI low": "CI low", "CI high": "CI high",
                 "mean accuracy": "mean accuracy", "seed spread": "seed spread"}  # the sweep table's columns, named
SWEEP_FORMATS = {"success rate": PCT, "median norm": "{:.2f}", "norm q1": "{:.2f}", "norm q3": "{:.2f}",
                 "called t: class mean": PCT, "called t: independent classifier": PCT, "test accuracy": PCT,
                 "CI low": PCT, "CI high": PCT, "mean accuracy": PCT, "seed spread": PCT}


def show_sweep(study, table, data, name, min_success):
    """One data set's sweep (``study``: mislabeled_study.run_study; ``table``: its sweep_table rows): the training
    images' median norm beside the budgets, the training-set size and the test set's interval width, the detectors'
    accuracy on the clean images, Ilyas et al.'s figures (another data set), the sweep figure, the examples, the table
    and the visibility sentences."""
    image_norm = float(data.train_x.flatten(1).norm(dim=1).median())
    runtime.show(f"**{name}**: a training image's median L2 norm is {image_norm:.2f}. "
                 + mislabeled_study.cost_note(table, study)
                 + f" On the clean attacked images the independent classifier is right {study['baseline']['judge']:.1%}"
                 f" of the time, the nearest class mean {study['baseline']['means']:.1%}. Published beside ours "
                 f"(**another data set, network and budget scale**, for orientation only): {published.ILYAS} at "
                 "ε = 0.5: " + ", ".join(f"{k} {v:.1%}" for k, v in published.ILYAS_TEST_ACC.items()))
    budget_sweep(table, study["budgets"], study["judged"], image_norm,
                                f"{name}: mislabelled training against the budget", min_success)
    sweep_examples(study, data.classes, name)
    display(table[list(SWEEP_COLUMNS)].rename(columns=SWEEP_COLUMNS).style.format(SWEEP_FORMATS, na_rep="–")
            .hide(axis="index"))
    for sentence in mislabeled_study.visibility_words(table):
        runtime.show(sentence)
