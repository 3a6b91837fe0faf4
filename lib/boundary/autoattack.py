"""AutoAttack's standard suite (Croce & Hein 2020) on a defended model, through torchattacks.

The suite is the four attacks of AutoAttack's "standard" version, run one after another, each on the images the
attacks before it left robust (as AutoAttack runs them), end to end through the model (for a projection defence,
through D(E(.)): it is differentiable, so no BPDA is needed):

    APGD-CE   Auto-PGD on the cross-entropy, 1 restart
    APGD-T    Auto-PGD on the targeted DLR loss, `n_targets` target classes (the runner-up classes), 1 restart each
    FAB-T     targeted FAB, `n_targets` target classes, 1 restart each
    Square    the score-based black-box Square Attack (margin loss), `square_queries` queries

in L2 or L-inf, on the [0, 1] pixel scale the models of this project take (torchattacks assumes inputs in [0, 1]
and no normalisation; our classifiers normalise inside the model). AutoAttack's standard settings are 100
iterations and 9 target classes (10 classes), 5,000 Square queries: `SuiteConfig()`. Every adversarial example
is checked again here: an image counts as broken only if the returned point lies in [0, 1], within the budget
(up to float rounding) and is misclassified by the model.

    cfg = SuiteConfig(steps=100, n_targets=9, square_queries=5000)
    broken_by = run_suite(model, x, y, norm="L2", eps=2.0, cfg=cfg)   # (B,) index of the first attack that broke it

torchattacks (3.5.1) is installed by `make install` with --no-deps (its metadata pins an old `requests`).
"""
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

from lib.infra import cache
from lib.infra.artifacts import Artifact
from lib.infra.runtime import progress

ATTACKS = ("APGD-CE", "APGD-T", "FAB-T", "Square")
NORMS = ("L2", "Linf")
NOT_BROKEN = len(ATTACKS)  # the broken_by value of an image that no attack of the suite broke


@dataclass(frozen=True)
class SuiteConfig:
    steps: int = 100            # iterations of APGD-CE, APGD-T (per target) and FAB-T (per target)
    n_targets: int = 9          # target classes of APGD-T and FAB-T
    square_queries: int = 5000  # queries of the Square Attack (per image)
    seed: int = 0

    def check(self):
        if self.steps < 1 or self.n_targets < 1 or self.square_queries < 1:
            raise ValueError(f"AutoAttack needs steps, n_targets and square_queries >= 1; got {asdict(self)}")
        return self


def torchattacks_module():
    """torchattacks, or an ImportError saying how to install it."""
    try:
        import torchattacks
    except ImportError as e:  # pragma: no cover - the Makefile installs it
        raise ImportError("AutoAttack needs torchattacks: `.venv/bin/pip install --no-deps torchattacks==3.5.1` "
                          "(--no-deps: its metadata pins an old requests); `make install` does this") from e
    return torchattacks


def make_attack(name, model, norm, eps, cfg, n_classes=10):
    """One torchattacks attack of the suite, with AutoAttack's settings but `cfg`'s iterations, targets and queries."""
    ta = torchattacks_module()
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    common = dict(norm=norm, eps=float(eps), seed=cfg.seed)
    if name == "APGD-CE":
        return ta.APGD(model, steps=cfg.steps, n_restarts=1, loss="ce", **common)
    if name == "APGD-T":
        attack = ta.APGDT(model, steps=cfg.steps, n_restarts=1, n_classes=n_classes, **common)
    elif name == "FAB-T":
        attack = ta.FAB(model, steps=cfg.steps, n_restarts=1, multi_targeted=True, n_classes=n_classes, **common)
    elif name == "Square":
        return ta.Square(model, n_queries=cfg.square_queries, n_restarts=1, p_init=0.8, loss="margin", **common)
    else:
        raise ValueError(f"unknown attack {name!r}; one of {ATTACKS}")
    attack.n_target_classes = min(cfg.n_targets, n_classes - 1)
    return attack


def distance(adv, x, norm):
    """(B,) L2 or L-inf distance between the rows of adv and x."""
    d = (adv - x).flatten(1)
    return d.norm(dim=1) if norm == "L2" else d.abs().amax(dim=1)


