"""Notebook 06's tables, sentences and headline figures from its measurements (lib.studies.curvature.curvature_runs):
the summary of the twin's curvatures, a sentence per data set for the shared directions, per detection row and for the
training dynamics, and the headline figures of results/06_curvature.json."""
import numpy as np
import pandas as pd

from lib.infra.runtime import show
from lib.reporting import report
from lib.reporting.tables import lookup
from lib.studies.curvature import curvature_runs
from lib.studies.curvature.curvature_analysis import CLAIMS, auc_reading
from lib.studies.curvature.curvature_runs import TWIN

# The verdict and check tables' columns as the page shows them (the results keep these and the raw figures).
VERDICT_COLUMNS = [
    "short",
    "dataset",
    "split",
    "statistic",
    "effect_text",
    "margin_text",
    "p_margin_holm",
    "n",
    "power",
    "verdict",
]


def verdict_view(table):
    """A verdict (or check) table as the page shows it: VERDICT_COLUMNS, p and power rounded."""
    if not len(table):
        return table
    return table[VERDICT_COLUMNS].style.hide(axis="index").format({"p_margin_holm": "{:.3g}", "power": "{:.2f}"},
                                                                  na_rep="–")


def shared_directions_all(models, found, boundary, **settings):
    """curvature_runs.shared_directions for every data set of `models` (settings: its keyword arguments), a sentence
    each on the page: (the shares table, the noise tables)."""
    rows, noise_tables = [], []
    for name, m in models.items():
        r, noise = curvature_runs.shared_directions(name, m, found[name], boundary[name].get("test"), **settings)
        rows += r
        noise_tables.append(noise)
    shares = pd.DataFrame(rows)
    for name in shares["dataset"].unique() if len(shares) else []:
        show(shares_sentence(shares, name))
    return shares, noise_tables


def detection_all(models, found, n_images, draws, pgd, seed, device):
    """curvature_runs.detection for every data set of `models`, a sentence per row on the page: (the detection
    table, {label: ROC curve})."""
    rows, roc = [], {}
    for name, m in models.items():
        r, curves = curvature_runs.detection(name, m, found[name], n_images, draws, pgd, seed, device)
        rows += r
        roc.update(curves)
    detection = pd.DataFrame(rows)
    for r in detection.to_dict("records"):
        show(detection_sentence(r))
    return detection, roc


def summary_table(records):
    """Per data set and split, over the twin's images: the count, median DeepFool distance, the means of each
    image's mean, most negative and most positive principal curvature, and the share of images whose mean is < 0."""
    smooth = records[records["method"] == TWIN] if len(records) else records
    if not len(smooth):
        return pd.DataFrame()
    return (smooth.groupby(["dataset", "split"])
            .agg(images=("distance", "size"), median_distance=("distance", "median"),
                 mean_curvature=("mean_curvature", "mean"), min_curvature=("min_curvature", "mean"),
                 max_curvature=("max_curvature", "mean"),
                 share_negative_mean=("mean_curvature", lambda v: float((v < 0).mean())))
            .reset_index())


def shares_sentence(shares, name):
    """The median shares in S of one data set's four perturbations beside Fawzi et al.'s (LeNet / NiN, CIFAR-10)."""
    t = shares[shares["dataset"] == name]
    sh = t.set_index("perturbation")["median share"]
    return (f"**{name}** (dim S = {int(t['dim S'].iloc[0])}): median share in S of the "
            f"DeepFool perturbation {sh['adversarial']:.2f} (LeNet / NiN: 0.64 / 0.60), of a random direction "
            f"{sh['random']:.2f} (0.25), of x₂ − x₁ {sh['x2 - x1']:.2f} (0.10 / 0.09), of the gradient "
            f"{sh['gradient']:.2f} (0.22 / 0.24).")


