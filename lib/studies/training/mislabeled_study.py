"""Notebook 10's first experiment: fresh classifiers trained on mislabelled adversarial sets
(lib.studies.training.mislabeled), one cache entry per relabelling.

For one relabelling (D_rand or D_det) of ``n_relabel`` training images (a seeded random subset), every variant's set
is built by targeted PGD from the notebook-01 classifier, plus the two controls (the images labelled t without any
perturbation; the original images and labels). With ``equal_size`` every set is cut to the smallest variant's number
of successes (a seeded random subset of each): a set that kept fewer images would otherwise generalise worse for
that reason alone. A fresh classifier of the notebook-01 architecture and optimiser is trained on each set for
``fresh_epochs`` epochs, and its per-image correctness on the clean test set, with the true labels, is stored.
"""
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from lib.geometry import subspaces
from lib.inference import stats
from lib.infra import cache
from lib.learn import train
from lib.studies.training import mislabeled
from lib.infra.artifacts import Artifact
from lib.infra.runtime import progress

N_EXAMPLES = 6  # source images shown per set (ones every variant perturbed successfully)


@dataclass(frozen=True)
class TargetedSettings:
    eps: float                   # L2 budget, [0, 1] pixel scale
    alpha: float                 # step length
    steps: int                   # steps (every one is run: Ilyas et al.)
    stop_at_target: bool = False  # True: stop at the first iterate classified t (the minimal crossing)


def build_sets(clf, ae, data, relabellings, variants, settings, n_relabel, seed=0, batch_size=1000):
    """{relabelling: {name: lib.studies.training.mislabeled.Relabelled}} for every variant and both controls, the true
    labels and {relabelling: targets}. The images are attacked a batch at a time, and each batch's tangent bases (QR of
    the decoder's Jacobian: the batched route of notebook 03) and random subspaces (seeded by the image's index) serve
    every relabelling and variant: one batch's subspaces in memory at a time."""
    sub = data.subset(n_relabel, None, seed)
    x, y = sub.train_x, sub.train_y
    targets = {r: mislabeled.targets(y, r, data.num_classes, seed) for r in relabellings}
    parts = {(r, v): [] for r in relabellings for v in variants}
    k = ae.model.latent_dim
    for i in progress(range(0, len(x), batch_size), desc="relabelled sets", unit="batch", leave=False):
        xb, ib = x[i:i + batch_size], torch.arange(i, min(i + batch_size, len(x)))
        spaces = {
            kind: subspaces.make_subspace(
                kind,
                k,
                xb.to(next(clf.model.parameters()).device),
                ae=ae.model if kind == "tangent" else None,
                seed=seed,
                ids=ib.tolist(),
            )
            for kind in {mislabeled.SUBSPACE_OF[v] for v in variants} - {None}
        }
        for (r, v), got in parts.items():
            kind = mislabeled.SUBSPACE_OF[v]
            s = mislabeled.relabel(clf.model, xb, y[i:i + batch_size], v, targets[r][i:i + batch_size],
                                   settings=asdict(settings), subspace_for=(lambda *_: spaces[kind]) if kind else None,
                                   batch_size=batch_size)
            got.append(replace(s, source=s.source + i))
    sets = {r: {v: mislabeled.concat(parts[r, v]) for v in variants} for r in relabellings}
    for r in relabellings:
        for c in mislabeled.CONTROL_SETS:
            sets[r][c] = mislabeled.relabel(clf.model, x, y, c, targets[r])
    return sets, y, targets


def _fresh(cfg, x, label, num_classes, device="cpu"):
    model, _ = train.fit(train.build_classifier(cfg, num_classes), x, label, F.cross_entropy, cfg, device,
                         "fresh classifier")
    return model




