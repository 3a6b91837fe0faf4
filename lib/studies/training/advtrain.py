"""L2 adversarial training (Madry et al. 2018) of a trained classifier, and its clean and robust accuracy.

Each minibatch is replaced by its adversarial examples: L2 PGD (lib.studies.defence.defence.pgd_budget, cross-entropy,
every step run, step 2.5 eps / steps) within eps of each image, then one optimiser step on the cross-entropy of those
images with their true labels. Here it fine-tunes the notebook-01 classifier (same architecture and optimiser,
``epochs`` more epochs at ``lr``); the result is cached like every model (lib.infra.cache, kind "finetuned").
"""
import copy
import time
from dataclasses import asdict, dataclass, replace
from typing import NamedTuple, Optional

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from lib.experiments import experiment
from lib.inference import stats
from lib.infra import cache
from lib.learn import train
from lib.studies.defence import defence
from lib.infra.artifacts import Artifact


@dataclass(frozen=True)
class AdvTrainConfig:
    eps: float      # L2 budget of the training attack, [0, 1] pixel scale
    steps: int      # PGD steps per minibatch
    epochs: int     # epochs of fine-tuning
    lr: float       # learning rate (the base classifier's optimiser)
    seed: int = 0
    train_subset: Optional[int] = None  # fine-tune on a seeded random this many of the classifier's training images


def madry_fit(model, x, y, cfg, fit_cfg, device="cpu"):
    """Train `model` on the PGD adversarial examples of (x, y) (module docstring): lib.learn.train.fit with each
    batch replaced by its examples at cfg.eps; returns the loss per epoch."""
    def attack(m, xb, yb):
        return defence.pgd_budget(m, xb, yb, eps=cfg.eps, steps=cfg.steps, loss="ce", stop_when_broken=False,
                                  seed=cfg.seed).adv

    fit_cfg = replace(fit_cfg, epochs=cfg.epochs, seed=cfg.seed)
    _, history = train.fit(model, x, y, F.cross_entropy, fit_cfg, device, "adversarial training", perturb=attack)
    return history


# What defines an adversarially trained classifier (lib.infra.artifacts).
ADVTRAINED = Artifact("advtrained", 3, (AdvTrainConfig, madry_fit, defence.pgd_budget, train.make_optimizer,
                                        train.models, train.fit, train.continued, train.continued_on))


def adversarially_trained(clf, cfg, device="cpu"):
    """A copy of the classifier `clf` (lib.learn.train.Trained) fine-tuned by L2 adversarial training on the images it
    was trained on: a lib.learn.train.Trained (meta: the settings, loss per epoch, seconds), from the cache when
    there."""
    if not (cfg.eps > 0 and cfg.steps >= 1 and cfg.epochs >= 1 and cfg.lr > 0):
        raise ValueError(f"adversarial training needs eps > 0, steps >= 1, epochs >= 1, lr > 0; got {cfg}")
    fit_cfg, data = train.continued_on(clf, cfg.epochs, cfg.lr, cfg.seed, cfg.train_subset)

    def build():
        torch.manual_seed(cfg.seed)
        t0 = time.time()
        model = copy.deepcopy(clf.model)
        history = madry_fit(model, data.train_x, data.train_y, cfg, fit_cfg, device)
        meta = {"advtrain": asdict(cfg), "base_classifier": clf.key, "n_train": len(data.train_x),
                "train_seconds": time.time() - t0, "history": history}
        return {k: v.cpu() for k, v in model.state_dict().items()}, meta

    key = ADVTRAINED.key({"advtrain": asdict(cfg), "classifier": clf.key, "data": data.identity()})
    entry, hit = cache.cached(ADVTRAINED.kind, key, build)
    model = copy.deepcopy(clf.model)
    model.load_state_dict(entry["state_dict"])
    return train.Trained(model.to(device).eval(), entry["meta"], hit, key, data)


def accuracies(models, x, y, eps, steps, device="cpu", batch_size=500):
    """Clean and robust accuracy (L2 PGD at eps, lib.studies.defence.defence.pgd_budget with the margin loss, `steps`
    steps) of each model {name: nn.Module} on the images x with labels y, with Wilson 95% intervals: a list of dicts."""
    rows = []
    for name, model in models.items():
        model = model.eval()
        clean = ~defence.misclassified(model, x.to(device), y.to(device))
        robust = torch.cat([~defence.pgd_budget(model, x[i:i + batch_size].to(device), y[i:i + batch_size].to(device),
                                                eps=eps, steps=steps).broken for i in range(0, len(x), batch_size)])
        for what, ok in (("clean", clean), (f"robust (L2 PGD, eps {eps:.2f})", robust)):
            k = int(ok.sum())
            lo, hi = stats.wilson_ci(k, len(ok))
            rows.append({"model": name, "accuracy": what, "correct": k, "N": len(ok), "value": k / len(ok),
                         "CI low": lo, "CI high": hi})
    return rows


