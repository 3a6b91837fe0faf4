"""lib.manifold: tangent bases and projections, each checked against an independent computation."""
import pytest
import torch
from torch import nn

from lib.manifold import (column_scale, decoder_jacobian, energy_share, project_off, project_onto,
                          project_onto_matrix_free, tangent_basis)
from lib.models import ConvAutoencoder

SHAPE = (1, 8, 8)  # toy images: n = 64
N = 64


# --- toy autoencoders with the lib.models interface: latent_dim, encode(x), decoder_at(x) ---

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
    on, off = project_onto(v, Q), project_off(v, Q)
    assert on.shape == off.shape == v.shape
    torch.testing.assert_close(on + off, v)
    torch.testing.assert_close((on * off).flatten(1).sum(1), torch.zeros(4, dtype=torch.float64))
    torch.testing.assert_close(project_onto(on, Q), on)
    torch.testing.assert_close(project_off(off, Q), off)
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
    on_share, off_share = energy_share(v, project_onto(v, Q)), energy_share(v, project_off(v, Q))
    assert on_share.shape == (4,) and ((on_share > 0) & (on_share < 1)).all()
    torch.testing.assert_close(on_share + off_share, torch.ones(4, dtype=torch.float64))
    in_span = (Q @ torch.randn(4, 5, 1, dtype=torch.float64)).view(4, *SHAPE)
    torch.testing.assert_close(energy_share(in_span, project_onto(in_span, Q)), torch.ones(4, dtype=torch.float64))


# --- matrix-free projection ---

@pytest.mark.parametrize("cls", [LinearAE, ConvBNAE, PoolAE])
def test_matrix_free_agrees_with_dense(cls):
    ae, x = make(cls), images()
    v = torch.randn(4, *SHAPE, dtype=torch.float64)
    dense = project_onto(v, tangent_basis(ae, x))
    with torch.no_grad():
        z, decode = ae.encode(x), ae.decoder_at(x)
    projected, info = project_onto_matrix_free(decode, z, v, tol=1e-10, max_iter=300)
    assert info["converged"].all() and (info["residual"] <= 1e-10).all()
    assert (info["iterations"] <= 3 * ae.latent_dim).all()
    torch.testing.assert_close(projected, dense, atol=1e-8, rtol=1e-7)
    assert all(p.grad is None for p in ae.parameters())


def test_matrix_free_reports_non_convergence_honestly():
    ae, x = make(PoolAE), images(2)
    v = torch.randn(2, *SHAPE, dtype=torch.float64)
    with torch.no_grad():
        z, decode = ae.encode(x), ae.decoder_at(x)
    _, info = project_onto_matrix_free(decode, z, v, tol=1e-12, max_iter=2)
    assert (info["iterations"] == 2).all() and not info["converged"].any() and (info["residual"] > 1e-12).all()


def test_matrix_free_on_a_vector_in_the_tangent_space_returns_it():
    ae, x = make(ConvBNAE), images()
    with torch.no_grad():
        z, decode = ae.encode(x), ae.decoder_at(x)
        v = torch.func.jvp(decode, (z,), (torch.randn_like(z),))[1]  # J u: in the span
    projected, info = project_onto_matrix_free(decode, z, v, tol=1e-12)
    torch.testing.assert_close(projected, v)


# --- warm start and preconditioning, on the MNIST-size conv autoencoder (n = 784, k = 16) ---

