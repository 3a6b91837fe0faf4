"""Notebook 07's defended models of one data set: the three projections (PCA of the same k, the plain autoencoder, the
I-AE), the defences built on them (`build_defences`: classify P(x), or x itself for "none"), their clean accuracy,
and the fine-tune policy (`needs_finetune`, applied by `defences_for`): where any projection costs more than the
threshold of clean test accuracy, every projection defence of that data set gets a classifier fine-tuned on P(x)."""
from dataclasses import dataclass, field

from lib.experiments import experiment
from lib.inference import stats
from lib.studies.defence import defence


def clean_row(name, label, classifier, net, x, y):
    """Clean accuracy of the defended model `net` on the images x (labels y), with a Wilson 95% interval."""
    wrong = defence.misclassified(net, x, y)
    k_ok = int((~wrong).sum())
    lo, hi = stats.wilson_ci(k_ok, len(wrong))
    return {"dataset": name, "defence": label, "classifier": classifier, "clean accuracy": k_ok / len(wrong),
            "CI low": lo, "CI high": hi, "n": len(wrong)}


def attacked_images(classifier, d, n, seed, device):
    """The attacked images: `n` test images the bare classifier gets right (seeded choice), and their labels."""
    ids = experiment.pick_correct(classifier, d.test_x, d.test_y, n, seed, device)
    return d.test_x[ids].to(device), d.test_y[ids].to(device)


def projections_for(d, ae, iae, k, device):
    """{label: (projection module, its identity for cache keys)}: PCA onto the top-k principal directions of the
    training images, the plain autoencoder (lib.learn.train.Trained) and the I-AE (lib.learn.iae.TrainedIAE)."""
    pca = defence.PCAProjection(d.train_x, k).to(device)
    return {"pca": (pca, f"pca-k{k}-{d.identity()}"), "plain AE": (ae.model, ae.key), "I-AE": (iae.model, iae.key)}


def build_defences(classifier, projections, tuned=None):
    """{"none": the bare classifier, label: classifier(P(x)) per projection}; `tuned` ({label: lib.learn.train.Trained})
    replaces the classifier of those projection defences."""
    tuned = tuned or {}
    return {"none": defence.Projected(classifier),
            **{label: defence.Projected(tuned[label].model if label in tuned else classifier, p)
               for label, (p, _) in projections.items()}}


def needs_finetune(clean_accuracy, threshold):
    """The fine-tune policy: {defence: clean accuracy} (with "none", the bare classifier) -> (whether every projection
    defence gets a fine-tuned classifier: some projection costs more than `threshold`, {projection: cost})."""
    drop = {label: clean_accuracy["none"] - a for label, a in clean_accuracy.items() if label != "none"}
    return max(drop.values()) > threshold, drop


@dataclass
class Defended:
    """The defences of one data set, their clean-accuracy rows, the fine-tuned classifiers' summaries (empty if the
    policy did not fine-tune) and a sentence saying which classifiers the defences use."""

    defences: dict
    clean_rows: list
    finetuned: dict = field(default_factory=dict)
    message: str = ""
    keys: dict = field(default_factory=dict)  # {defence: its identity (classifier and projection cache keys)}


def defence_keys(clf, projections, tuned=None):
    """{defence: identity} for cache keys: the key of the classifier each defence uses and of its projection."""
    tuned = tuned or {}
    return {"none": clf.key, **{label: f"{(tuned[label] if label in tuned else clf).key}|{pid}"
                                for label, (_, pid) in projections.items()}}


def defences_for(name, d, clf, ae, iae, threshold, cfg, device):
    """The defences of one data set (`projections_for` the plain autoencoder `ae` and the I-AE `iae`) under the
    fine-tune policy: clean accuracy of each on all test images with the classifier of notebook 01 (`clf`,
    lib.learn.train.Trained); if `needs_finetune`, classifiers fine-tuned on P(x)
    (lib.studies.defence.defence.finetune_on_projection with `cfg`, cached) for every projection, and their clean
    accuracy."""
    projections = projections_for(d, ae, iae, ae.model.latent_dim, device)
    x, y = d.test_x.to(device), d.test_y.to(device)
    seen = {"none": x, **{label: defence.project_images(p.eval(), x, device) for label, (p, _) in projections.items()}}
    defs = build_defences(clf.model, projections)  # clean accuracy: each classifier on P(x), projected once
    rows = {label: clean_row(name, label, "notebook 01", clf.model, seen[label], y) for label in defs}
    tune, drop = needs_finetune({label: r["clean accuracy"] for label, r in rows.items()}, threshold)
    if not tune:
        return Defended(
            defs,
            list(rows.values()),
            keys=defence_keys(clf, projections),
            message=f"**{name}**: no projection costs more than {100 * threshold:g} points of clean accuracy: "
            f"the defences use the classifier of notebook 01.",
        )
    tuned = {label: defence.finetune_on_projection(clf, p, pid, cfg, device) for label, (p, pid) in projections.items()}
    defs = build_defences(clf.model, projections, tuned)
    finetuned = {label: t.summary() for label, t in tuned.items()}
    rows = list(rows.values()) + [clean_row(name, label, "fine-tuned on P(x)", tuned[label].model, seen[label], y)
                                  for label in tuned]
    worst = max(drop, key=drop.get)
    return Defended(defs, rows, finetuned, keys=defence_keys(clf, projections, tuned), message=
                    f"**{name}**: the largest clean-accuracy cost of a projection is {100 * drop[worst]:.1f} points "
                    f"({worst}), above {100 * threshold:g}: the projection defences below use "
                    f"classifiers fine-tuned on P(x) ({cfg.epochs} epochs"
                    + (f" on a random {cfg.train_subset:,} of its training images" if cfg.train_subset else "") + "; "
                    + ", ".join(f"{k}: {v}" for k, v in finetuned.items()) + ").")


def drop_unsupported(found, missing):
    """Remove from `found` (and add to `missing`, with why) the data sets whose images are not 28x28 grey: the I-AE
    of notebook 07 is the 28x28 conv autoencoder (MNIST, Fashion-MNIST). Returns {name: why} of those removed."""
    why = "the I-AE of this notebook is the 28x28 conv autoencoder (MNIST, Fashion-MNIST)"
    dropped = {name: why for name in found if found[name].shape != (1, 28, 28)}
    for name in dropped:
        missing[name] = why
        found.pop(name)
    return dropped

