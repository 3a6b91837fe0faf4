"""lib.boundary.autoattack: AutoAttack's suite through torchattacks on a linear classifier whose L2 distance to the
decision boundary is known exactly: no image farther than eps is ever counted broken (soundness, checked by our own
re-validation), every image well inside eps is broken (the attack works), and the suite's records are cached."""
import numpy as np
import pytest
import torch
from torch import nn

from lib.boundary import autoattack as aa

pytest.importorskip("torchattacks")


def _linear(n=60, seed=0):
    """Five classes (targeted DLR needs four), logits W x + b on 1x10x10 images (Square needs 5 pixels a side) in [0.35,
    0.65]: the L2 distance of x to the nearest other class's region is min_j (f_y - f_j) / ||w_y - w_j|| (all below 0.35
    here, so the shortest path stays inside the box)."""
    g = torch.Generator().manual_seed(seed)
    x = 0.35 + 0.3 * torch.rand(n, 1, 10, 10, generator=g)
    model = nn.Sequential(nn.Flatten(), nn.Linear(100, 5))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(5, 100, generator=g) * 0.3)
        model[1].bias.copy_(-model[1].weight @ torch.full((100,), 0.5))
    model.eval()
    with torch.no_grad():
        logits = model(x)
        y = logits.argmax(1)
        w = model[1].weight
        diff = logits.gather(1, y[:, None]) - logits                          # f_y - f_j >= 0
        norms = (w[y][:, None, :] - w[None, :, :]).norm(dim=2)                # ||w_y - w_j||
        dist, nearest = torch.where(torch.arange(5)[None] == y[:, None], torch.inf, diff / norms).min(1)
    return model, x, y, dist, nearest


@pytest.mark.parametrize("attack", aa.ATTACKS)
def test_each_attack_is_sound_and_breaks_what_is_close(attack):
    model, x, y, dist, _ = _linear()
    eps = float(dist.median())
    cfg = aa.SuiteConfig(steps=30, n_targets=2, square_queries=400, seed=0)
    by = aa.run_suite(model, x, y, norm="L2", eps=eps, cfg=cfg, attacks=(attack,), n_classes=5)
    broken = by == 0
    # Soundness: an image farther than eps from the boundary cannot have a valid adversarial example.
    assert not broken[dist > eps * (1 + 1e-4)].any()
    # The attack works: images at less than half the budget fall (a linear model has no gradient masking); the
    # black-box Square, with a few hundred queries in 100 dimensions, those at less than a quarter.
    assert broken[dist < (0.25 if attack == "Square" else 0.5) * eps].all()


def test_the_suite_runs_each_attack_on_what_the_previous_left_and_restores_the_random_state():
    model, x, y, dist, _ = _linear()
    eps = float(dist.median())
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    by = aa.run_suite(model, x, y, norm="L2", eps=eps, cfg=aa.SuiteConfig(10, 2, 50), n_classes=5)
    assert torch.equal(torch.rand(1), expected)  # torchattacks reseeds torch; the suite puts the state back
    assert set(by.tolist()) <= set(range(len(aa.ATTACKS) + 1))
    assert not ((by < len(aa.ATTACKS)) & (dist > eps * (1 + 1e-4))).any()


def test_valid_and_wrong_rejects_points_outside_the_ball_or_the_box():
    model, x, y, dist, nearest = _linear(n=4)
    w = model[1].weight
    direction = (w[nearest] - w[y]) / (w[nearest] - w[y]).norm(dim=1, keepdim=True)
    far = x + (1.5 * dist[:, None] * direction).view_as(
        x
    )  # past the nearest boundary: misclassified, at 1.5 x the distance
    assert aa.valid_and_wrong(model, x, far, y, "L2", 10.0).all()
    assert not aa.valid_and_wrong(model, x, far, y, "L2", float(dist.min())).any()
    outside = x.clone()
    outside[:, 0, 0, 0] = 1.5
    assert not aa.valid_and_wrong(model, x, outside, y, "Linf", 10.0).any()


def test_suite_records_are_cached_and_the_cumulative_table_falls(tmp_cache, monkeypatch):
    model, x, y, dist, _ = _linear(n=30)
    cfg = aa.SuiteConfig(10, 2, 50)
    calls = []
    real = aa.run_suite
    monkeypatch.setattr(aa, "run_suite", lambda *a, **k: calls.append(1) or real(*a, n_classes=5, **k))
    args = dict(norm="L2", eps_list=[float(dist.quantile(0.3)), float(dist.quantile(0.7))], cfg=cfg)
    first = aa.suite_records({"m": model}, {"m": "toy"}, x, y, **args)
    again = aa.suite_records({"m": model}, {"m": "toy"}, x, y, **args)
    assert len(calls) == 2 and first.equals(again)
    table = aa.cumulative_table(first)
    after = table[[f"after {a}" for a in aa.ATTACKS]].to_numpy()
    assert (np.diff(after, axis=1) <= 0).all()
    budget = aa.as_budget_records(first)
    assert np.allclose(1 - budget.groupby("eps")["broken"].mean().to_numpy(), table["after Square"].to_numpy())


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        aa.SuiteConfig(steps=0).check()
    with pytest.raises(ValueError):
        aa.make_attack("PGD", nn.Linear(2, 2), "L2", 1.0, aa.SuiteConfig())
    with pytest.raises(ValueError):
        aa.make_attack("APGD-CE", nn.Linear(2, 2), "L1", 1.0, aa.SuiteConfig())
