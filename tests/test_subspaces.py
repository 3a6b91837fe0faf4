"""lib.geometry.subspaces: the tangent space and its random controls behind one interface."""
import numpy as np
import pytest
import torch
from torch import nn

from lib.geometry.manifold import project_onto, tangent_basis
from lib.geometry.subspaces import (KINDS, CoordinateSubspace, GramTangentSubspace, PCASubspace, RandomSubspace,
                           TangentSubspace, make_subspace, tangent_route, tangent_subspace)

SHAPE = (1, 8, 8)  # toy images: n = 64
N, K, B = 64, 5, 4


class SoftplusAE(nn.Module):
    """A small nonlinear autoencoder with the lib.learn.models interface (latent_dim, encode, decoder_at)."""

    def __init__(self, k=K):
        super().__init__()
        self.latent_dim = k
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(N, 16), nn.Softplus(), nn.Linear(16, k))
        self.decoder = nn.Sequential(nn.Linear(k, 16), nn.BatchNorm1d(16), nn.Softplus(), nn.Linear(16, N),
                                     nn.Sigmoid(), nn.Unflatten(1, SHAPE))

    def encode(self, x):
        return self.encoder(x)

    def decoder_at(self, x=None):
        return self.decoder


def images(b=B, seed=1):
    return torch.rand(b, *SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def autoencoder():
    torch.manual_seed(0)
    return SoftplusAE().double().eval()


def subspace(kind, x, seed=0):
    train = torch.rand(40, *SHAPE, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    return make_subspace(kind, K, x, ae=autoencoder(), train_images=train, seed=seed)


@pytest.mark.parametrize("kind", KINDS)
def test_every_subspace_is_an_orthogonal_projection(kind):
    x, v = images(), torch.randn(B, *SHAPE, dtype=torch.float64)
    S = subspace(kind, x)
    assert (S.name, S.k, S.n) == (kind, K, N)
    on, off = S.on(v), S.off(v)
    assert on.shape == off.shape == v.shape
    torch.testing.assert_close(on + off, v)
    torch.testing.assert_close(S.on(on), on)                                  # idempotent
    torch.testing.assert_close(S.on(off), torch.zeros_like(v), atol=1e-12, rtol=0)
    torch.testing.assert_close((on * off).flatten(1).sum(1), torch.zeros(B, dtype=torch.float64))  # on ⟂ off
    # the projection is linear, and has rank k: k orthonormal directions in, n - k out
    P = torch.stack([S.on(e.expand(B, *SHAPE)) for e in torch.eye(N, dtype=torch.float64).view(N, *SHAPE)], -1)
    P = P.flatten(1, -2)  # (B, n, n): column j = on(e_j)
    torch.testing.assert_close(P, P.transpose(1, 2))
    torch.testing.assert_close(
        torch.diagonal(P, dim1=1, dim2=2).sum(1), torch.full((B,), float(K), dtype=torch.float64)
    )


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_subspace(kind):
    x, v = images(), torch.randn(B, *SHAPE, dtype=torch.float64)
    torch.testing.assert_close(subspace(kind, x, seed=3).on(v), subspace(kind, x, seed=3).on(v))
    if kind in ("coordinate", "random"):
        assert not torch.allclose(subspace(kind, x, seed=3).on(v), subspace(kind, x, seed=4).on(v))


def test_tangent_subspace_is_the_autoencoders_tangent_space():
    ae, x, v = autoencoder(), images(), torch.randn(B, *SHAPE, dtype=torch.float64)
    expected = project_onto(v, tangent_basis(ae, x))
    torch.testing.assert_close(tangent_subspace(ae, x).on(v), expected)
    torch.testing.assert_close(TangentSubspace(tangent_basis(ae, x)).on(v), expected)
    # a direction the decoder can move in is kept whole
    with torch.no_grad():
        along = torch.func.jvp(ae.decoder, (ae.encode(x),), (torch.randn(B, K, dtype=torch.float64),))[1]
    torch.testing.assert_close(tangent_subspace(ae, x).on(along), along)


def test_random_subspace_captures_k_over_n_of_a_fixed_vectors_energy():
    n, k, b = N, 16, 400
    S = RandomSubspace(n, k, batch=b, seed=0)
    gaussian = torch.randn(1, *SHAPE, generator=torch.Generator().manual_seed(5))
    for v in (gaussian.expand(b, *SHAPE), torch.ones(b, *SHAPE)):  # any fixed direction: rotation invariance
        share = S.on(v).flatten(1).pow(2).sum(1) / v.flatten(1).pow(2).sum(1)
        assert abs(share.mean().item() - k / n) < 0.02  # Beta(k/2, (n-k)/2): sd of the mean ~ 0.004
        assert share.std() > 0.03                       # and per image it is a different subspace
    Q = RandomSubspace(n, k, seed=0).Q              # shared: one orthonormal n x k basis
    assert Q.shape == (n, k)
    torch.testing.assert_close(Q.T @ Q, torch.eye(k), atol=1e-5, rtol=0)


def test_coordinate_subspace_keeps_exactly_k_coordinates_per_image():
    b, k = 50, 7
    S = CoordinateSubspace(N, k, batch=b, seed=0)
    v = torch.rand(b, *SHAPE) + 0.1  # no zero entries
    on, off = S.on(v), S.off(v)
    assert ((on != 0).flatten(1).sum(1) == k).all()
    assert ((off != 0).flatten(1).sum(1) == N - k).all()
    torch.testing.assert_close(on[on != 0], v[on != 0])   # kept coordinates are unchanged
    assert len({tuple(m.nonzero().flatten().tolist()) for m in S.mask}) > 45  # drawn per image
    counts = S.mask.sum(0).float()                         # each coordinate about equally often
    assert counts.mean().item() == pytest.approx(b * k / N) and counts.max() < 20


def test_pca_basis_matches_numpys_svd_of_the_centred_data():
    train = torch.rand(40, *SHAPE, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    train[:, :, :4] *= 3  # a few dominant directions so the top-k subspace is well separated
    S = PCASubspace(train, K)
    X = train.flatten(1).numpy()
    _, s, Vt = np.linalg.svd(X - X.mean(0), full_matrices=False)
    V = Vt[:K].T
    np.testing.assert_allclose((S.Q @ S.Q.T).numpy(), V @ V.T, atol=1e-10)
    np.testing.assert_allclose(S.singular_values.numpy(), s, rtol=1e-10)
    # the first component is the direction of largest variance of the data
    variance = ((X - X.mean(0)) @ S.Q.numpy()).var(0)
    assert np.all(np.diff(variance) <= 1e-12)


def test_subspaces_follow_the_images_dtype():
    x = images().float()
    for kind in ("coordinate", "random"):
        S = make_subspace(kind, K, x, seed=0)
        assert S.on(torch.randn(B, *SHAPE)).dtype == torch.float32


def test_bad_parameters_raise_value_errors_naming_them():
    x = images()
    with pytest.raises(ValueError, match="kind must be one of"):
        make_subspace("manifold", K, x)
    for k in (0, N, N + 1, 2.5):
        with pytest.raises(ValueError, match="k must be an integer in 1..63"):
            make_subspace("random", k, x)
    with pytest.raises(ValueError, match="ae must be given"):
        make_subspace("tangent", K, x)
    with pytest.raises(ValueError, match="k must equal ae.latent_dim"):
        make_subspace("tangent", K + 1, x, ae=autoencoder())
    with pytest.raises(ValueError, match="train_images must be given"):
        make_subspace("pca", K, x)
    with pytest.raises(ValueError, match="at most the number of training images"):
        make_subspace("pca", 10, x, train_images=images(3))
    with pytest.raises(ValueError, match="k must be"):
        CoordinateSubspace(N, 0, batch=2)


def test_gram_tangent_subspace_is_the_dense_projection_and_is_chosen_where_a_basis_does_not_fit():
    torch.manual_seed(0)
    ae = SoftplusAE().double()
    x = torch.rand(3, *SHAPE, dtype=torch.float64)
    v = torch.randn(3, *SHAPE, dtype=torch.float64)
    dense = tangent_subspace(ae, x)
    gram = tangent_subspace(ae, x, max_basis_bytes=0)  # forced: as at ImageNet size
    assert isinstance(dense, TangentSubspace) and isinstance(gram, GramTangentSubspace)
    assert (gram.k, gram.n, gram.name) == (dense.k, dense.n, "tangent")
    torch.testing.assert_close(gram.on(v), dense.on(v), atol=1e-10, rtol=0)
    torch.testing.assert_close(gram.on(gram.on(v)), gram.on(v), atol=1e-10, rtol=0)  # idempotent
    assert gram.off(v).flatten(1).mul(gram.on(v).flatten(1)).sum(1).abs().max() < 1e-10  # orthogonal
    summary = gram.solve_summary(3)
    assert summary["converged"].all() and (summary["residual"] < 1e-10).all() and (summary["iterations"] == 0).all()
    assert summary["solves"].tolist() == [6, 6, 6]  # every on() above, off() included


def test_gram_route_computes_in_float64_for_a_float32_autoencoder_and_leaves_it_alone():
    torch.manual_seed(0)
    ae = SoftplusAE().eval()
    x, v = torch.rand(2, *SHAPE), torch.randn(2, *SHAPE)
    gram = GramTangentSubspace(ae, x)
    assert next(ae.parameters()).dtype == torch.float32 and gram.on(v).dtype == torch.float32
    exact = TangentSubspace(tangent_basis(ae.double(), x.double())).on(v.double())
    torch.testing.assert_close(gram.on(v).double(), exact, atol=1e-6, rtol=0)


class LinearDecoderAE(nn.Module):
    """D(z) = A z: the tangent space is the column space of A, whatever its conditioning or rank."""

    def __init__(self, A):
        super().__init__()
        self.register_buffer("A", A)
        self.latent_dim = A.shape[1]

    def encode(self, x):
        return torch.zeros(x.shape[0], self.latent_dim, dtype=x.dtype)

    def decoder_at(self, x=None):
        return lambda z: (z @ self.A.T).view(-1, *SHAPE)


def matrix(singular_values, seed=0):
    g = torch.Generator().manual_seed(seed)
    U = torch.linalg.qr(torch.randn(N, len(singular_values), generator=g, dtype=torch.float64))[0]
    V = torch.linalg.qr(torch.randn(len(singular_values), len(singular_values), generator=g, dtype=torch.float64))[0]
    return U * torch.as_tensor(singular_values, dtype=torch.float64) @ V.T, U


def ill_conditioned(k=12):
    """A linear decoder with kappa(J) = 1e5 and a spread spectrum: (ae, x, v, the exact P_on v)."""
    A, U = matrix(torch.logspace(0, -5, k))
    ae, x = LinearDecoderAE(A), images(1)
    v = torch.randn(1, *SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    return ae, x, v, (U @ (U.T @ v.flatten())).view_as(v)


def test_gram_projection_is_exact_on_an_ill_conditioned_decoder():
    """The direct Gram solve is exact to kappa^2 * eps (conjugate gradients stall here: tests/test_cg_route.py)."""
    ae, x, v, exact = ill_conditioned()
    gram = GramTangentSubspace(ae, x)
    assert (gram.on(v) - exact).norm() / exact.norm() < 1e-5


def test_gram_route_projects_onto_the_numerical_range_of_a_rank_deficient_decoder():
    A, U = matrix([3.0, 1.0, 0.5, 0.2, 0.1])
    A[:, 2] = 0  # a latent direction the decoder ignores (a dead unit): G is singular
    ae, x = LinearDecoderAE(A), images(1)
    v = torch.randn(1, *SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    Ur = torch.linalg.svd(A, full_matrices=False)[0][:, :4]
    gram = GramTangentSubspace(ae, x)
    torch.testing.assert_close(gram.on(v), (Ur @ (Ur.T @ v.flatten())).view_as(v), atol=1e-10, rtol=0)


def test_tangent_route_and_how_many_images_fit_at_once():
    ae, x = autoencoder(), images(4)
    per_basis, per_gram = N * K * 8, K * K * 8
    assert tangent_route(K, x) == ("basis", 2**31 // per_basis)
    assert tangent_route(K, x, max_basis_bytes=0, max_gram_bytes=3 * per_gram) == ("gram", 3)
    with pytest.raises(ValueError, match="x must hold at most 3 images"):
        tangent_subspace(ae, x, max_basis_bytes=0, max_gram_bytes=3 * per_gram)
    with pytest.raises(ValueError, match="max_gram_bytes must hold one"):
        tangent_route(K, x, max_basis_bytes=0, max_gram_bytes=per_gram - 1)


@pytest.mark.parametrize("kind", ("coordinate", "random"))
def test_an_images_random_subspace_depends_on_its_id_not_its_batch(kind):
    """A shard of a distributed attack must draw each image's subspace as the whole batch would."""
    x, v = images(6), torch.randn(6, *SHAPE, dtype=torch.float64)
    ids = [40, 7, 13, 2, 99, 5]
    # the same draws, so the same projections up to the rounding of a batched product, which may depend on
    # the batch's size: float64 eps per term, sqrt(n) terms (a random walk), values of order max |v|
    tol = torch.finfo(torch.float64).eps * np.sqrt(v[0].numel()) * v.abs().max().item()
    whole = make_subspace(kind, K, x, seed=3, ids=ids).on(v)
    part = make_subspace(kind, K, x[3:5], seed=3, ids=ids[3:5]).on(v[3:5])
    torch.testing.assert_close(part, whole[3:5], rtol=0, atol=tol)
    shuffled = make_subspace(kind, K, x[[1, 0]], seed=3, ids=[ids[1], ids[0]]).on(v[[1, 0]])
    torch.testing.assert_close(shuffled, whole[[1, 0]], rtol=0, atol=tol)
    with pytest.raises(ValueError, match="one id per image"):
        make_subspace(kind, K, x, seed=3, ids=ids[:2])


def test_gram_solver_says_when_g_is_not_positive_definite():
    from lib.geometry.manifold import gram_solver
    G = -torch.eye(3, dtype=torch.float64)[None]
    with pytest.raises(RuntimeError, match="not positive definite"):
        gram_solver(G)
