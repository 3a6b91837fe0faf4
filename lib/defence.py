"""Projection defences and their robust accuracy: classify P(x), where P is an autoencoder's D(E(x)) or a
linear PCA projection (Karner, "The Dimpled Manifold Revisited", section 4), attacked with a fixed L2
budget (Madry et al. 2018) either on the bare classifier and transferred, or adaptively through P
end to end (Athalye et al. 2018: the defence is differentiable, so the attacker differentiates it).

    defended = Projected(classifier, ae)                      # x -> classifier(D(E(x)))
    out = pgd_budget(defended, x, y, eps=1.5, steps=100)      # out.broken: misclassified within eps
"""
from dataclasses import dataclass

import torch
from torch import nn

from lib.attacks import l2_norm, margin_loss, ce_loss
from lib.runtime import progress


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
        X = train_images.flatten(1)
        if not 1 <= k < X.shape[1]:
            raise ValueError(f"k must be in 1..{X.shape[1] - 1}, got {k}")
        mean = X.mean(0)
        Q = torch.linalg.svd(X - mean, full_matrices=False).Vh[:k].T.contiguous()
        self.register_buffer("mean", mean)
        self.register_buffer("Q", Q)

    def forward(self, x):
        v = x.flatten(1) - self.mean
        return ((v @ self.Q) @ self.Q.T + self.mean).view_as(x)


@dataclass
class BudgetResult:
    broken: torch.Tensor      # (B,) bool: misclassified at some iterate within the budget (any restart)
    first_step: torch.Tensor  # (B,) int: first step at which it was misclassified (0: clean), steps + 1 if never
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
    first = torch.where(broken, 0, steps + 1)
    adv = x.clone()
    for r in progress(range(restarts), desc=f"pgd eps={eps:g}", leave=False, disable=not progress_bar):
        if r == 0:
            delta = torch.zeros_like(x)
        else:
            d = torch.randn(x.shape, generator=g).to(x)
            d = d / view(l2_norm(d)) * view(eps * torch.rand(len(x), generator=g).to(x))
            delta = (x + d).clamp(0, 1) - x
        for t in range(1, steps + 1):
            run = ~broken if stop_when_broken else torch.ones_like(broken)
            if not run.any():
                break
            xa = (x[run] + delta[run]).requires_grad_(True)
            grad = torch.autograd.grad(loss_fn(model(xa), y[run]), xa)[0]
            d = delta[run] + alpha * grad / view(l2_norm(grad).clamp_min(1e-12))
            d = d * view((eps / l2_norm(d).clamp_min(1e-12)).clamp(max=1))
            delta[run] = ((x[run] + d).clamp(0, 1) - x[run]).detach()
            with torch.no_grad():
                wrong = model(x[run] + delta[run]).argmax(1) != y[run]
            ids = run.nonzero()[:, 0][wrong & ~broken[run]]
            first[ids] = torch.minimum(first[ids], torch.full_like(first[ids], t + r * steps))
            broken[ids] = True
        adv = (x + delta).detach()
    return BudgetResult(broken, first, adv)


@torch.no_grad()
def misclassified(model, images, labels, batch_size=500):
    """(B,) bool: the model's label differs from `labels`."""
    return torch.cat([model(images[i:i + batch_size]).argmax(1) != labels[i:i + batch_size]
                      for i in range(0, len(images), batch_size)])
