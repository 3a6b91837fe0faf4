"""lib.geometry.manifold: tangent bases and projections, each checked against an independent computation."""
import pytest
import torch
from torch import nn

from lib.geometry.manifold import energy_share, project_onto, tangent_basis

SHAPE = (1, 8, 8)  # toy images: n = 64
N = 64


# --- toy autoencoders with the lib.learn.models interface: latent_dim, encode(x), decoder_at(x) ---

class LinearAE(nn.Module):
    """D(z) = A z (reshaped), E(x) = A^+ x: the tangent space is the column space of A everywhere."""

    def __init__(self, A):
        super().__init__()
        self.A = nn.Parameter(A)
        self.latent_dim = A.shape[1]

    def encode(self, x):
        return x.flatten(1) @ torch.linalg.pinv(self.A).T

    def decoder_at(self, x=None):
        return lambda z: (z @ self.A.T).view(-1, *SHAPE)


class ConvBNAE(nn.Module):
    """A small conv autoencoder with BatchNorm + Softplus and a sigmoid output (the ConvAutoencoder family)."""

    def __init__(self, k=5):
        super().__init__()
        self.latent_dim = k
        self.encoder = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.Softplus(),
                                     nn.Flatten(), nn.Linear(4 * 4 * 4, k))
        self.decoder = nn.Sequential(nn.Linear(k, 4 * 4 * 4), nn.Unflatten(1, (4, 4, 4)),
                                     nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1),
                                     nn.BatchNorm2d(4), nn.Softplus(), nn.Conv2d(4, 1, 3, padding=1), nn.Sigmoid())
        for bn in (self.encoder[1], self.decoder[3]):  # running statistics far from any batch's
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)

    def encode(self, x):
        return self.encoder(x)

    def decoder_at(self, x=None):
        return self.decoder


class PoolAE(nn.Module):
    """Conv-BN-ReLU-MaxPool encoder; the decoder unpools with x's indices (the VGGAutoencoder pattern)."""

    def __init__(self):
        super().__init__()
        self.latent_dim = 2 * 4 * 4
        self.conv, self.bn = nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2)
        self.pool, self.unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
        self.out = nn.Conv2d(2, 1, 3, padding=1)

    def _encode(self, x):
        h, indices = self.pool(torch.relu(self.bn(self.conv(x))))
        return h.flatten(1), indices

    def encode(self, x):
        return self._encode(x)[0]

    def decoder_at(self, x):
        indices = self._encode(x)[1]
        return lambda z: torch.sigmoid(self.out(self.unpool(z.view(-1, 2, 4, 4), indices)))


def make(cls, seed=0):
    torch.manual_seed(seed)
    return (cls(torch.randn(N, 5, dtype=torch.float64)) if cls is LinearAE else cls()).double().eval()


