"""Notebook 10's machinery against closed forms: targeted PGD on linear models, the on/off variants on a toy manifold
(a line in the plane), the relabelled sets (never a true label), and the claim rows on constructed answers."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from lib.studies.training import mislabeled
from lib.reporting import params
from lib.studies.training import training_claims
from lib.geometry.subspaces import BasisSubspace


class Affine(torch.nn.Module):
    """logits = W x + b on flattened images (float64)."""

    def __init__(self, W, b):
        super().__init__()
        self.W = torch.nn.Parameter(W, requires_grad=False)
        self.b = torch.nn.Parameter(b, requires_grad=False)

    def forward(self, x):
        return x.flatten(1) @ self.W.T + self.b


def two_class(n_pixels=64, seed=0):
    """Class 1 where w.x + c > 0 (logits [0, w.x + c]); images in the box's middle, both sides of the boundary."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n_pixels, generator=g, dtype=torch.float64)
    model = Affine(
        torch.stack([torch.zeros_like(w), w]), torch.tensor([0.0, -0.5 * w.sum().item()], dtype=torch.float64)
    )
    x = 0.4 + 0.2 * torch.rand(8, 1, 1, n_pixels, generator=g, dtype=torch.float64)
    return model, x, w


def test_targeted_pgd_reaches_its_target_at_the_analytic_distance():
    """Two classes: the target's region begins at |w.x + c| / ||w|| along a straight path; stop_at_target with
    bisection finds it to within alpha / 2^refine_steps, whatever alpha."""
    model, x, w = two_class()
    y = model(x).argmax(1)
    t = 1 - y
    margin = model(x)[:, 1]  # w.x + c
    distance = margin.abs() / w.norm()
    for alpha in (0.013, 0.037):
        r = mislabeled.targeted_pgd_l2(model, x, t, eps=50.0, alpha=alpha, steps=2000, clip=False, stop_at_target=True,
                               refine_steps=20)
        assert r.success.all()
        assert torch.allclose(r.norm, distance, atol=alpha * 2 ** -19 + 1e-9)
        assert (r.iterations == torch.ceil(distance / alpha)).all()


def test_targeted_pgd_runs_the_whole_budget_without_stopping():
    """Ilyas et al.'s mode: every step is run, so each perturbation ends on the eps sphere along the straight path;
    it reaches the target exactly where eps exceeds the distance."""
    model, x, w = two_class()
    t = 1 - model(x).argmax(1)
    distance = model(x)[:, 1].abs() / w.norm()
    eps = float(distance.sort().values[3:5].mean())  # between two images' distances: half reach, half do not
    r = mislabeled.targeted_pgd_l2(model, x, t, eps=eps, alpha=eps / 7, steps=20, clip=False)
    assert torch.allclose(r.norm, torch.full_like(r.norm, eps))
    assert torch.equal(r.success, distance < eps)


def line_world():
    """Data on the horizontal line x2 = 0.5 in the plane (the manifold; tangent e1, normal e2) and a linear classifier
    with boundary a x1 + b x2 = c, slanted to both."""
    a, b = 1.0, 3.0
    W = torch.tensor([[0.0, 0.0], [a, b]], dtype=torch.float64)
    model = Affine(W, torch.tensor([0.0, -(a * 0.5 + b * 0.5)], dtype=torch.float64))  # boundary through (0.5, 0.5)
    s = torch.tensor([0.1, 0.2, 0.3, 0.7, 0.8, 0.9], dtype=torch.float64)
    x = torch.stack([s, torch.full_like(s, 0.5)], 1).view(-1, 1, 1, 2)
    tangent = BasisSubspace(torch.tensor([[1.0], [0.0]], dtype=torch.float64), name="tangent")
    return model, x, a, b, tangent


