"""Greedy, untargeted L2 PGD with a gradient-projection hook (Madry et al.; Shamir et al. 2021).

One step, per image:  g = P(grad_x loss),  delta <- Clip(Ball_eps(delta + alpha * g / ||g||)),
where P is an optional linear projection applied BEFORE normalisation (on- or off-manifold PGD),
Ball_eps rescales delta onto the L2 ball of radius eps and Clip keeps x + delta in [0, 1].
Each image stops at its first misclassification; the crossing is then refined by bisection on
its last step, so the recorded norm ||delta||_2 (in [0, 1] pixel scale) does not depend on alpha.

    result = pgd_l2(model, images, labels, eps=2.0, alpha=0.01, steps=100, project=None)
    df = pandas.DataFrame(result.as_dict())
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from lib.infra.runtime import progress as progress_bar

LOSSES = ("margin", "ce")


@dataclass
class AttackResult:
    """Per-image outcome of an attack; every field is a tensor with the batch as first dimension."""
    adv: torch.Tensor             # (B, C, H, W) adversarial images (x + delta, clipped when clip=True)
    delta: torch.Tensor           # (B, C, H, W) final perturbation
    success: torch.Tensor         # (B,) bool: misclassified within the budget
    norm: torch.Tensor            # (B,) ||delta||_2, [0, 1] pixel scale; failures keep their final norm
    iterations: torch.Tensor      # (B,) int: gradient steps taken (0: misclassified from the start)
    label: torch.Tensor           # (B,) true label
    pred: torch.Tensor            # (B,) predicted label at adv
    subspace_share: torch.Tensor  # (B,) ||P delta||^2 / ||delta||^2; NaN without project or if delta = 0

    def __len__(self):
        return len(self.success)

    def as_dict(self):
        """Per-image scalars as numpy columns: `pandas.DataFrame(result.as_dict())`."""
        return {name: getattr(self, name).detach().cpu().numpy()
                for name in ("success", "norm", "iterations", "label", "pred", "subspace_share")}


def margin_loss(logits, labels):
    """Sum over images of (largest other logit - true logit); positive means misclassified."""
    true = logits.gather(1, labels[:, None])[:, 0]
    other = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf")).amax(1)
    return (other - true).sum()


def ce_loss(logits, labels):
    return F.cross_entropy(logits, labels, reduction="sum")


def l2_norm(t):
    """Per-image L2 norm of a (B, ...) tensor (torch.linalg directly: Tensor.norm's Python wrapper costs a
    measurable share of a PGD step on small models)."""
    return torch.linalg.vector_norm(t.flatten(1), dim=1)


def _per_image(v, like):
    return v.view(-1, *([1] * (like.dim() - 1)))


def pgd_l2(model, images, labels, *, eps, alpha, steps, project=None, loss="margin",
           clip=True, refine_steps=12, progress=False):
    """Greedy L2 PGD; returns an AttackResult (see the module docstring for the step).

    model: maps [0, 1] images to logits (normalisation inside); it is used as given (call .eval()),
    and only on the images still running, so it must treat images independently.
    project: None or a function (B, C, H, W) -> (B, C, H, W) applied to the gradient of the whole
    batch, so that batch positions stay fixed; the rows of finished images are zero.
    loss: "margin" (max other logit - true logit) or "ce" (cross-entropy).
    Images misclassified from the start count as successes with norm 0 and 0 iterations.
    """
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps!r}")
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha!r}")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if int(refine_steps) != refine_steps or refine_steps < 0:
        raise ValueError(f"refine_steps must be an integer >= 0, got {refine_steps!r}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    loss_fn = margin_loss if loss == "margin" else ce_loss

    x, labels = images.detach(), labels.detach()
    tiny = torch.finfo(x.dtype).tiny  # guards divisions by a zero norm (e.g. P(g) = 0)
    B = len(x)
    adv = x.clone()     # x + delta_t: the images the model sees
    before = x.clone()  # x + delta_{t-1}: the point before each image's last step
    done = torch.zeros(B, dtype=torch.bool, device=x.device)
    iterations = torch.full((B,), int(steps), dtype=torch.long, device=x.device)
    pred = labels.clone()

    bar = progress_bar(range(int(steps) + 1), desc="pgd_l2", disable=not progress, leave=False)
    # While every image runs (all_run), the batch is used as it is: no indexing, and stepping rebinds
    # `before` to the old `adv` instead of copying. From the first crossing on, `ids` are the running
    # images (ascending), and only their rows are read and written.
    ids, all_run = torch.arange(B, device=x.device), True
    for t in bar:  # iteration t classifies x + delta_t of the running images, then steps them
        last = t == steps
        a = adv if all_run else adv[ids]  # finished images are frozen: no forward, no step
        xa = a.detach().requires_grad_(not last)
        with torch.set_grad_enabled(not last):
            logits = model(xa)
        p = logits.argmax(1).detach()
        y = labels if all_run else labels[ids]
        if all_run:
            pred.copy_(p)
        else:
            pred[ids] = p
        wrong = p != y
        crossed = bool(wrong.any())
        if crossed:
            iterations[ids[wrong]] = t
            done[ids[wrong]] = True
        if progress:
            bar.set_postfix(done=f"{int(done.sum())}/{B}", refresh=False)
        if last or crossed and bool(done.all()):
            break
        g = torch.autograd.grad(loss_fn(logits, y), xa)[0]
        if crossed:  # images that crossed just now take no step
            keep = ~wrong
            ids, g, a, all_run = ids[keep], g[keep], a[keep], False
        if project is not None and all_run:
            g = project(g)
        elif project is not None:  # the projection sees the whole batch, zeros where frozen
            full = torch.zeros_like(x)
            full[ids] = g
            g = project(full)[ids]
        xi = x if all_run else x[ids]
        # delta_t + alpha g / ||g||, scaled back into the eps ball, then clipped into the box; fused and in place
        # where it can be (each full-size temporary costs a measurable share of a step on small models)
        delta = (a - xi).addcmul_(g, _per_image(alpha / l2_norm(g).clamp_min(tiny), g))
        delta.mul_(_per_image((eps / l2_norm(delta).clamp_min(tiny)).clamp_(max=1), delta))
        stepped = delta.add_(xi).clamp_(0, 1) if clip else delta.add_(xi)
        if all_run:
            before, adv = adv, stepped
        else:
            before[ids] = a
            adv[ids] = stepped
    bar.close()

    # Bisection on [x + delta_{t-1}, x + delta_t] for the images that crossed at step t >= 1;
    # the segment lies in the box and in the eps ball (both convex), so no clipping is needed.
    idx = (done & (iterations > 0)).nonzero()[:, 0]
    if len(idx) and refine_steps:
        adv[idx], pred[idx] = bisect_crossing(model, before[idx], adv[idx], labels[idx], pred[idx], refine_steps)

    delta = adv - x
    norm = l2_norm(delta)
    share = torch.full_like(norm, float("nan"))
    if project is not None:
        with torch.no_grad():
            share = l2_norm(project(delta)) ** 2 / norm ** 2
        share = torch.where(norm > 0, share, torch.full_like(share, float("nan")))
    return AttackResult(adv=adv, delta=delta, success=done, norm=norm,
                        iterations=iterations, label=labels, pred=pred, subspace_share=share)


@torch.no_grad()
def bisect_crossing(model, lo, hi, labels, hi_pred, steps):
    """Bisection on the segments [lo, hi] (per image: lo classified as its label, hi not) for the label change.

    Returns (hi, pred(hi)) after `steps` halvings: hi is still misclassified, and the point before it on the
    segment, 2^-steps ||hi - lo|| away, is still classified as the label. hi_pred: the prediction at the given hi.
    The one refiner of the project: PGD's last step (pgd_l2) and DeepFool's overshoot (lib.boundary.curvature).
    """
    for _ in range(int(steps)):
        mid = (lo + hi) / 2
        mid_pred = model(mid).argmax(1)
        wrong = mid_pred != labels
        w = _per_image(wrong, mid)
        hi, lo = torch.where(w, mid, hi), torch.where(w, lo, mid)
        hi_pred = torch.where(wrong, mid_pred, hi_pred)
    return hi, hi_pred