def detection_sentence(r):
    """One detection row (lib.studies.curvature.curvature_runs.detection) in words: AUC, the sides of rho, label
    recovery."""
    return (
        f"**{r['dataset']}, natural vs {r['perturbation']}:** AUC {r['AUC']:.2f} [{r['CI low']:.2f}, "
        f"{r['CI high']:.2f}] for the published rule (ρ > t flags 'perturbed'); {r['natural: rho < 0']:.0%} of natural "
        f"images have ρ < 0 and {r['perturbed: rho > 0']:.0%} of perturbed ones ρ > 0; label recovery at t = 0: "
        f"{r['label recovery (t = 0)']:.0%} — {auc_reading(r['AUC'])}."
    )


def two_phases(ratio, margin):
    """DMM's two phases in the tangent / random gradient-share ratio over checkpoints: its lowest value is inside the
    run (not the first or last checkpoint), below 1, and the last value is above it by more than the margin."""
    ratio = np.asarray(ratio, float)
    turn = int(np.argmin(ratio))
    return bool(0 < turn < len(ratio) - 1 and ratio[turn] < 1 and ratio[-1] > ratio[turn] * margin)


def dynamics_sentence(name, t, margin):
    """The training-dynamics table `t` of one data set in words: the ratio's first, lowest, highest and last value,
    and whether its course has the shape of two phases (`two_phases`)."""
    ratio = t["tangent / random gradient share"].to_numpy()
    turn, peak = int(np.argmin(ratio)), int(np.argmax(ratio))
    return (
        f"**{name}.** Tangent / random gradient share: {ratio[0]:.2f} at epoch {t['epoch'].iloc[0]}, lowest "
        f"{ratio[turn]:.2f} at epoch {t['epoch'].iloc[turn]}, highest {ratio[peak]:.2f} at epoch "
        f"{t['epoch'].iloc[peak]}, {ratio[-1]:.2f} at epoch {t['epoch'].iloc[-1]}. "
        + (
            "A fall below 1 then a rise by more than the margin: the shape of two phases."
            if two_phases(ratio, margin)
            else "No fall-then-rise beyond the margin: no sign of two phases in this measure."
        )
    )


def headlines(names, split, summary, verdicts, shares, detection):
    """Per data set: the twin's mean principal curvature on `split`, the median ratios of claims 06a and 06b with
    their verdicts, the DeepFool perturbation's share in S, and the detection AUC and label recovery after DeepFool."""
    out = []
    for name in names:
        v = lookup(summary, "mean_curvature", dataset=name, split=split)
        if v is not None:
            out.append(report.headline(f"{name} {split}: mean principal curvature (twin)", v,
                                       "1/px", "negative near natural images (Fawzi et al., CIFAR-10)"))
        for cid, (_, text) in CLAIMS.items():
            r = lookup(verdicts, claim_id=cid, dataset=name, split=split)
            if r is not None:
                out.append(report.headline(f"{name} {split}: {text} (median ratio; {r.verdict})",
                                           float(r.effect), "x", "DMM's picture: below 1"))
        v = lookup(shares, "median share", dataset=name, perturbation="adversarial")
        if v is not None:
            out.append(report.headline(f"{name}: share of the DeepFool perturbation in S", v,
                                       "", "0.64 / 0.60 (LeNet / NiN, CIFAR-10); random 0.25"))
        dt = lookup(detection, dataset=name, perturbation="DeepFool")
        if dt is not None:
            auc = float(dt["AUC"])
            out.append(report.headline(f"{name}: detection AUC, natural vs DeepFool (bootstrap 95% interval)", auc,
                                       "", ci=(float(dt["CI low"]), float(dt["CI high"])), note=auc_reading(auc)))
            out.append(
                report.headline(
                    f"{name}: label recovery after DeepFool (t = 0)",
                    float(dt["label recovery (t = 0)"]),
                    "%",
                    "92 / 88 / 74% (ImageNet networks; indirect)",
                )
            )
    return out