def test_on_and_off_move_along_and_across_the_line_as_the_geometry_dictates():
    """On the line the target is |f| / |a| away (only x1 moves), across it |f| / |b| (only x2 moves), unconstrained
    |f| / sqrt(a^2 + b^2); a perturbation confined to a space leaves the other coordinate where it was."""
    model, x, a, b, tangent = line_world()
    t = 1 - model(x).argmax(1)
    f = model(x)[:, 1].abs()
    run = lambda project: mislabeled.targeted_pgd_l2(model, x, t, eps=5.0, alpha=0.01, steps=1000, project=project,
                                             clip=False, stop_at_target=True, refine_steps=20)
    on, off, free = run(tangent.on), run(tangent.off), run(None)
    tol = 0.01 * 2 ** -19 + 1e-9
    assert torch.allclose(on.norm, f / a, atol=tol) and torch.allclose(off.norm, f / b, atol=tol)
    assert torch.allclose(free.norm, f / math.hypot(a, b), atol=tol)
    assert torch.equal((on.adv - x)[..., 1], torch.zeros_like(x[..., 1]))   # on: along the line only
    assert torch.equal((off.adv - x)[..., 0], torch.zeros_like(x[..., 0]))  # off: across it only
    assert (off.norm < on.norm).all()  # this boundary is steeper across the line than along it


def test_off_cannot_cross_a_boundary_that_is_perpendicular_to_the_line():
    """b = 0: the classifier reads x1 only, the gradient lies in the tangent space, P_off g = 0: "off" never moves
    and fails; "on" reaches the target at |f| / a."""
    model, x, a, _, tangent = line_world()
    model.W[1, 1] = 0.0
    model.b[1] = -a * 0.5
    t = 1 - model(x).argmax(1)
    off = mislabeled.targeted_pgd_l2(model, x, t, eps=5.0, alpha=0.01, steps=200, project=tangent.off, clip=False)
    on = mislabeled.targeted_pgd_l2(model, x, t, eps=5.0, alpha=0.01, steps=200, project=tangent.on, clip=False,
                            stop_at_target=True, refine_steps=20)
    assert not off.success.any() and torch.equal(off.norm, torch.zeros_like(off.norm))
    assert on.success.all() and torch.allclose(on.norm, model(x)[:, 1].abs() / a, atol=1e-6)


def test_targets_are_never_the_true_label():
    y = torch.arange(10).repeat(300)
    det = mislabeled.targets(y, "det", 10)
    assert torch.equal(det, (y + 1) % 10)
    rand = mislabeled.targets(y, "rand", 10, seed=3)
    assert (rand != y).all() and torch.equal(rand, mislabeled.targets(y, "rand", 10, seed=3))
    counts = torch.bincount((rand - y) % 10, minlength=10)  # the shift is uniform over 1..9
    assert counts[0] == 0 and counts[1:].min() > 0.8 * len(y) / 9
    with pytest.raises(ValueError, match="relabelling"):
        mislabeled.targets(y, "random", 10)


@pytest.mark.parametrize("variant", mislabeled.VARIANTS + mislabeled.CONTROL_SETS)
def test_a_relabelled_set_never_keeps_a_true_label(variant):
    """Every kept image carries its target t (never its y), comes from the image it names, and only successes are
    kept; the original control keeps y, the unperturbed one every image with t."""
    g = torch.Generator().manual_seed(1)
    W = torch.randn(10, 16, generator=g, dtype=torch.float64)
    model = Affine(W, torch.zeros(10, dtype=torch.float64))
    x = torch.rand(200, 1, 4, 4, generator=g, dtype=torch.float64)
    y = model(x).argmax(1)
    t = mislabeled.targets(y, "rand", 10, seed=0)
    space = BasisSubspace(torch.linalg.qr(torch.randn(16, 4, generator=g, dtype=torch.float64)).Q)
    s = mislabeled.relabel(model, x, y, variant, t, settings={"eps": 0.5, "alpha": 0.05, "steps": 20},
                   subspace_for=lambda xb, ib: space, batch_size=64)
    if variant == "original":
        assert torch.equal(s.label, y) and torch.equal(s.x, x)
        return
    assert torch.equal(s.label, t[s.source]) and (s.label != y[s.source]).all()
    if variant == "unperturbed":
        assert len(s.source) == len(x) and torch.equal(s.x, x)
        return
    assert 0 < len(s.source) < len(x)  # some attacks fail at this budget: they are dropped, not relabelled
    assert torch.equal(model(s.x).argmax(1), s.label)  # the source classifier calls every kept image its target
    assert (s.norm <= 0.5 + 1e-9).all()


def test_subspace_variants_need_a_subspace():
    x, y = torch.rand(4, 1, 2, 2), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="subspace_for"):
        mislabeled.relabel(
            Affine(torch.randn(10, 4), torch.zeros(10)), x, y, "on", y + 1, settings={"eps": 1, "alpha": 1, "steps": 1}
        )