def images(b=4, seed=1):
    return torch.rand(b, *SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def jacobian_one_by_one(ae, x):
    """J of each image alone, by reverse-mode autograd (torch.autograd.functional.jacobian): (B, n, k)."""
    ae.eval()
    Js = []
    for xb in x.split(1):
        decode, z = ae.decoder_at(xb), ae.encode(xb).detach()
        Js.append(torch.autograd.functional.jacobian(lambda zb: decode(zb[None]).flatten(), z[0], vectorize=True))
    return torch.stack(Js)


def projector(Q):
    return Q @ Q.transpose(-1, -2)


# --- tangent_basis ---

@pytest.mark.parametrize("cls", [LinearAE, ConvBNAE, PoolAE])
def test_basis_is_orthonormal_and_spans_the_jacobian(cls):
    ae, x = make(cls), images()
    Q = tangent_basis(ae, x)
    k = ae.latent_dim
    assert Q.shape == (4, N, k)
    torch.testing.assert_close(Q.transpose(1, 2) @ Q, torch.eye(k, dtype=Q.dtype).expand(4, k, k))
    J = jacobian_one_by_one(ae, x)
    torch.testing.assert_close(J - projector(Q) @ J, torch.zeros_like(J), atol=1e-10, rtol=0)
    # and no more than J's columns: Q Q^T is J's orthogonal projector J J^+
    torch.testing.assert_close(projector(Q), J @ torch.linalg.pinv(J))


def test_linear_decoder_tangent_space_is_the_column_space_of_A():
    ae, x = make(LinearAE), images()
    A = ae.A.detach()
    expected = A @ torch.linalg.solve(A.T @ A, A.T)
    torch.testing.assert_close(projector(tangent_basis(ae, x)), expected.expand(4, N, N))


def test_batchnorm_in_train_mode_gives_the_per_image_eval_result_and_mode_is_restored():
    ae, x = make(ConvBNAE), images(6)
    running_mean = ae.decoder[3].running_mean.clone()
    ae.train()
    Q = tangent_basis(ae, x, chunk_size=4)
    assert ae.training and all(m.training for m in ae.modules())
    torch.testing.assert_close(ae.decoder[3].running_mean, running_mean)  # eval: statistics untouched
    one_by_one = torch.cat([tangent_basis(ae, xb) for xb in x.split(1)])
    torch.testing.assert_close(projector(Q), projector(one_by_one))
    J = jacobian_one_by_one(ae, x)
    torch.testing.assert_close(projector(Q), J @ torch.linalg.pinv(J))


def test_chunking_does_not_change_the_basis():
    ae, x = make(PoolAE), images(5)
    torch.testing.assert_close(tangent_basis(ae, x, chunk_size=2), tangent_basis(ae, x))


def test_float32_basis():
    ae, x = make(ConvBNAE).float(), images().float()
    Q = tangent_basis(ae, x)
    assert Q.dtype == torch.float32
    torch.testing.assert_close(Q.transpose(1, 2) @ Q, torch.eye(5).expand(4, 5, 5), atol=1e-5, rtol=0)


# --- projections ---

def test_projections_are_complementary_orthogonal_and_idempotent():
    ae, x = make(ConvBNAE), images()
    Q, v = tangent_basis(ae, x), torch.randn(4, *SHAPE, dtype=torch.float64)
    on = project_onto(v, Q)
    off = v - on
    assert on.shape == off.shape == v.shape
    torch.testing.assert_close(on + off, v)
    torch.testing.assert_close((on * off).flatten(1).sum(1), torch.zeros(4, dtype=torch.float64))
    torch.testing.assert_close(project_onto(on, Q), on)
    torch.testing.assert_close(off - project_onto(off, Q), off)
    torch.testing.assert_close(project_onto(off, Q), torch.zeros_like(v), atol=1e-12, rtol=0)
    # against the explicit projector matrix, image by image
    torch.testing.assert_close(on.flatten(1), torch.einsum("bij,bj->bi", projector(Q), v.flatten(1)))


def test_shared_basis_broadcasts_over_the_batch():
    Q = torch.linalg.qr(torch.randn(N, 7, dtype=torch.float64)).Q
    v = torch.randn(3, *SHAPE, dtype=torch.float64)
    torch.testing.assert_close(project_onto(v, Q), project_onto(v, Q.expand(3, N, 7)))


def test_energy_share():
    ae, x = make(ConvBNAE), images()
    Q, v = tangent_basis(ae, x), torch.randn(4, *SHAPE, dtype=torch.float64)
    on_share, off_share = energy_share(v, project_onto(v, Q)), energy_share(v, v - project_onto(v, Q))
    assert on_share.shape == (4,) and ((on_share > 0) & (on_share < 1)).all()
    torch.testing.assert_close(on_share + off_share, torch.ones(4, dtype=torch.float64))
    in_span = (Q @ torch.randn(4, 5, 1, dtype=torch.float64)).view(4, *SHAPE)
    torch.testing.assert_close(energy_share(in_span, project_onto(in_span, Q)), torch.ones(4, dtype=torch.float64))


# --- bad parameters ---

def test_bad_parameters_raise_value_errors_naming_them():
    ae, x = make(ConvBNAE), images()
    with pytest.raises(ValueError, match="chunk_size"):
        tangent_basis(ae, x, chunk_size=0)
    with pytest.raises(ValueError, match="x must be"):
        tangent_basis(ae, x.flatten(1))
    v = torch.randn(4, *SHAPE, dtype=torch.float64)
    with pytest.raises(ValueError, match="Q must be"):
        project_onto(v, torch.zeros(4, N + 1, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="Q must be"):
        project_onto(v, torch.zeros(3, N, 3, dtype=torch.float64))
