"""World 1 (lib.studies.worlds.worlds): the dimpled world's attacks agree with its analytic distances, and the claims of
notebook 05 see the dimple where it is deep and nothing on the flat side."""
import numpy as np
import pytest
import torch

from lib.inference import stats, verdicts
from lib.studies.worlds import worlds
from lib.experiments.shards import AttackSettings

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
    assert v["3"] in ("contradicted", "precise null", worlds.claims.DIMENSION, "inconclusive")


def test_false_positive_rate_on_the_flat_side():
    """Worlds at the flat-boundary steepness (the tangent space in general position, effect 0): over 12
    seeds no discriminating claim is supported; at the margin itself (the least favourable null of claims 3
    and 4) the rate stays near alpha."""
    flat = worlds.false_positives(stats.flat_boundary_median(16, 784), settings(), range(12), n_images=30)
    rates = dict(zip(flat["claim_id"], flat["rate"]))
    assert rates["1b"] == rates["3"] == rates["4"] == 0.0
    edge = worlds.false_positives(worlds.analytic_threshold("3"), settings(), range(12), n_images=30)
    assert dict(zip(edge["claim_id"], edge["supported"]))["3"] <= 2  # P(X >= 3 | 12, 0.05) = 2%


# ---------------------------------------------------------------- worlds 2 and 3 (lib.studies.worlds.worlds_trained)

from torch import nn  # noqa: E402

from lib.geometry import manifold  # noqa: E402
from lib.learn import models  # noqa: E402
from lib.studies.worlds import worlds_trained  # noqa: E402


def test_true_tangent_is_the_column_space_of_a_finite_difference_jacobian():
    torch.manual_seed(0)
    ae = models.ConvAutoencoder(1, 28, 4, 4).double().eval()
    dec, z, h = ae.decoder_at(), torch.randn(3, 4, dtype=torch.float64), 1e-5
    Q = worlds_trained.true_tangent(dec, z)
    with torch.no_grad():
        fd = torch.stack([(dec(z + h * e) - dec(z - h * e)).flatten(1) / (2 * h)
                          for e in torch.eye(4, dtype=torch.float64)], -1)
    Q_fd = torch.linalg.qr(fd, mode="reduced").Q
    assert torch.allclose(worlds_trained.overlap(Q, Q_fd), torch.ones(3, dtype=torch.float64), atol=1e-6)


class LinearAE(nn.Module):
    def __init__(self, n, k):
        super().__init__()
        self.latent_dim, self.enc, self.dec = k, nn.Linear(n, k), nn.Linear(k, n)

    def encode(self, x):
        return self.enc(x.flatten(1))

    def decoder_at(self, x=None):
        return lambda z: self.dec(z).view(-1, 1, 28, 28)

    def forward(self, x):
        return self.decoder_at()(self.encode(x))


def test_linear_autoencoder_finds_a_linear_world():
    """The optimal linear autoencoder of data on a linear manifold (Baldi & Hornik 1989: encoder and decoder span the
    top-k principal subspace) has, through lib.geometry.manifold.tangent_basis, the true tangent space: overlap ~1; a
    random subspace's overlap is about k/n."""
    from lib.geometry import subspaces
    m = worlds.linear_manifold(8, 1, seed=4)
    x = m.point(torch.randn(1000, 8, generator=torch.Generator().manual_seed(0)) * 0.5)
    V = subspaces.PCASubspace(x, 8).Q
    ae = LinearAE(784, 8)
    with torch.no_grad():
        ae.enc.weight.copy_(V.T), ae.enc.bias.copy_(-V.T @ x.flatten(1).mean(0))
        ae.dec.weight.copy_(V), ae.dec.bias.copy_(x.flatten(1).mean(0))
    assert torch.allclose(ae(x[:5]), x[:5], atol=1e-4)
    Q = manifold.tangent_basis(ae, x[:5])
    assert worlds_trained.overlap(Q, m.U).min() > 0.999
    random = torch.linalg.qr(torch.randn(784, 8, generator=torch.Generator().manual_seed(1))).Q
    assert abs(worlds_trained.overlap(random, m.U).item() - 8 / 784) < 0.03


def test_melamed_trend_test_reads_the_knobs_order():
    import pandas as pd
    rows = [{"knob": "init scale" if d == 0 else "weight decay", "init_scale": s, "weight_decay": d, "image": i,
             "grad_off": s * (1 - 100 * d) + 0.01 * i} for i in range(10)
            for s, d in ((1.0, 0.0), (0.25, 0.0), (0.0625, 0.0), (1.0, 1e-4), (1.0, 1e-3))]
    g = pd.DataFrame(rows)
    assert worlds_trained.trend_test(g, "init scale")["p"] < 1e-3
    assert worlds_trained.trend_test(g, "weight decay")["p"] < 1e-3
    assert worlds_trained.trend_test(g, "init scale", predicted="increasing")["p"] > 0.5


def test_world_3_without_mnist_is_a_notice_and_no_rows(monkeypatch):
    from lib.learn import data
    from lib.studies.worlds import worlds_trained

    def unavailable(name, root=None):
        raise data.DatasetUnavailable(f"{name}: not here")

    shown = []
    monkeypatch.setattr(worlds_trained.data, "load", unavailable)
    monkeypatch.setattr(worlds_trained, "show", shown.append)
    rows, per_image, facts = worlds_trained.curved_world(
        settings(), g_epochs=1, g_train=10, g_width=4, n_train=10, clf_epochs=1, ae_epochs=1, margin=1.1
    )
    assert rows == [] and per_image.empty and facts == {}
    assert len(shown) == 1 and "World 3 skipped" in shown[0] and "mnist: not here" in shown[0]
