"""The on/off-subspace attack experiment, as per-image records.

For a classifier and N correctly classified images of one split, each *condition* is one attack:
"unconstrained" PGD, or PGD whose gradient is projected "on" or "off" a k-dimensional subspace
(the autoencoder's tangent space, or a random / coordinate / PCA control). Each condition's outcome
is cached by a hash of everything it depends on (models, images, settings, subspace, code), so
notebooks 03 and 04 share the attacks they have in common and a re-run costs nothing.

One record per image and condition: dataset, split, clip (whether x + delta was kept in [0, 1]), image_id, condition, subspace, k, n, success,
norm, iterations, label, pred, subspace_share (energy of the final perturbation inside the intended
subspace: clipping leaks it), grad_share (energy of the clean image's loss gradient inside the
subspace; a random subspace captures about k/n of it), class_cosine (cosine between the perturbation and
mu[pred] - mu[label], the difference of the training-set class means of the adversarial and the true
class: DMM's claim that on-manifold perturbations "look like" the target class, as a number; NaN for
failures).
"""
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

from lib import attacks, cache, manifold, subspaces

CONDITIONS = ("unconstrained", "on", "off")


@dataclass(frozen=True)
class AttackSettings:
    """PGD settings, in [0, 1] pixel scale."""

    eps: float               # L2 budget
    alpha: float             # step length
    steps: int               # iterations before the attack counts as failed
    loss: str = "margin"     # margin | ce
    clip: bool = True        # keep x + delta in [0, 1]
    refine_steps: int = 12   # bisections on the last step


def settings_from(table):
    """{condition: AttackSettings} from a notebook parameter {condition: {eps, alpha, steps, ...}}."""
    unknown = set(table) - set(CONDITIONS)
    if unknown:
        raise ValueError(f"attack settings are given per condition, one of {CONDITIONS}; got {sorted(unknown)}")
    return {c: AttackSettings(**v) for c, v in table.items()}


@torch.no_grad()
def pick_correct(model, x, y, n, seed=0, device="cpu"):
    """Indices of up to n images that `model` classifies correctly, in a seeded random order."""
    if n < 1:
        raise ValueError(f"n_images must be a positive number, got {n}")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    pred = torch.cat([model(x[order[i:i + 1000]].to(device)).argmax(1).cpu() for i in range(0, len(x), 1000)])
    return order[pred == y[order]][:n]


def input_gradient(model, x, y, loss="margin"):
    """Gradient of the attack's loss w.r.t. the clean images (what the first PGD step follows)."""
    x = x.detach().requires_grad_(True)
    fn = attacks.margin_loss if loss == "margin" else attacks.ce_loss
    return torch.autograd.grad(fn(model(x), y), x)[0]


def class_means(x, y):
    """(max label + 1, n) tensor: the mean training image of each class (NaN rows for absent labels)."""
    means = torch.full((int(y.max()) + 1, x[0].numel()), float("nan"))
    for c in y.unique():
        means[c] = x[y == c].flatten(1).mean(0)
    return means


def class_cosine(delta, label, pred, success, means):
    """cos(delta, mu[pred] - mu[label]) per image; NaN where the attack failed."""
    direction = means[pred] - means[label]
    cos = torch.nn.functional.cosine_similarity(delta.flatten(1).double(), direction.double(), dim=1)
    return torch.where(success, cos, torch.full_like(cos, float("nan"))).float()


@dataclass
class SubspaceSpec:
    """A subspace to build at the attacked images, and what identifies it in a cache key."""

    kind: str          # tangent | coordinate | random | pca
    k: int
    identity: str      # e.g. the autoencoder's cache key, or the seed of a random draw
    build: callable    # x (B, C, H, W) -> a lib.subspaces Subspace


def tangent_spec(ae):
    return SubspaceSpec("tangent", ae.model.latent_dim, ae.key, lambda x: subspaces.tangent_subspace(ae.model, x))


def control_spec(kind, k, seed=0, train_images=None):
    """A random control of dimension k: coordinate, random (orthonormal) or pca (of train_images)."""
    identity = f"seed={seed}" if kind != "pca" else f"pca-of-{len(train_images)}-{hash_tensor(train_images)}"
    return SubspaceSpec(kind, k, identity,
                        lambda x: subspaces.make_subspace(kind, k, x, train_images=train_images, seed=seed))


def hash_tensor(t):
    import hashlib

    return hashlib.sha1(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:12]


@dataclass
class Outcome:
    """One condition on the experiment's images: per-image tensors (cpu) and the records."""

    condition: str
    subspace: str
    delta: torch.Tensor
    pred: torch.Tensor
    records: pd.DataFrame