def test_params_names_are_the_libs():
    assert (
        params.RELABELLINGS is mislabeled.RELABELLINGS and params.VARIANTS is mislabeled.VARIANTS
    )  # one definition each


# ---------------------------------------------------------------- the claim rows on constructed answers

def test_accuracy_claims_follow_constructed_correctness():
    """off = unconstrained exactly (B: equivalent), on 30 points worse (C supported), random as bad as on (D: a
    precise null, explained by dimension alone); 80% right, so A is supported."""
    rng = np.random.default_rng(0)
    n = 1000
    unc = rng.random(n) < 0.8
    on = unc & (rng.random(n) < 0.62)
    correct = {("rand", "unconstrained"): unc, ("rand", "off"): unc.copy(), ("rand", "on"): on,
               ("rand", "random"): on.copy()}
    table = training_claims.judge(training_claims.mislabeled_rows(correct, "toy", 0.05))
    v = dict(zip(table["claim_id"], table["verdict"]))
    assert v == {"A": "supported", "B": "supported", "C": "supported", "D": "explained by dimension alone"}
    rows = training_claims.mislabeled_rows(correct, "toy", 0.05, min_success=0.5, success={("rand", "on"): 0.2})
    assert not {r.claim_id: r.testable for r in rows}["C"]  # "on" kept too few images: the budget decided


def records_before_after(off_growth, on_growth, frac_before, frac_after, n=40, seed=0):
    """Attack records of n images before and after: unconstrained / on / off tangent (norms log-normal around 1, 3,
    1.1), the after norms grown by the given factors; grad_share = fraction^2."""
    rng = np.random.default_rng(seed)
    base = {("unconstrained", "none"): 1.0, ("on", "tangent"): 3.0, ("off", "tangent"): 1.1}
    grow = {("unconstrained", "none"): off_growth, ("on", "tangent"): on_growth, ("off", "tangent"): off_growth}
    rows = []
    for i in range(n):
        jitter = np.exp(rng.normal(0, 0.1))
        for model, frac in (("before", frac_before), ("after", frac_after)):
            for (c, s), norm in base.items():
                g = grow[c, s] * np.exp(rng.normal(0, 0.05)) if model == "after" else 1.0
                rows.append({"dataset": "toy", "split": model, "clip": True, "image_id": i, "condition": c,
                             "subspace": s, "k": 16 if s != "none" else 784, "n": 784, "success": True,
                             "norm": norm * jitter * g, "grad_share": frac ** 2 if s != "none" else np.nan})
    return pd.DataFrame(rows)


def test_depth_and_alignment_rows_see_the_constructed_changes():
    dimples = records_before_after(off_growth=2.0, on_growth=1.0, frac_before=0.3, frac_after=0.3)
    aligned = records_before_after(off_growth=1.5, on_growth=1.5, frac_before=0.3, frac_after=0.6)
    e, f = training_claims.depth_row(dimples, "toy", 1.1), training_claims.alignment_row(dimples, "toy", 1.1)
    assert abs(math.exp(e.effect) - 2.0) < 0.1 and abs(f.effect) < 1e-12
    e2, f2 = training_claims.depth_row(aligned, "toy", 1.1), training_claims.alignment_row(aligned, "toy", 1.1)
    assert abs(e2.effect) < 0.05 and abs(f2.effect - math.log(2)) < 1e-9
    v = dict(zip(training_claims.judge([e, f2])["claim_id"], training_claims.judge([e, f2])["verdict"]))
    assert v == {"E": "supported", "F": "supported"}
    on, off = training_claims.growth_pairs(dimples)
    assert len(on) == 40 and np.allclose(np.median(off / on), 2.0, rtol=0.05)


def test_a_failed_attack_after_training_bounds_the_growth_from_below():
    r = records_before_after(off_growth=2.0, on_growth=1.0, frac_before=0.3, frac_after=0.3, n=10)
    r.loc[(r["split"] == "after") & (r["subspace"] == "tangent") & (r["condition"] == "off") & (r["image_id"] == 0),
          "success"] = False
    low, high = training_claims.growth(r, ("off", "tangent"))
    assert np.isinf(high[("toy", True, 0)]) and np.isfinite(low[("toy", True, 0)])
