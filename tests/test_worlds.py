"""World 1 (lib.worlds): the dimpled world's attacks agree with its analytic distances, and the claims of
notebook 05 see the dimple where it is deep and nothing on the flat side."""
import numpy as np
import pytest
import torch

from lib import stats, verdicts, worlds
from lib.shards import AttackSettings

ALPHA_STEP, REFINE = 0.005, 12


def settings(dtype_steps=1000):
    return {c: AttackSettings(eps=10.0, alpha=ALPHA_STEP, steps=dtype_steps, clip=False, refine_steps=REFINE)
            for c in ("unconstrained", "on", "off")}


def test_classifier_is_the_closed_form():
    world = worlds.dimpled_world(5.0, 8, seed=3, dtype=torch.float64)
    m, model = world.model.m, world.model
    x = world.x.clone().requires_grad_(True)
    g = torch.autograd.grad(model.score(x).sum(), x)[0].flatten(1)
    assert torch.allclose(g, model.gradient().expand_as(g), atol=1e-12)
    assert torch.allclose(m.U.T @ m.V[:, 0], torch.zeros(m.k, dtype=torch.float64), atol=1e-12)
    # data on the manifold: the normal part is zero, so F = h(z), and every image is classified correctly
    assert m.normal_part(world.x).abs().max() < 1e-12
    assert (model(world.x).argmax(1) == world.y).all()
    assert 0 < world.x.min() and world.x.max() < 1


@pytest.mark.parametrize("steepness", [1.0, 10.0])
def test_analytic_distances_match_refined_pgd_norms(steepness):
    """Straight attacks along a constant projected gradient: the refined norm lies within the bisection's
    tolerance alpha / 2^refine_steps beyond the analytic distance (float64: rounding far below it)."""
    world = worlds.dimpled_world(steepness, 20, seed=1, dtype=torch.float64)
    r = worlds.world_records(world, settings(), "w", seed=1)
    assert r["success"].all()
    tol = ALPHA_STEP / 2 ** REFINE
    for (cond, sub), d in worlds.analytic_norms(world, seed=1).items():
        a = r[(r["condition"] == cond) & (r["subspace"] == sub)].sort_values("image_id")
        excess = a["norm"].to_numpy() - d.numpy()
        assert excess.min() >= -1e-9 and excess.max() <= tol + 1e-9, (cond, sub)
    assert worlds.max_analytic_error(world, r, seed=1) <= tol + 1e-9


def test_float32_world_within_rounding():
    world = worlds.dimpled_world(8.0, 20, seed=2)
    r = worlds.world_records(world, settings(), "w", seed=2)
    steps = r["iterations"].max()
    assert worlds.max_analytic_error(world, r, seed=2) <= ALPHA_STEP / 2 ** REFINE + steps * np.sqrt(784) * 1.2e-7


def test_analytic_effects_and_thresholds_agree():
    for cid in ("1", "1b", "3", "4"):
        s = worlds.analytic_threshold(cid, 1.1)
        assert abs(abs(worlds.analytic_effects(s)[cid]) - np.log(1.1)) < 1e-9
    # a random subspace's on/off ratio is the tangent space's at the flat-boundary median steepness
    assert worlds.analytic_effects(stats.flat_boundary_median(16, 784))["3"] == pytest.approx(0, abs=1e-12)


def judged(steepness, seed=0, n_images=40):
    world = worlds.dimpled_world(steepness, n_images, seed=seed)
    r = worlds.world_records(world, settings(), f"s={steepness}", seed=seed)
    t = verdicts.judge(worlds.world_rows(r), "test")
    return dict(zip(t["claim_id"], t["verdict"]))


def test_deep_dimple_supports_every_claim():
    assert judged(32.0) == {"1": "supported", "1b": "supported", "3": "supported", "4": "supported"}


@pytest.mark.parametrize("steepness", [1.0, 4.0, stats.flat_boundary_median(16, 784)])
def test_flat_side_supports_no_discriminating_claim(steepness):
    v = judged(steepness)
    assert not any(v[c] == "supported" for c in ("1b", "3", "4")), v
    assert v["3"] in ("not supported", worlds.claims.DIMENSION, "inconclusive")


def test_false_positive_rate_on_the_flat_side():
    """Worlds at the flat-boundary steepness (the tangent space in general position, effect 0): over 12
    seeds no discriminating claim is supported; at the margin itself (the least favourable null of claims 3
    and 4) the rate stays near alpha."""
    flat = worlds.false_positives(stats.flat_boundary_median(16, 784), settings(), range(12), n_images=30)
    rates = dict(zip(flat["claim_id"], flat["rate"]))
    assert rates["1b"] == rates["3"] == rates["4"] == 0.0
    edge = worlds.false_positives(worlds.analytic_threshold("3"), settings(), range(12), n_images=30)
    assert dict(zip(edge["claim_id"], edge["supported"]))["3"] <= 2  # P(X >= 3 | 12, 0.05) = 2%
