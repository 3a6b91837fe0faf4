"""Projection defences and their robust accuracy: classify P(x), where P is an autoencoder's D(E(x)) or a
linear PCA projection (Karner, "The Dimpled Manifold Revisited", section 4), attacked with a fixed L2
budget (Madry et al. 2018) either on the bare classifier and transferred, or adaptively through P
end to end (Athalye et al. 2018: the defence is differentiable, so the attacker differentiates it).

    defended = Projected(classifier, ae)                      # x -> classifier(D(E(x)))
    out = pgd_budget(defended, x, y, eps=1.5, steps=100)      # out.broken: misclassified within eps

A projection changes the images the classifier sees; if that costs clean accuracy, `finetune_on_projection`
trains the classifier further on P(x) of its own training images (cached like every model), so that the
defended model is judged on what the projection does to attacks, not on a shifted input distribution.
"""
import copy
from dataclasses import asdict, dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from lib.infra import cache
from lib.learn import train
from lib.infra.artifacts import Artifact
from lib.boundary.attacks import l2_norm, margin_loss, ce_loss, pgd_l2
from lib.infra.runtime import progress
from lib.geometry.subspaces import PCASubspace


class Projected(nn.Module):
    """x -> classifier(project(x)); project is an autoencoder (its forward is D(E(x))) or any module."""

    def __init__(self, classifier, project=None):
        super().__init__()
        self.classifier, self.project = classifier, project

    def forward(self, x):
        return self.classifier(x if self.project is None else self.project(x))


class PCAProjection(nn.Module):
    """x -> mean + Q Q^T (x - mean): orthogonal projection onto the affine span of the top-k principal
    directions of the training images (a linear data manifold of dimension k)."""

    def __init__(self, train_images, k):
        super().__init__()
        self.register_buffer("mean", train_images.flatten(1).mean(0))
        self.register_buffer("Q", PCASubspace(train_images, k).Q)  # the principal directions, (n, k)

    def forward(self, x):
        v = x.flatten(1) - self.mean
        return ((v @ self.Q) @ self.Q.T + self.mean).view_as(x)


@torch.no_grad()
def project_images(project, images, device, batch_size=500):
    """P(x) for a stack of images, in batches on `device` (where `project` lives); returned on the images' device."""
    return torch.cat([project(images[i:i + batch_size].to(device)).to(images.device)
                      for i in range(0, len(images), batch_size)])


@dataclass(frozen=True)
class FinetuneConfig:
    """Further training of a classifier on projected images: its own optimiser and batch size (lib.learn.train's
    ClassifierConfig), these epochs and learning rate, no schedule; on a random `train_subset` of its training
    images (seeded; None: all of them)."""

    epochs: int
    lr: float
    seed: int = 0
    train_subset: Optional[int] = None


def finetune_on_projection(clf, project, projection_id, cfg, device="cpu"):
    """A copy of the classifier `clf` (lib.learn.train.Trained) trained `cfg.epochs` more epochs on P(x) of the
    images it was trained on (`cfg.train_subset` of them; their labels unchanged); P is `project` (an autoencoder or a
    PCAProjection, used in eval mode and not trained), `projection_id` identifies it in the cache key (e.g. its cache
    key). Returns a lib.learn.train.Trained whose meta holds the loss per epoch; from the cache when there."""
    if cfg.epochs < 1 or not cfg.lr > 0:
        raise ValueError(f"fine-tuning needs epochs >= 1 and lr > 0; got {cfg.epochs}, {cfg.lr}")
    fit_cfg, data = train.continued_on(clf, cfg.epochs, cfg.lr, cfg.seed, cfg.train_subset)

    def build():
        import time

        torch.manual_seed(cfg.seed)
        t0 = time.time()
        projected = project_images(project.eval(), data.train_x, device)
        model, history = train.fit(copy.deepcopy(clf.model), projected, data.train_y, F.cross_entropy, fit_cfg,
                                   device, f"{data.name} fine-tune on {projection_id[:24]}")
        meta = {"config": asdict(fit_cfg), "finetune": asdict(cfg), "base_classifier": clf.key,
                "projection": projection_id, "n_train": len(data.train_x), "train_seconds": time.time() - t0,
                "history": history}
        return {k: v.cpu() for k, v in model.state_dict().items()}, meta

    key = FINETUNED.key({"finetune": asdict(cfg), "classifier": clf.key, "projection": projection_id})
    entry, hit = cache.cached(FINETUNED.kind, key, build)
    model = copy.deepcopy(clf.model)
    model.load_state_dict(entry["state_dict"])
    return train.Trained(model.to(device).eval(), entry["meta"], hit, key, data)


