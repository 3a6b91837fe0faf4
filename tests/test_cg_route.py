"""bench/cg_route.py: the conjugate-gradient tangent route (the benchmarks' baseline, not the report's), checked
against the dense projection (lib.geometry.manifold.tangent_basis) and the Gram route
(lib.geometry.subspaces.GramTangentSubspace). The toy autoencoders are those of tests/test_manifold.py and
tests/test_subspaces.py."""
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from lib.geometry.manifold import decoder_jacobian, project_onto, tangent_basis
from lib.learn.models import ConvAutoencoder
from lib.geometry.subspaces import GramTangentSubspace, tangent_subspace
from test_manifold import SHAPE, ConvBNAE, LinearAE, PoolAE, images, make
from test_subspaces import N, SoftplusAE, ill_conditioned

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))  # as when a benchmark runs
from cg_route import MatrixFreeTangentSubspace, column_scale, project_onto_matrix_free  # noqa: E402


# --- project_onto_matrix_free against the dense projection ---

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


# --- MatrixFreeTangentSubspace: the lib.geometry.subspaces interface over it ---

def test_matrix_free_tangent_subspace_agrees_with_the_dense_one():
    torch.manual_seed(0)
    ae = SoftplusAE().double()
    x = torch.rand(3, *SHAPE, dtype=torch.float64)
    v = torch.randn(3, *SHAPE, dtype=torch.float64)
    dense, free = tangent_subspace(ae, x), MatrixFreeTangentSubspace(ae, x, tol=1e-10, max_iter=500)
    assert (free.k, free.n, free.name) == (dense.k, dense.n, "tangent")
    assert torch.allclose(free.on(v), dense.on(v), atol=1e-6)
    assert torch.allclose(free.off(v), dense.off(v), atol=1e-6)
    assert bool(free.last_info["converged"].all())


def test_gram_projection_is_exact_where_conjugate_gradients_stall():
    """kappa(J) = 1e5 with a spread spectrum: CG's normal-equation residual looks small long before its
    projection is right; the direct Gram solve is exact to kappa^2 * eps."""
    k = 12
    ae, x, v, exact = ill_conditioned(k)
    gram = GramTangentSubspace(ae, x)
    assert (gram.on(v) - exact).norm() / exact.norm() < 1e-5
    cg = MatrixFreeTangentSubspace(ae, x, tol=1e-4, max_iter=k)  # k iterations: exact in exact arithmetic
    assert (cg.on(v) - exact).norm() / exact.norm() > 1e-3


def test_matrix_free_subspace_logs_every_solve_and_reports_non_convergence():
    torch.manual_seed(0)
    ae, x = SoftplusAE().double().eval(), images(3)
    v = torch.randn(3, *SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    sub = MatrixFreeTangentSubspace(ae, x, tol=1e-10, max_iter=1)
    sub.on(v), sub.off(v)
    summary = sub.solve_summary(3)
    assert not summary["converged"].any() and (summary["residual"] > 1e-10).all()
    assert (
        (summary["solves"] == 2).all() and (summary["iterations"] == 2).all() and (summary["iterations_max"] == 1).all()
    )
    sub.reset()
    sub.max_iter = 500
    v[1] = 0  # a frozen image: nothing solved, nothing logged
    sub.on(v)
    summary = sub.solve_summary(3)
    assert summary["converged"].all() and (summary["residual"] <= 1e-10).all()
    assert summary["solves"].tolist() == [1, 0, 1] and summary["iterations"][1] == 0
    dense = tangent_subspace(ae, x).solve_summary(3)
    assert (dense["residual"] == 0).all() and (dense["iterations"] == 0).all() and dense["converged"].all()


def test_matrix_free_subspace_warm_starts_through_pgd_and_matches_the_dense_attack():
    """pgd_l2 projects the whole batch with zero rows for frozen images: the warm start must survive them, and
    the attack must match the one with the dense basis."""
    from lib.boundary.attacks import pgd_l2
    torch.manual_seed(0)
    ae, x = SoftplusAE().double().eval(), images(4)
    model = nn.Sequential(nn.Flatten(), nn.Linear(N, 3)).double().eval()
    y = model(x).argmax(1)
    dense, free = tangent_subspace(ae, x), MatrixFreeTangentSubspace(ae, x, tol=1e-9, max_iter=200)
    kwargs = dict(eps=5.0, alpha=0.05, steps=60)
    r_dense, r_free = pgd_l2(model, x, y, project=dense.on, **kwargs), pgd_l2(model, x, y, project=free.on, **kwargs)
    summary = free.solve_summary(4)
    assert summary["converged"].all() and r_free.success.any() and not r_free.success.all()
    torch.testing.assert_close(r_free.norm, r_dense.norm, atol=1e-6, rtol=0)
    # warm-started: the later solves are shorter than the first, so the longest is above the average
    assert (summary["iterations_max"] > summary["iterations"] / summary["solves"].clamp_min(1)).all()


def test_bad_parameters_raise_value_errors_naming_them():
    ae, x = make(ConvBNAE), images()
    v = torch.randn(4, *SHAPE, dtype=torch.float64)
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