@torch.no_grad()
def valid_and_wrong(model, x, adv, y, norm, eps):
    """(B,) bool: adv is a valid adversarial example (in [0, 1], within eps up to float rounding) that `model`
    misclassifies."""
    tol = 1e-5 * max(1.0, float(eps))
    inside = (
        (distance(adv, x, norm) <= eps + tol) & (adv.flatten(1).amin(1) >= -tol) & (adv.flatten(1).amax(1) <= 1 + tol)
    )
    return inside & (model(adv).argmax(1) != y)


def run_suite(model, x, y, *, norm, eps, cfg, attacks=ATTACKS, n_classes=10):
    """The suite `attacks` (in this order) on `model` at budget eps: each attack runs on the images still robust.
    Returns (B,) int64: the index in `attacks` of the first attack that broke each image (0 as well for an image
    misclassified without attack), len(attacks) if none did. torch's global random state is restored afterwards
    (torchattacks reseeds it)."""
    cfg.check()
    model.eval()
    with torch.no_grad():
        broken_by = torch.where(model(x).argmax(1) != y, 0, len(attacks)).cpu()
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        for i, name in enumerate(attacks):
            todo = (broken_by == len(attacks)).nonzero()[:, 0]
            if len(todo) == 0:
                break
            xs, ys = x[todo.to(x.device)], y[todo.to(x.device)]
            adv = make_attack(name, model, norm, eps, cfg, n_classes)(xs, ys)
            hit = valid_and_wrong(model, xs, adv, ys, norm, eps).cpu()
            broken_by[todo[hit]] = i
    return broken_by


def suite_records(defences, keys, x, y, *, norm, eps_list, cfg, attacks=ATTACKS, label=""):
    """`run_suite` on every defence ({name: model}) at every budget, cached per defence and budget (lib.infra.cache: the
    suite's settings, the norm and budget, the images' hash, torchattacks' version and `keys[name]`, the identity of
    that defended model).
    Returns per-image records: defence, norm, eps, image, broken_by (the attack's name, or "" if robust)."""
    images = cache.hash_tensor(x) + cache.hash_tensor(y)
    frames = []
    jobs = [(eps, name) for eps in eps_list for name in defences]
    for eps, name in progress(jobs, desc=f"{label} AutoAttack {norm}", leave=False):
        config = {"suite": asdict(cfg), "attacks": list(attacks), "norm": norm, "eps": float(eps), "images": images,
                  "model": keys[name], "torchattacks": torchattacks_module().__version__}

        def build():
            by = run_suite(defences[name], x, y, norm=norm, eps=eps, cfg=cfg, attacks=attacks)
            return {"broken_by": by}, {"config": config}

        entry, _ = cache.cached(AUTOATTACK.kind, AUTOATTACK.key(config), build)
        by = entry["state_dict"]["broken_by"].numpy()
        names = np.array(list(attacks) + [""])
        frames.append(pd.DataFrame({"defence": name, "norm": norm, "eps": float(eps), "image": np.arange(len(by)),
                                    "broken_by": names[by]}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["defence", "norm", "eps", "image", "broken_by"])


# What defines a suite's outcome (lib.infra.artifacts); torchattacks' version is in the config.
AUTOATTACK = Artifact("autoattack", 1, (SuiteConfig, make_attack, distance, valid_and_wrong, run_suite))


def as_budget_records(suite):
    """Suite records as budget records (defence, attack, eps, image, broken) for the worst case over attacks:
    attack "AutoAttack", broken if any attack of the suite broke the image."""
    return suite.assign(attack="AutoAttack", broken=suite["broken_by"] != "")[
        ["defence", "attack", "eps", "image", "broken"] + [c for c in ("dataset",) if c in suite]]


def cumulative_table(suite, attacks=ATTACKS):
    """Robust accuracy after each attack of the suite (each run on what the previous left), per defence, norm and
    budget: one row each, a column per attack ("after APGD-CE", ...), the last being AutoAttack's."""
    rows = []
    keys = [c for c in ("dataset", "norm", "eps", "defence") if c in suite]
    for group, r in suite.groupby(keys, sort=False):
        rank = r["broken_by"].map({a: i for i, a in enumerate(attacks)}).fillna(len(attacks)).to_numpy()
        row = dict(zip(keys, group if isinstance(group, tuple) else (group,)))
        row.update({f"after {a}": float((rank > i).mean()) for i, a in enumerate(attacks)})
        row["n"] = len(r)
        rows.append(row)
    return pd.DataFrame(rows)
