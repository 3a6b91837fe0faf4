"""lib.learn.iae: the I-AE regularisers checked against finite differences and explicit Jacobians, the linear
isometric case in closed form, and BatchNorm folding, the model's training and caching on a toy set."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck
from torch.autograd.functional import jacobian

from lib.learn import iae, models

torch.set_default_dtype(torch.float32)
B, K, N = 5, 3, 7


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(B, K, generator=g, dtype=torch.float64)
    x = torch.randn(B, N, generator=g, dtype=torch.float64)
    u = iae.unit_latents(B, K, g, torch.float64)
    return z, x, u


def _weights(*shapes, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(0.7 * torch.randn(*s, generator=g, dtype=torch.float64)).requires_grad_() for s in shapes]


def nonlinear_decoder(W1, W2):
    return lambda z: F.softplus(z @ W1.T, beta=2.0) @ W2.T


def nonlinear_encoder(V1, V2):
    return lambda x: F.softplus(x @ V1.T, beta=2.0) @ V2.T


def test_unit_latents_are_unit_vectors():
    u = iae.unit_latents(100, 16, torch.Generator().manual_seed(0))
    assert torch.allclose(u.norm(dim=1), torch.ones(100))


def test_regularisers_match_explicit_jacobians():
    """The jvp / vjp losses equal the same losses computed from full Jacobians, row by row."""
    z, x, u = _data()
    decode, encode = nonlinear_decoder(*_weights((6, K), (N, 6))), nonlinear_encoder(*_weights((6, N), (K, 6)))
    iso = torch.stack([(jacobian(lambda zi: decode(zi[None])[0], z[i]) @ u[i]).norm() for i in range(B)])
    piso = torch.stack([(u[i] @ jacobian(lambda xi: encode(xi[None])[0], x[i])).norm() for i in range(B)])
    assert torch.allclose(iae.iso_loss(decode, z, u), ((iso - 1) ** 2).mean())
    assert torch.allclose(iae.piso_loss(encode, x, u), ((piso - 1) ** 2).mean())


@pytest.mark.parametrize("kind", ["linear", "nonlinear"])
def test_iso_gradient_matches_finite_differences(kind):
    z, _, u = _data()
    if kind == "linear":
        (A,) = _weights((N, K))
        assert gradcheck(lambda A: iae.iso_loss(lambda v: v @ A.T, z, u), (A,))
    else:
        W = _weights((6, K), (N, 6))
        assert gradcheck(lambda W1, W2: iae.iso_loss(nonlinear_decoder(W1, W2), z, u), tuple(W))


@pytest.mark.parametrize("kind", ["linear", "nonlinear"])
def test_piso_gradient_matches_finite_differences(kind):
    _, x, u = _data()
    if kind == "linear":
        (A,) = _weights((K, N))
        assert gradcheck(lambda A: iae.piso_loss(lambda v: v @ A.T, x, u), (A,))
    else:
        V = _weights((6, N), (K, 6))
        assert gradcheck(lambda V1, V2: iae.piso_loss(nonlinear_encoder(V1, V2), x, u), tuple(V))


def test_linear_isometry_with_pseudo_inverse_is_an_orthogonal_projection():
    """D(z) = A z + b with orthonormal columns A, E(x) = A^T (x - b): both regularisers vanish, every singular
    value of J_D is 1, and D(E(x)) is the least-squares projection onto the affine plane b + span(A)."""
    g = torch.Generator().manual_seed(3)
    A = torch.linalg.qr(torch.randn(N, K, generator=g, dtype=torch.float64)).Q
    b = torch.randn(N, generator=g, dtype=torch.float64)
    z, x, u = _data()
    decode, encode = (lambda v: v @ A.T + b), (lambda v: (v - b) @ A)
    assert iae.iso_loss(decode, z, u).item() < 1e-20
    assert iae.piso_loss(encode, x, u).item() < 1e-20
    coef = torch.linalg.lstsq(A, (x - b).T).solution
    assert torch.allclose(decode(encode(x)), (A @ coef).T + b)
    # the projection leaves the plane's points alone and removes normal components entirely
    assert torch.allclose(decode(encode(decode(z))), decode(z))
    normal = x - decode(encode(x))
    assert torch.allclose(normal @ A, torch.zeros(B, K, dtype=torch.float64), atol=1e-12)

    dec, enc = decode, encode

    class Linear(torch.nn.Module):
        latent_dim = K
        decoder = staticmethod(dec)
        encode = staticmethod(enc)

        def forward(self, v):
            return dec(enc(v))

    sv = iae.decoder_singular_values(Linear(), z)
    assert torch.allclose(sv, torch.ones_like(sv))
    Q = A.expand(B, N, K)
    normal_ratio, tangent_ratio = iae.projection_ratios(Linear(), x, Q, 0.5, g)
    assert torch.allclose(normal_ratio, torch.zeros(B, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(tangent_ratio, torch.ones(B, dtype=torch.float64))
    assert iae.reencoding_error(Linear(), z).max() < 1e-12


def test_isometric_autoencoder_takes_plain_weights_and_trains(tmp_cache):
    """The plain autoencoder folds into the BatchNorm-free I-AE as the same function; the three terms are finite;
    training lowers the regularisers; a second request is a cache hit with the same weights."""
    plain = models.ConvAutoencoder(1, 28, 4, 4)
    with torch.no_grad():  # BatchNorm statistics that are not the identity, so that folding is tested
        plain.train()(torch.rand(32, 1, 28, 28))
        for m in plain.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 2), m.bias.uniform_(-0.5, 0.5)
    plain.eval()
    net = iae.isometric_autoencoder((1, 28, 28), 4, 4, softplus_beta=100.0)
    assert sum(isinstance(m, torch.nn.Softplus) and m.beta == 100.0 for m in net.modules()) == 7
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    same = iae.fold_batchnorm(plain, iae.isometric_autoencoder((1, 28, 28), 4, 4, softplus_beta=1.0)).eval()
    x = torch.rand(5, 1, 28, 28)
    assert torch.allclose(same(x), plain(x), atol=1e-5)

    class Toy:
        name, shape = "mnist", (1, 28, 28)
        train_x = torch.rand(48, 1, 28, 28, generator=torch.Generator().manual_seed(0))

        def identity(self):
            return "toy"

        def describe(self):
            return "toy"

    cfg = iae.IAEConfig("mnist", 4, 4, lam=1.0, epochs=6, batch_size=16, lr=3e-3)
    first = iae.get_iae(cfg, Toy())
    hist = first.meta["history"]
    assert all(len(hist[k]) == 6 * 3 for k in ("epoch", "recon", "iso", "piso")) and hist["iso_share"] == []
    assert hist["iso"][-1] + hist["piso"][-1] < hist["iso"][0] + hist["piso"][0]
    again = iae.get_iae(cfg, Toy())
    assert again.cached and not first.cached
    for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)
    terms = iae.held_out_terms(again.model, Toy.train_x[:10])
    assert set(terms) == {"recon", "iso", "piso"}


def test_isometric_share_and_its_record_during_training():
    """The criterion counts singular values within ±25% of 1; a monitored training records it before the first epoch
    and after each, and monitoring does not change the weights (it draws no random numbers)."""
    assert iae.isometric_share(torch.tensor([1.0, 1.2, 0.76, 1.3, 0.7])) == pytest.approx(3 / 5)
    x = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    cfg = iae.IAEConfig("mnist", 4, 4, lam=1.0, epochs=2, batch_size=16, lr=3e-3)
    start = iae.isometric_autoencoder((1, 28, 28), 4, 4, 1.0)
    a, ha = iae.train_iae(copy.deepcopy(start), x, cfg, "cpu", monitor=x[:5])
    b, hb = iae.train_iae(copy.deepcopy(start), x, cfg, "cpu")
    assert len(ha["iso_share"]) == 3 and all(0 <= v <= 1 for v in ha["iso_share"]) and hb["iso_share"] == []
    assert len(ha["sv_q05"]) == len(ha["sv_q95"]) == 3 and all(
        0 < lo <= hi for lo, hi in zip(ha["sv_q05"], ha["sv_q95"])
    )
    for p, q in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(p, q)


def test_warm_start_needs_the_plain_model():
    cfg = iae.IAEConfig("mnist", 4, 4, lam=1.0, epochs=1, warm_start="abc")
    with pytest.raises(ValueError, match="warm"):
        iae.get_iae(cfg, None)
    with pytest.raises(ValueError, match="lam"):
        iae.get_iae(iae.IAEConfig("mnist", 4, 4, lam=-1.0, epochs=1), None)


def test_rescaling_the_latent_keeps_the_reconstruction_and_finds_the_isometric_scale():
    """rescale_latent(c) leaves D(E(x)) alone and multiplies ||J_D u|| by 1/c and ||u^T J_E|| by c; for a
    linear isometric pair stretched by s, latent_scale returns s back."""
    torch.manual_seed(0)
    ae = models.ConvAutoencoder(1, 28, 4, 4).eval()
    x = torch.rand(6, 1, 28, 28)
    before = ae(x)
    a0, b0 = iae._jacobian_norms(ae, x, torch.Generator().manual_seed(1))
    iae.rescale_latent(ae, 3.0)
    a1, b1 = iae._jacobian_norms(ae, x, torch.Generator().manual_seed(1))
    assert torch.allclose(ae(x), before, atol=1e-5)
    assert torch.allclose(b1, 3 * b0, rtol=1e-4) and torch.allclose(a1 * 3, a0, rtol=1e-3, atol=1e-6)

    A = torch.linalg.qr(torch.randn(28 * 28, 4)).Q
    s = 0.2

    class Stretched(torch.nn.Module):  # D(z) = A z / s, E(x) = s A^T x: isometric after z -> z / s
        latent_dim = 4
        encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 4))
        decoder = torch.nn.Sequential(torch.nn.Linear(4, 28 * 28), torch.nn.Unflatten(1, (1, 28, 28)))

        def encode(self, v):
            return self.encoder(v)

    net = Stretched()
    with torch.no_grad():
        net.encoder[1].weight.copy_(s * A.T), net.encoder[1].bias.zero_()
        net.decoder[0].weight.copy_(A / s), net.decoder[0].bias.zero_()
    assert iae.latent_scale(net, x) == pytest.approx(1 / s, rel=0.01)


def test_the_isometry_and_reconstruction_measures_show_progress(tmp_path, monkeypatch):
    """Notebook 07's isometry cell and 02's reconstruction cell: their lib loops write bars to the progress log."""
    from lib.infra import runtime
    from lib.learn import train

    log = tmp_path / "nb.progress.log"
    monkeypatch.setenv("DIMPLED_PROGRESS", str(log))
    monkeypatch.setattr(runtime, "_progress_file", None)
    ae = iae.isometric_autoencoder((1, 28, 28), 4, 4, 1.0).eval()
    x = torch.rand(40, 1, 28, 28)
    iae.decoder_singular_values(ae, ae.encode(x).detach())
    iae.held_out_terms(ae, x, batch_size=20)
    train.reconstruction_mse(ae, x, "cpu", batch_size=10)
    runtime._progress_file.flush()
    text = log.read_text()
    for desc in ("singular values of J_D", "held-out terms", "reconstruction MSE"):
        assert desc in text, desc