def run_study(clf, ae, data, *, relabellings, variants, settings, n_relabel, fresh_epochs, equal_size=True, seed=0,
              device="cpu"):
    """Every relabelling's sets and fresh classifiers (module docstring), from the cache when there: a list of one
    result per relabelling, {"relabelling", "state_dict": {"correct/<set>": bool per test image, "examples/<set>":
    the images of N_EXAMPLES source images}, "meta": {"n_attacked", "m", "shown_y", "shown_t", "sets": {set: kept,
    n_train, median_norm}}, "hit"}."""
    cfg = replace(train.config_from("classifier", clf.meta["config"]), epochs=fresh_epochs, seed=seed)
    config = {"classifier": clf.key, "autoencoder": ae.key, "data": data.identity(), "relabellings": list(relabellings),
              "variants": list(variants), "settings": asdict(settings), "n_relabel": n_relabel,
              "fresh": asdict(cfg), "equal_size": equal_size, "seed": seed}

    def build():
        sets, y, targets = build_sets(clf, ae, data, relabellings, variants, settings, n_relabel, seed)
        tensors, meta = {}, {}
        for r in relabellings:
            t = targets[r]
            m = min(len(sets[r][v].source) for v in variants) if equal_size and variants else None
            common = set(range(len(y)))
            for v in variants:
                common &= set(sets[r][v].source.tolist())
            shown = sorted(sorted(common)[i] for i in torch.randperm(len(common), generator=torch.Generator()
                                                                     .manual_seed(seed))[:N_EXAMPLES].tolist())
            meta[r] = {"n_attacked": len(y), "m": m, "shown_y": y[shown].tolist(), "shown_t": t[shown].tolist(),
                       "sets": {}}
            g = torch.Generator().manual_seed(seed)
            for name, s in sets[r].items():
                if name != "original" and (s.label == y[s.source]).any():
                    raise RuntimeError(f"the {name} set keeps a true label: the relabelled set would leak it")
                pick = torch.randperm(len(s.source), generator=g)[:m] if m is not None else torch.arange(len(s.source))
                model = _fresh(cfg, s.x[pick], s.label[pick], data.num_classes, device)
                with torch.no_grad():
                    pred = torch.cat([model(data.test_x[i:i + 1000].to(device)).argmax(1).cpu()
                                      for i in range(0, len(data.test_x), 1000)])
                tensors[f"{r}/correct/{name}"] = pred == data.test_y
                where = {int(j): i for i, j in enumerate(s.source.tolist())}
                tensors[f"{r}/examples/{name}"] = s.x[[where[j] for j in shown]] if shown else s.x[:0]
                meta[r]["sets"][name] = {"kept": len(s.source), "n_train": len(pick),
                                         "median_norm": float(s.norm.median()) if len(s.norm) else float("nan")}
        return tensors, meta

    key = STUDY.key(config)
    entry, hit = cache.cached(STUDY.kind, key, build)
    return [{"relabelling": r, "hit": hit, "meta": entry["meta"][r],
             "state_dict": {k.split("/", 1)[1]: v for k, v in entry["state_dict"].items() if k.startswith(f"{r}/")}}
            for r in relabellings]


NAMES = {"unconstrained": "unconstrained", "on": "on (tangent space)", "off": "off (normal space)",
         "random": "random subspace (same k)", "unperturbed": "control: labels t, no perturbation",
         "original": "control: original images and labels"}


def accuracy_table(results, dataset):
    """One row per relabelling and set: images attacked, kept (success rate with its Wilson 95% CI), median
    perturbation norm of the kept ones, images trained on, clean test accuracy with true labels (Wilson 95% CI)."""
    rows = []
    for r in results:
        meta = r["meta"]
        for name, s in meta["sets"].items():
            ok = r["state_dict"][f"correct/{name}"]
            k, n = int(ok.sum()), len(ok)
            perturbed = name in mislabeled.VARIANTS
            rate_lo, rate_hi = stats.wilson_ci(s["kept"], meta["n_attacked"]) if perturbed else (np.nan, np.nan)
            lo, hi = stats.wilson_ci(k, n)
            rows.append({"dataset": dataset, "relabelling": f"D_{r['relabelling']}", "set": name,
                         "training set": NAMES[name], "attacked": meta["n_attacked"] if perturbed else np.nan,
                         "success rate": s["kept"] / meta["n_attacked"] if perturbed else np.nan,
                         "success CI low": rate_lo, "success CI high": rate_hi,
                         "median norm": s["median_norm"] if perturbed else np.nan, "trained on": s["n_train"],
                         "test accuracy": k / n, "CI low": lo, "CI high": hi, "correct": k, "N": n})
    return pd.DataFrame(rows)


def success_rates(results):
    """{(relabelling, variant): share of the attacked images kept} of the perturbed sets."""
    return {(r["relabelling"], name): s["kept"] / r["meta"]["n_attacked"] for r in results
            for name, s in r["meta"]["sets"].items() if name in mislabeled.VARIANTS}


def correctness(results):
    """{(relabelling, set): bool numpy array per test image}."""
    return {(r["relabelling"], k.split("/", 1)[1]): v.numpy() for r in results
            for k, v in r["state_dict"].items() if k.startswith("correct/")}


def cost_note(table):
    """In words: what the set size and the test set cost in each accuracy's interval."""
    half = 100 * ((table["CI high"] - table["CI low"]) / 2).max()
    return (
        f"Every fresh classifier trained on {int(table['trained on'].min()):,} to {int(table['trained on'].max()):,} "
        "images (notebook 01's classifier: every training image), so the original-data control is this profile's "
        f"ceiling; the {int(table['N'].iloc[0]):,} test images give each accuracy a 95% interval of at most "
        f"±{half:.1f} points."
    )


# What defines the study's outcome (lib.infra.artifacts).
STUDY = Artifact("training_claims", 2, (mislabeled, TargetedSettings, build_sets, _fresh, subspaces, train.fit,
                                        train.models, run_study))