def mnist_ae(b=2):
    torch.manual_seed(0)
    ae = ConvAutoencoder(1, 28, 16).double().eval()
    x = torch.rand(b, 1, 28, 28, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        z, decode = ae.encode(x), ae.decoder_at(x)
    return ae, x, z, decode


@pytest.mark.parametrize("preconditioned", [False, True])
def test_matrix_free_agrees_with_dense_at_mnist_size(preconditioned):
    ae, x, z, decode = mnist_ae()
    v = torch.randn_like(x)
    scale = column_scale(decode, z, probes=4) if preconditioned else None
    projected, info = project_onto_matrix_free(decode, z, v, tol=1e-8, max_iter=200, scale=scale)
    dense = project_onto(v, tangent_basis(ae, x))
    assert info["converged"].all()
    assert ((projected - dense).flatten(1).norm(dim=1) / dense.flatten(1).norm(dim=1)).max() < 1e-4


def test_column_scale_estimates_the_inverse_column_norms_of_J():
    _, _, z, decode = mnist_ae(1)
    columns = decoder_jacobian(decode, z).norm(dim=1)  # (1, k) exact column norms
    estimate = 1 / column_scale(decode, z, probes=400, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(estimate, columns, rtol=0.25, atol=0)  # 400 probes: about 7% error each


def test_warm_start_from_the_exact_solution_needs_at_most_one_iteration():
    _, x, z, decode = mnist_ae()
    v = torch.randn_like(x)
    cold_projected, cold = project_onto_matrix_free(decode, z, v, tol=1e-10, max_iter=300)
    projected, warm = project_onto_matrix_free(decode, z, v, tol=1e-6, max_iter=300, a0=cold["solution"])
    assert (cold["iterations"] > 5).all() and (warm["iterations"] <= 1).all() and warm["converged"].all()
    torch.testing.assert_close(projected, cold_projected)


def test_warm_start_needs_fewer_iterations_on_a_sequence_of_nearby_vectors():
    _, x, z, decode = mnist_ae()
    generator = torch.Generator().manual_seed(2)
    v = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    a = None
    for t in range(4):
        if t:
            v = v + 0.05 * torch.randn(x.shape, generator=generator, dtype=x.dtype)
        projected_cold, cold = project_onto_matrix_free(decode, z, v, tol=1e-6, max_iter=300)
        projected, warm = project_onto_matrix_free(decode, z, v, tol=1e-6, max_iter=300, a0=a)
        assert warm["converged"].all() and cold["converged"].all()
        if t:
            assert (warm["iterations"] < cold["iterations"]).all(), (t, warm["iterations"], cold["iterations"])
        torch.testing.assert_close(projected, projected_cold, atol=1e-4 * v.abs().max().item(), rtol=0)
        a = warm["solution"]


def test_zero_rows_stay_exactly_zero_even_when_warm_started():
    _, x, z, decode = mnist_ae(3)
    v = torch.randn_like(x)
    v[1] = 0
    projected, info = project_onto_matrix_free(decode, z, v, tol=1e-6, max_iter=300, a0=torch.randn_like(z),
                                               scale=column_scale(decode, z, probes=2))
    assert (projected[1] == 0).all() and (info["solution"][1] == 0).all()
    assert info["iterations"][1] == 0 and info["converged"][1] and info["residual"][1] == 0
    assert info["converged"][[0, 2]].all() and (projected[[0, 2]] != 0).any()


def test_non_convergence_is_reported_when_max_iter_is_too_small():
    _, x, z, decode = mnist_ae()
    _, info = project_onto_matrix_free(decode, z, torch.randn_like(x), tol=1e-8, max_iter=1)
    assert not info["converged"].any() and (info["iterations"] == 1).all() and (info["residual"] > 1e-8).all()


def test_past_float32_accuracy_the_solver_returns_its_best_iterate_and_its_true_residual():
    """Asked for more than float32 can give, CGLS diverges (this decoder: residual 4e-4 after 20 iterations,
    84 after 40, NaN after 200): the solver must stop, return its best iterate, and report the true
    ||J^T (v - P v)|| / ||J^T v|| of the projection it returns."""
    torch.manual_seed(0)
    ae = ConvAutoencoder(1, 28, 16).eval()
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        z, decode = ae.encode(x), ae.decoder_at(x)
        projected, info = project_onto_matrix_free(decode, z, v, tol=1e-12, max_iter=200)
        _, J_T = torch.func.vjp(decode, z)
        true = J_T(v - projected)[0].norm(dim=1) / J_T(v)[0].norm(dim=1)
    torch.testing.assert_close(info["residual"], true, rtol=1e-3, atol=0)
    assert not info["converged"].any() and (info["residual"] < 1e-3).all() and (info["iterations"] < 200).all()


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
    z, decode = ae.encode(x).detach(), ae.decoder_at(x)
    with pytest.raises(ValueError, match="tol"):
        project_onto_matrix_free(decode, z, v, tol=0)
    with pytest.raises(ValueError, match="max_iter"):
        project_onto_matrix_free(decode, z, v, max_iter=0)
    with pytest.raises(ValueError, match="z must be"):
        project_onto_matrix_free(decode, z[:2], v)
    with pytest.raises(ValueError, match="v must be"):
        project_onto_matrix_free(decode, z, v[..., :4])
    with pytest.raises(ValueError, match="a0 must be"):
        project_onto_matrix_free(decode, z, v, a0=z[:2])
    with pytest.raises(ValueError, match="probes"):
        column_scale(decode, z, probes=0)
