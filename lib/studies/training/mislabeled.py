"""Mislabelled training sets made by targeted attacks (Ilyas et al. 2019, "Adversarial examples are not bugs, they
are features"), with the perturbation confined to a subspace.

For each training image x of class y a target t != y is chosen (``targets``: D_rand, t uniform over the other
classes; D_det, t = y + 1 mod C), x is moved toward t by targeted L2 PGD (``targeted_pgd_l2``) and labelled t
(``relabel``); only the images the classifier then calls t are kept. A fresh classifier trained on such a set and
tested on clean images with their true labels shows what the perturbations taught it.

The perturbation's step can be confined (VARIANTS): "unconstrained"; "on" the autoencoder's tangent space at x;
"off" it (its normal space); "random": a random k-dimensional subspace, what the dimension alone does. DMM reads an
adversarial perturbation as a step off the manifold through a dimple, so it predicts that "off" teaches what
"unconstrained" teaches and "on" less.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lib.boundary.attacks import l2_norm
from lib.infra.names import RELABELLINGS, VARIANTS  # D_rand, D_det; where the perturbation may go
from lib.infra.runtime import progress

CONTROL_SETS = ("unperturbed", "original")                      # labels t without perturbation; the original data
SUBSPACE_OF = {"unconstrained": None, "on": "tangent", "off": "tangent", "random": "random"}


def _check(value, allowed, name):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def targets(y, relabelling, num_classes, seed=0):
    """The target class t != y of every label y: "det" t = y + 1 mod C; "rand" uniform over the C - 1 other classes
    (y plus a seeded shift in 1..C-1, mod C)."""
    _check(relabelling, RELABELLINGS, "relabelling")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if relabelling == "det":
        return (y + 1) % num_classes
    shift = torch.randint(1, num_classes, y.shape, generator=torch.Generator().manual_seed(seed))
    return (y + shift.to(y.device)) % num_classes


@dataclass
class TargetedResult:
    adv: torch.Tensor         # (B, C, H, W) x + delta
    success: torch.Tensor     # (B,) bool: classified as the target at adv
    norm: torch.Tensor        # (B,) ||delta||_2, [0, 1] pixel scale
    iterations: torch.Tensor  # (B,) steps taken (stop_at_target: to the first iterate classified t)


def _per_image(v, like):
    return v.view(-1, *([1] * (like.dim() - 1)))


def targeted_pgd_l2(model, images, target, *, eps, alpha, steps, project=None, clip=True, stop_at_target=False,
                    refine_steps=12):
    """Targeted L2 PGD: delta <- Clip(Ball_eps(delta - alpha P(g) / ||P(g)||)), g the input gradient of the
    cross-entropy of the target t, P an optional projection of the gradient before normalisation (as
    lib.boundary.attacks).

    stop_at_target False (Ilyas et al.): every step is run, so a successful image lies well inside t's region.
    True: each image stops at its first iterate classified t, and that crossing is refined by bisection on its
    last step, so the norm is the distance to t's region along the path (independent of alpha).
    An image classified t from the start counts as a success with norm 0."""
    if not (eps > 0 and alpha > 0 and int(steps) == steps and steps >= 1):
        raise ValueError(f"need eps > 0, alpha > 0 and an integer steps >= 1; got {eps}, {alpha}, {steps}")
    x, t = images.detach(), target.detach()
    tiny = torch.finfo(x.dtype).tiny
    adv, before = x.clone(), x.clone()
    with torch.no_grad():
        hit = model(x).argmax(1) == t
    iterations = torch.where(hit, 0, int(steps))
    every = torch.ones_like(hit)
    for step in range(int(steps)):
        run = ~hit if stop_at_target else every
        if not run.any():
            break
        whole = bool(run.all())  # no indexing while every image runs (Ilyas et al.'s mode: always)
        a, xr, tr = (adv, x, t) if whole else (adv[run], x[run], t[run])
        xa = a.detach().requires_grad_(True)
        g = torch.autograd.grad(F.cross_entropy(model(xa), tr, reduction="sum"), xa)[0]
        if project is not None and whole:
            g = project(g)
        elif (
            project is not None
        ):  # the projection sees the whole batch (zeros where frozen), as in lib.boundary.attacks
            full = torch.zeros_like(x)
            full[run] = g
            g = project(full)[run]
        delta = a - xr - alpha * g / _per_image(l2_norm(g).clamp_min(tiny), g)
        delta = delta * _per_image((eps / l2_norm(delta).clamp_min(tiny)).clamp(max=1), delta)
        stepped = (xr + delta).clamp(0, 1) if clip else xr + delta
        if whole:
            before, adv = adv, stepped.detach()
        else:
            before[run], adv[run] = a, stepped.detach()
        if stop_at_target:
            with torch.no_grad():
                now = model(adv[run]).argmax(1) == tr
            ids = run.nonzero()[:, 0][now]
            iterations[ids], hit[ids] = step + 1, True
    with torch.no_grad():
        if stop_at_target and refine_steps:  # bisection on [before, adv] (both in the ball and the box: convex)
            idx = (hit & (iterations > 0)).nonzero()[:, 0]
            lo, hi, ti = before[idx], adv[idx], t[idx]
            for _ in range(int(refine_steps)):
                mid = (lo + hi) / 2
                at = _per_image(model(mid).argmax(1) == ti, mid)
                hi, lo = torch.where(at, mid, hi), torch.where(at, lo, mid)
            adv[idx] = hi
        success = model(adv).argmax(1) == t
    return TargetedResult(adv, success, l2_norm(adv - x), iterations)


@dataclass
class Relabelled:
    """A relabelled training set: the kept images, their labels (the targets), where they came from."""
    x: torch.Tensor          # (m, C, H, W) x + delta of the successes (x itself for "unperturbed" / "original")
    label: torch.Tensor      # (m,) t (the true y for "original")
    source: torch.Tensor     # (m,) indices into the attacked images
    attacked: int            # images attacked
    norm: torch.Tensor       # (m,) ||delta|| of the kept images

    @property
    def success_rate(self):
        return len(self.source) / max(1, self.attacked)


def relabel(model, x, y, variant, target=None, *, settings=None, subspace_for=None, batch_size=1000):
    """The relabelled set of a variant (VARIANTS or CONTROL_SETS) from images x with true labels y:
    a VARIANT attacks toward ``target`` with ``settings`` (dict eps, alpha, steps) and keeps the successes labelled
    t; "unperturbed" labels every x with its t; "original" keeps x and y. ``subspace_for(x_batch, index_batch)``
    gives the subspace (lib.geometry.subspaces) of "on" / "off" / "random" (its .on / .off projects the gradient)."""
    _check(variant, VARIANTS + CONTROL_SETS, "variant")
    every = torch.arange(len(x))
    if variant in CONTROL_SETS:
        label = y if variant == "original" else target
        return Relabelled(x, label.clone(), every, len(x), torch.zeros(len(x)))
    if SUBSPACE_OF[variant] and subspace_for is None:
        raise ValueError(f"variant {variant!r} needs subspace_for (the {SUBSPACE_OF[variant]} subspace at each image)")
    xs, kept, norms = [], [], []
    model = model.eval()
    device = next(model.parameters()).device
    for i in progress(range(0, len(x), batch_size), desc=f"targeted PGD ({variant})", unit="batch", leave=False):
        xb, tb, ib = x[i:i + batch_size].to(device), target[i:i + batch_size].to(device), every[i:i + batch_size]
        project = None
        if SUBSPACE_OF[variant]:
            sub = subspace_for(xb, ib)
            project = sub.off if variant == "off" else sub.on
        r = targeted_pgd_l2(model, xb, tb, project=project, **settings)
        xs.append(r.adv[r.success].cpu())
        kept.append(ib[r.success.cpu()])
        norms.append(r.norm[r.success].cpu())
    source = torch.cat(kept)
    return Relabelled(torch.cat(xs), target.cpu()[source].clone(), source, len(x), torch.cat(norms))


def concat(parts):
    """One Relabelled from those of consecutive batches (their sources already offset to the whole set)."""
    return Relabelled(torch.cat([p.x for p in parts]), torch.cat([p.label for p in parts]),
                      torch.cat([p.source for p in parts]), sum(p.attacked for p in parts),
                      torch.cat([p.norm for p in parts]))
