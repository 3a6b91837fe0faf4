"""pgd_l2 against closed forms: on a linear 2-class model the first misclassified point along
(projected) gradient ascent is at distance |w.x + b| / ||P w|| from x, whatever the step size."""
import math

import pytest
import torch

from lib.boundary.attacks import AttackResult, pgd_l2

SHAPE = (1, 8, 8)  # 64 "pixels"
D = math.prod(SHAPE)


class Linear2(torch.nn.Module):
    """logits = [0, w.x + b]: class 1 where w.x + b > 0; distance to the boundary |w.x + b| / ||w||."""

    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = w, b

    def score(self, x):
        return x.flatten(1) @ self.w + self.b

    def forward(self, x):
        s = self.score(x)
        return torch.stack([torch.zeros_like(s), s], 1)


def linear_setup(n=6, seed=0):
    """Images in the unit box at distances 0.21 ... 0.93 from the boundary, on both sides.
    w has entries +-1, so moving an image by d along w shifts each pixel by d / sqrt(D) only."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randint(0, 2, (D,), generator=g).double() * 2 - 1
    model = Linear2(w, -0.5 * w.sum().item())  # the grey image 0.5 lies on the boundary
    x = 0.45 + 0.1 * torch.rand(n, *SHAPE, generator=g, dtype=torch.float64)
    dist = torch.linspace(0.21, 0.93, n, dtype=torch.float64)  # no multiple of the alphas below
    side = torch.tensor([1.0, -1.0] * (n // 2), dtype=torch.float64)
    x = x - (model.score(x) - side * dist * w.norm())[:, None, None, None] * w.view(SHAPE) / w.norm() ** 2
    labels = (model.score(x) > 0).long()
    assert torch.allclose(model.score(x).abs() / w.norm(), dist)
    assert x.min() > 0.2 and x.max() < 0.8
    return model, x, labels


def l2(t):
    return t.flatten(1).norm(dim=1)


def subspace(k=8, seed=1):
    """Orthonormal basis Q (D, k) and the projections onto its span and onto the complement."""
    Q, _ = torch.linalg.qr(torch.randn(D, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    on = lambda g: (g.flatten(1) @ Q @ Q.T).view_as(g)
    off = lambda g: g - on(g)
    return Q, on, off


@pytest.mark.parametrize("alpha", [0.013, 0.05, 0.17])
@pytest.mark.parametrize("loss", ["margin", "ce"])
def test_unconstrained_norm_is_distance_to_hyperplane(alpha, loss):
    model, x, y = linear_setup()
    r = pgd_l2(model, x, y, eps=10.0, alpha=alpha, steps=200, loss=loss, clip=False)
    dist = model.score(x).abs() / model.w.norm()
    assert r.success.all()
    torch.testing.assert_close(r.norm, dist, rtol=1e-3, atol=0)
    # the crossing happens at the first step past the boundary, and each image stops there
    torch.testing.assert_close(r.iterations, torch.ceil(dist / alpha).long())
    assert (r.pred != y).all() and (model(r.adv).argmax(1) != y).all()
    assert r.subspace_share.isnan().all()  # no projection given


@pytest.mark.parametrize("alpha", [0.02, 0.11])
def test_projected_norm_is_distance_over_cosine(alpha):
    model, x, y = linear_setup()
    Q, on, off = subspace()
    calls, frozen = [], []

    def on_logged(g):  # always sees the whole batch, zero rows for the images already done
        calls.append(len(g))
        frozen.append(int((l2(g) == 0).sum()))
        return on(g)

    s, w = model.score(x).abs(), model.w
    r = pgd_l2(model, x, y, eps=20.0, alpha=alpha, steps=2000, project=on_logged, clip=False)
    assert r.success.all()
    torch.testing.assert_close(r.norm, s / (Q.T @ w).norm(), rtol=1e-3, atol=0)
    # full steps of length alpha in the subspace: projected before normalising, not after
    torch.testing.assert_close(r.iterations, torch.ceil(s / (Q.T @ w).norm() / alpha).long())
    torch.testing.assert_close(r.subspace_share, torch.ones_like(r.norm))
    assert set(calls) == {len(x)}
    steps = frozen[:-1]  # the last call computes subspace_share
    assert steps[0] == 0 and steps == sorted(steps) and steps[-1] == len(x) - 1

    r = pgd_l2(model, x, y, eps=20.0, alpha=alpha, steps=2000, project=off, clip=False)
    assert r.success.all()
    torch.testing.assert_close(r.norm, s / (w - Q @ (Q.T @ w)).norm(), rtol=1e-3, atol=0)
    # the share is measured in the subspace that was given: the complement here
    torch.testing.assert_close(r.subspace_share, torch.ones_like(r.norm))
    assert (l2(on(r.delta)) < 1e-9 * r.norm).all()


def test_failures_are_recorded_not_dropped():
    model, x, y = linear_setup()
    r = pgd_l2(model, x, y, eps=0.05, alpha=0.02, steps=30, clip=False)
    assert len(r) == len(x) and not r.success.any()
    assert (r.norm <= 0.05 + 1e-12).all() and (r.norm > 0.05 - 1e-9).all()  # walked up to the ball
    assert (r.iterations == 30).all() and (r.pred == y).all()


def test_greedy_images_stop_individually():
    model, x, y = linear_setup()
    short = pgd_l2(model, x, y, eps=10.0, alpha=0.05, steps=200, clip=False, refine_steps=0)
    assert len(set(short.iterations.tolist())) == len(x)
    # a larger step budget does not move finished images: delta frozen at the crossing
    longer = pgd_l2(model, x, y, eps=10.0, alpha=0.05, steps=1000, clip=False, refine_steps=0)
    torch.testing.assert_close(longer.delta, short.delta, rtol=0, atol=0)
    # without refinement the recorded point is the first step past the boundary: alpha * iterations
    torch.testing.assert_close(short.norm, 0.05 * short.iterations.double())


def test_already_misclassified_is_success_with_zero_norm():
    model, x, y = linear_setup()
    r = pgd_l2(model, x, 1 - y, eps=1.0, alpha=0.1, steps=5)
    assert r.success.all() and (r.norm == 0).all() and (r.iterations == 0).all()
    assert torch.equal(r.adv, x)


def test_clipping_keeps_images_in_the_unit_box():
    model, x, y = linear_setup()
    x = x.clone()
    x[:, :, :2] = 1.0  # saturated pixels: the gradient pushes some of them out of the box
    x[:, :, 2:4] = 0.0
    y = (model.score(x) > 0).long()
    _, on, _ = subspace()
    r = pgd_l2(model, x, y, eps=10.0, alpha=0.05, steps=400, project=on, clip=True)
    assert r.adv.min() >= 0 and r.adv.max() <= 1
    assert ((r.subspace_share >= 0) & (r.subspace_share <= 1 + 1e-9)).all()
    assert (r.subspace_share < 1 - 1e-3).any()  # clipping leaked energy out of the subspace
    torch.testing.assert_close(r.norm, (r.adv - x).flatten(1).norm(dim=1))
    assert torch.equal(r.pred != y, r.success)


def test_zero_projected_gradient_gives_no_nan():
    model, x, y = linear_setup()
    r = pgd_l2(model, x, y, eps=1.0, alpha=0.1, steps=5, project=torch.zeros_like)
    for t in (r.adv, r.delta, r.norm):
        assert torch.isfinite(t).all()
    assert not r.success.any() and (r.norm == 0).all()


@pytest.mark.parametrize("kwargs, name", [
    (dict(eps=0.0), "eps"), (dict(eps=-1.0), "eps"), (dict(alpha=0.0), "alpha"),
    (dict(steps=0), "steps"), (dict(steps=2.5), "steps"), (dict(loss="hinge"), "loss"),
    (dict(refine_steps=-1), "refine_steps")])
def test_bad_parameters_raise(kwargs, name):
    model, x, y = linear_setup()
    options = dict(eps=1.0, alpha=0.1, steps=5) | kwargs
    with pytest.raises(ValueError, match=name):
        pgd_l2(model, x, y, **options)


def test_loss_error_names_the_choices():
    model, x, y = linear_setup()
    with pytest.raises(ValueError, match="margin.*ce"):
        pgd_l2(model, x, y, eps=1.0, alpha=0.1, steps=5, loss="hinge")


@pytest.mark.parametrize("loss", ["margin", "ce"])
def test_multiclass_mlp_records_are_consistent(loss):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(D, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 10)).double().eval()
    x = torch.rand(64, *SHAPE, dtype=torch.float64)
    with torch.no_grad():
        y = model(x).argmax(1)
    r = pgd_l2(model, x, y, eps=0.5, alpha=0.05, steps=20, loss=loss)
    assert isinstance(r, AttackResult)
    assert 0 < r.success.sum() < len(x)  # some of each, so the check below means something
    with torch.no_grad():
        pred = model(r.adv).argmax(1)
    assert torch.equal(pred, r.pred) and torch.equal(r.pred != y, r.success)
    assert (r.norm <= 0.5 + 1e-9).all() and r.adv.min() >= 0 and r.adv.max() <= 1
    assert (r.iterations[~r.success] == 20).all() and (r.iterations[r.success] <= 20).all()
    cols = r.as_dict()
    assert set(cols) >= {"success", "norm", "iterations", "label", "pred", "subspace_share"}
    assert all(len(v) == len(x) for v in cols.values())