# ---------------------------------------------------------------- the budget rule, and the attacks before / after

def budget_rule(clf, data, n_images, settings, seed=0, device="cpu", shard_size=50):
    """The training budget: the median minimal norm of greedy unconstrained PGD (lib.experiments.experiment, notebook
    03's attack and settings) on n_images correctly classified training images, failures ranked at the top. Returns
    (median, its 95% CI, the records): notebook 03's cached shards where its settings are these."""
    exp = experiment.AttackExperiment(clf, data, "train", n_images, settings, seed=seed, device=device,
                                      shard_size=shard_size)
    r = exp.run("unconstrained").records
    logs = np.log(np.maximum(r["norm"].to_numpy(float), 1e-300))
    med, lo, hi = stats.median_ci(logs, 0.95, np.where(r["success"].to_numpy(bool), logs, np.inf))
    return float(np.exp(med)), (float(np.exp(lo)), float(np.exp(hi))), r


def before_after(models, ae, data, n_images, settings, k, seed=0, device="cpu", shard_size=50):
    """Per-image records of the same test images attacked before and after ({"before": Trained, "after": Trained}):
    unconstrained, on / off the tangent space, on / off a random orthonormal subspace of the same k
    (lib.experiments.experiment, cached shards; the "before" ones are notebooks 03 and 04's). The images are those the
    "before" classifier classifies correctly (pick_correct), less the ones the "after" classifier gets wrong (counted,
    returned). The records' split column says which model: "before" or "after"."""
    frames, exps = [], {}
    tangent, random = experiment.tangent_spec(ae), experiment.control_spec("random", k, seed)
    for name, clf in models.items():
        ids = None if name == "before" else exps["before"].ids
        exps[name] = exp = experiment.AttackExperiment(clf, data, "test", n_images, settings, seed=seed, device=device,
                                                       shard_size=shard_size, ids=ids)
        runs = [exp.run("unconstrained")] + [exp.run(c, s) for s in (tangent, random) for c in ("on", "off")]
        frames += [o.records.assign(split=name) for o in runs]
    records = pd.concat(frames, ignore_index=True)
    wrong = set(records.loc[(records["split"] == "after") & records["success"].astype(bool)
                            & (records["iterations"] == 0), "image_id"])
    return records[~records["image_id"].isin(wrong)].reset_index(drop=True), len(wrong), exps


class FineTuned(NamedTuple):
    """Notebook 10's adversarially trained classifier and what it reports (`fine_tune`)."""

    tuned: object   # the tuned lib.learn.train.Trained
    budget: dict    # {"eps", "median", "ci"}: the training budget and the median minimal norm it came from
    rows: list      # accuracies' rows: clean and robust, before and after, on every test image
    text: str       # a sentence on the budget rule


def fine_tune(clf, data, *, settings, n_images, scale, steps, epochs, lr, robust_steps, train_subset=None, seed=0,
              device="cpu", shard_size=50) -> FineTuned:
    """Notebook 10's adversarial training of `clf` on `data` (on `train_subset` of its training images; None: all) at
    eps = scale x budget_rule's median (budget_rule on `n_images` images attacked with `settings`), `steps` PGD steps
    per batch, `epochs` epochs at `lr`; robust accuracy by `robust_steps`-step PGD at the training eps."""
    med, ci, _ = budget_rule(clf, data, n_images, settings, seed, device, shard_size)
    cfg = AdvTrainConfig(scale * med, steps, epochs, lr, seed, train_subset)
    tuned = adversarially_trained(clf, cfg, device)
    rows = [
        {"dataset": data.name, **row}
        for row in accuracies(
            {"before": clf.model, "after": tuned.model}, data.test_x, data.test_y, cfg.eps, robust_steps, device
        )
    ]
    text = (
        f"{data.name}: median minimal norm {med:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] (95% CI) x {scale:g} → training eps "
        f"{cfg.eps:.3f}; adversarial training on {len(tuned.train_data.train_x):,} training images, "
        f"{tuned.summary()}."
    )
    return FineTuned(tuned, {"eps": cfg.eps, "median": med, "ci": ci}, rows, text)