# What defines a fine-tuned classifier (lib.infra.artifacts).
FINETUNED = Artifact(
    "finetuned",
    2,
    (FinetuneConfig, finetune_on_projection, project_images, train.fit, train.continued, train.continued_on,
     train.make_optimizer),
)


@dataclass
class BudgetResult:
    broken: torch.Tensor  # (B,) bool: misclassified at some iterate within the budget (any restart)
    first_step: (
        torch.Tensor
    )  # (B,) int: first iterate found misclassified (0: clean; restart r adds r * steps); larger if never
    adv: torch.Tensor         # (B, C, H, W) the final iterate of the last restart (for transfer)


def pgd_budget(model, images, labels, *, eps, steps, alpha=None, restarts=1, loss="margin",
               stop_when_broken=True, seed=0, progress_bar=False):
    """Fixed-budget L2 PGD: delta <- Clip_[0,1](Ball_eps(delta + alpha g / ||g||)), g the input gradient of
    the loss (margin: max other logit - true logit, unbounded). The first restart starts at x, the others
    at a random point of the eps ball. An image counts as broken if ANY iterate (inside the ball and the
    box, so each is a valid adversarial example) is misclassified. alpha: 2.5 eps / steps (Madry et al.).

    stop_when_broken: freeze an image once broken (robust accuracy: cheaper, same answer); False runs
    every step (to transfer the final iterate to another model)."""
    if not eps > 0 or int(steps) != steps or steps < 1 or restarts < 1:
        raise ValueError(f"need eps > 0, integer steps >= 1, restarts >= 1; got {eps}, {steps}, {restarts}")
    loss_fn = {"margin": margin_loss, "ce": ce_loss}[loss]
    alpha = 2.5 * eps / steps if alpha is None else alpha
    x, y = images.detach(), labels.detach()
    g = torch.Generator().manual_seed(seed)
    view = lambda v: v.view(-1, *([1] * (x.dim() - 1)))
    with torch.no_grad():
        broken = model(x).argmax(1) != y
    first = torch.where(broken, 0, restarts * steps + 1)
    adv = x.clone()
    for r in progress(range(restarts), desc=f"pgd eps={eps:g}", leave=False, disable=not progress_bar):
        if r == 0:
            delta = torch.zeros_like(x)
        else:
            d = torch.randn(x.shape, generator=g).to(x)
            d = d / view(l2_norm(d)) * view(eps * torch.rand(len(x), generator=g).to(x))
            delta = (x + d).clamp(0, 1) - x
        for t in range(steps + 1):  # step t classifies x + delta_t (one forward pass), then steps
            run = ~broken if stop_when_broken else torch.ones_like(broken)
            if not run.any():
                break
            xa = (x[run] + delta[run]).requires_grad_(t < steps)
            with torch.set_grad_enabled(t < steps):
                logits = model(xa)
            wrong = (logits.argmax(1) != y[run]).detach()
            ids = run.nonzero()[:, 0][wrong & ~broken[run]]
            first[ids] = torch.minimum(first[ids], torch.full_like(first[ids], t + r * steps))
            broken[ids] = True
            if t == steps:
                break
            grad = torch.autograd.grad(loss_fn(logits, y[run]), xa)[0]
            d = delta[run] + alpha * grad / view(l2_norm(grad).clamp_min(1e-12))
            d = d * view((eps / l2_norm(d).clamp_min(1e-12)).clamp(max=1))
            delta[run] = ((x[run] + d).clamp(0, 1) - x[run]).detach()
        adv = (x + delta).detach()
    return BudgetResult(broken, first, adv)