class AttackExperiment:
    """A classifier and the N correctly classified images of one data set split that all conditions attack."""

    def __init__(self, classifier, data, split, n_images, settings, seed=0, device="cpu"):
        if split not in ("train", "test"):
            raise ValueError(f"split must be train or test; got {split!r}")
        missing = set(CONDITIONS) - set(settings)
        if missing:
            raise ValueError(f"attack settings are missing for {sorted(missing)}")
        self.classifier, self.data, self.split, self.settings = classifier, data, split, settings
        self.seed, self.device = seed, torch.device(device)
        x, y = getattr(data, f"{split}_x"), getattr(data, f"{split}_y")
        self.ids = pick_correct(classifier.model, x, y, n_images, seed, self.device)
        self.x, self.y = x[self.ids], y[self.ids]
        self.class_means = class_means(data.train_x, data.train_y)

    def _key(self, condition, spec):
        config = {"classifier": self.classifier.key, "data": self.data.identity(), "split": self.split,
                  "ids": hash_tensor(self.ids), "x": hash_tensor(self.x), "condition": condition,
                  "settings": asdict(self.settings[condition]), "seed": self.seed,
                  "subspace": None if spec is None else (spec.kind, spec.k, spec.identity)}
        return cache.config_hash(config, ATTACK_CODE)

    def run(self, condition, spec=None, progress=True):
        """The condition's Outcome (from the cache if there); spec is None exactly for "unconstrained"."""
        if condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {CONDITIONS}; got {condition!r}")
        if (spec is None) != (condition == "unconstrained"):
            raise ValueError("an 'on' / 'off' attack needs a subspace spec; 'unconstrained' takes none")
        entry, _ = cache.cached("attacks", self._key(condition, spec), lambda: self._attack(condition, spec, progress))
        t = entry["state_dict"]
        rec = pd.DataFrame({name: t[name].numpy() for name in
                            ("success", "norm", "iterations", "label", "pred", "subspace_share", "grad_share")})
        rec["class_cosine"] = class_cosine(t["delta"], t["label"], t["pred"], t["success"], self.class_means).numpy()
        rec.insert(0, "image_id", self.ids.numpy())
        for col, value in reversed(list({"dataset": self.data.name, "split": self.split,
                                         "clip": self.settings[condition].clip, "condition": condition,
                                         "subspace": "none" if spec is None else spec.kind,
                                         "k": self.data.n if spec is None else spec.k, "n": self.data.n}.items())):
            rec.insert(0, col, value)
        return Outcome(condition, rec["subspace"].iloc[0], t["delta"].view_as(self.x), t["pred"], rec)

    def _attack(self, condition, spec, progress):
        """Run one condition; returns (tensors, meta) for the cache (see ATTACK_CODE for its key)."""
        model, s = self.classifier.model.eval(), self.settings[condition]
        x, y = self.x.to(self.device), self.y.to(self.device)
        project, grad_share = None, torch.full((len(x),), float("nan"))
        if spec is not None:
            sub = spec.build(x)
            project = sub.on if condition == "on" else sub.off
            g = input_gradient(model, x, y, s.loss)
            grad_share = manifold.energy_share(g, sub.on(g)).detach().cpu()  # share IN the subspace
        r = attacks.pgd_l2(model, x, y, eps=s.eps, alpha=s.alpha, steps=s.steps, project=project, loss=s.loss,
                           clip=s.clip, refine_steps=s.refine_steps, progress=progress)
        tensors = {"delta": r.delta.flatten(1), "success": r.success, "norm": r.norm, "iterations": r.iterations,
                   "label": r.label, "pred": r.pred, "subspace_share": r.subspace_share}
        tensors = {k: v.detach().cpu() for k, v in tensors.items()}
        tensors["grad_share"] = grad_share
        return tensors, {"condition": condition, "subspace": None if spec is None else spec.kind}


def flat_boundary_ratio(n, k, ratio):
    """What confinement alone predicts for a locally flat boundary and a subspace in general position:
    the distance along the projected normal w is |s| / ||P w||, and ||P w||^2 ~ k/n for a random
    k-dimensional subspace. So on/unconstrained = sqrt(n/k), off/unconstrained = sqrt(n/(n-k)),
    on/off = sqrt((n-k)/k). `ratio` names one of them, e.g. "on / off"."""
    table = {"on / off": np.sqrt((n - k) / k), "on / unconstrained": np.sqrt(n / k),
             "off / unconstrained": np.sqrt(n / (n - k))}
    if ratio not in table:
        raise ValueError(f"ratio must be one of {list(table)}; got {ratio!r}")
    return float(table[ratio])


# What defines an attack's outcome, hashed into its cache key (an edit elsewhere keeps the cache).
ATTACK_CODE = [attacks, manifold, subspaces, AttackSettings, pick_correct, input_gradient, AttackExperiment._attack]