@torch.no_grad()
def misclassified(model, images, labels, batch_size=500):
    """(B,) bool: the model's label differs from `labels`."""
    return torch.cat([model(images[i:i + batch_size]).argmax(1) != labels[i:i + batch_size]
                      for i in range(0, len(images), batch_size)])


# ---------------------------------------------------------------- robust accuracy of several defences

def attack_defences(defences, source, images, labels, eps_grid, steps, restarts=1, seed=0):
    """Per-image records of two attacks on each defence (a dict name -> model) at each eps:
    "transfer" (PGD on the bare classifier `source`, every step run, its final iterate shown to the
    defence) and "adaptive" (PGD through the defence end to end). Returns a DataFrame with columns
    defence, attack, eps, image, broken (bool), first_step."""
    import pandas as pd

    rows = []
    for eps in eps_grid:
        moved = pgd_budget(source, images, labels, eps=eps, steps=steps, restarts=1, stop_when_broken=False,
                           seed=seed).adv
        for name, model in defences.items():
            transfer = misclassified(model, moved, labels) | misclassified(model, images, labels)
            adaptive = pgd_budget(model, images, labels, eps=eps, steps=steps, restarts=restarts, seed=seed)
            for attack, broken, first in (
                ("transfer", transfer, None),
                ("adaptive", adaptive.broken, adaptive.first_step),
            ):
                for i in range(len(images)):
                    rows.append({"defence": name, "attack": attack, "eps": float(eps), "image": i,
                                 "broken": bool(broken[i]), "first_step": None if first is None else int(first[i])})
    return pd.DataFrame(rows)


def robust_accuracy(records, level=0.95):
    """Robust accuracy (share of images not broken) per defence, attack and eps, with Wilson intervals."""
    from lib.inference.stats import wilson_ci

    out = []
    for (d, a, e), r in records.groupby(["defence", "attack", "eps"], sort=False):
        k, n = int((~r["broken"]).sum()), len(r)
        lo, hi = wilson_ci(k, n, level)
        out.append({"defence": d, "attack": a, "eps": e, "robust accuracy": k / n, "CI low": lo, "CI high": hi, "n": n})
    import pandas as pd

    return pd.DataFrame(out)


# ---------------------------------------------------------------- on- and off-manifold attacks of a defence

def subspace_attacks(defences, subspaces, images, labels, *, eps, alpha, steps, refine_steps=12, loss="margin"):
    """Greedy L2 PGD (lib.boundary.attacks.pgd_l2, the attack of notebook 03) on each defended model with its gradient
    projected onto ("on-manifold") or away from ("off-manifold") the subspace `subspaces[name]` of that defence
    (an object with .on / .off, lib.geometry.subspaces), budget eps, x + delta clipped to [0, 1]. Returns per-image
    records (defence, attack, image, success, norm, subspace_share: the share of ||delta||^2 in the intended subspace,
    below 1 where clipping moved part of delta out of it): the smallest perturbation found, so robust accuracy at any
    eps' <= eps follows from the norms (`records_at`)."""
    import pandas as pd

    rows = []
    for name, model in defences.items():
        sub = subspaces[name]
        for attack, project in (("on-manifold", sub.on), ("off-manifold", sub.off)):
            r = pgd_l2(model, images, labels, eps=eps, alpha=alpha, steps=steps, project=project, loss=loss,
                       refine_steps=refine_steps)
            rows += [{"defence": name, "attack": attack, "image": i, "success": bool(r.success[i]),
                      "norm": float(r.norm[i]), "subspace_share": float(r.subspace_share[i])}
                     for i in range(len(images))]
    return pd.DataFrame(rows)


def records_at(greedy, eps_grid):
    """Greedy per-image records (success, norm) as budget records (defence, attack, eps, image, broken): an
    image is broken at eps when the attack succeeded with a perturbation of norm <= eps."""
    import pandas as pd

    return pd.concat([greedy.assign(eps=float(e), broken=greedy["success"] & (greedy["norm"] <= e + 1e-6),
                                     first_step=None)[["defence", "attack", "eps", "image", "broken", "first_step"]]
                      for e in eps_grid], ignore_index=True)
