"""lib.boundary.curvature: each quantity computed two independent ways (closed form, or another algorithm)."""
import numpy as np
import pytest
import torch
from torch import nn

from lib.boundary import curvature as cv


class Quadric(nn.Module):
    """Two logits [1 - sum a_k x_k^2, 0]: class 0 inside the ellipsoid sum a_k x_k^2 = 1, so F = f_1 - f_0 =
    sum a_k x_k^2 - 1 for an image inside. Input (B, 1, 1, n)."""

    def __init__(self, a):
        super().__init__()
        self.register_buffer("a", torch.as_tensor(a, dtype=torch.float64))

    def forward(self, x):
        q = (self.a * x.flatten(1) ** 2).sum(1)
        return torch.stack([1 - q, torch.zeros_like(q)], 1)


def vertex(a, n):
    """The boundary point on the first axis, z = e_1 / sqrt(a_1), as (1, 1, 1, n), with i = 0, j = 1."""
    z = torch.zeros(1, 1, 1, n, dtype=torch.float64)
    z[..., 0] = 1 / np.sqrt(a[0])
    return z, torch.tensor([0]), torch.tensor([1])


@pytest.mark.parametrize("h", [None, 0.05])
def test_sphere_has_curvature_one_over_r(h):
    n, r = 12, 2.0
    a = np.full(n, 1 / r**2)
    z, i, j = vertex(a, n)
    op = cv.ShapeOperator(Quadric(a), z, i, j, h=h)
    kappa, _ = cv.principal_curvatures(op.dense(), op.normal)
    assert kappa.shape == (1, n - 1)
    np.testing.assert_allclose(kappa.numpy(), 1 / r, rtol=1e-6)


def test_ellipsoid_vertex_matches_closed_form():
    """At z = e_1 / sqrt(a_1): grad F = 2 sqrt(a_1) e_1, H = 2 diag(a), so the principal curvatures are
    a_k / sqrt(a_1), k >= 2 (both signs: a hyperboloid when some a_k < 0)."""
    rng = np.random.default_rng(0)
    n = 10
    a = np.concatenate([[0.7], rng.uniform(-2, 3, n - 1)])
    z, i, j = vertex(a, n)
    for h in (None, 0.1):  # central differences are exact for a quadratic at any h
        kappa, dirs = cv.spectrum(Quadric(a), cv.BoundaryPoints(z, z, i, j, torch.tensor([True])), h=h)[0]
        np.testing.assert_allclose(kappa[0].numpy(), np.sort(a[1:] / np.sqrt(a[0])), rtol=1e-6, atol=1e-9)
        assert dirs[0, 0].abs().max() < 1e-6  # no principal direction has a normal component


def test_lanczos_extremes_match_full_eigendecomposition():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(50, 32), nn.Softplus(beta=3), nn.Linear(32, 4)).double().eval()
    x = torch.randn(2, 1, 1, 50, dtype=torch.float64)
    bp = cv.boundary_points(net, x)
    assert bp.success.all()
    (kappa, _), op = cv.spectrum(net, bp)
    for b in range(2):
        ext = cv.lanczos_extremes(op, b, k=6, which="BE")
        full = kappa[b].numpy()
        np.testing.assert_allclose(ext, np.concatenate([full[:3], full[-3:]]), rtol=1e-6, atol=1e-9)


def test_central_difference_hvp_matches_autograd_on_a_smooth_net():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Flatten(), nn.Linear(30, 20), nn.Tanh(), nn.Linear(20, 3)).double().eval()
    z = torch.randn(3, 1, 5, 6, dtype=torch.float64)
    i, j = torch.tensor([0, 1, 2]), torch.tensor([1, 2, 0])
    V = torch.nn.functional.normalize(torch.randn(3, 4, 30, dtype=torch.float64), dim=2)
    exact = cv.hvp_autograd(net, z, i, j, V)
    for h, tol in ((1e-2, 1e-3), (1e-3, 1e-5)):  # error O(h^2)
        approx = cv.hvp_central(net, z, i, j, V, h)
        assert (approx - exact).norm() / exact.norm() < tol


def test_autograd_hvp_matches_dense_hessian():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Flatten(), nn.Linear(8, 6), nn.Softplus(), nn.Linear(6, 3)).double().eval()
    z = torch.randn(1, 1, 1, 8, dtype=torch.float64)
    H = torch.autograd.functional.hessian(lambda v: (lambda o: o[0, 2] - o[0, 0])(net(v.view(1, 1, 1, 8))), z.flatten())
    HV = cv.hvp_autograd(net, z, torch.tensor([0]), torch.tensor([2]), torch.eye(8, dtype=torch.float64)[None])
    torch.testing.assert_close(HV[0], H)


def test_deepfool_finds_the_distance_to_a_linear_boundary():
    torch.manual_seed(3)
    n = 20
    lin = nn.Sequential(nn.Flatten(), nn.Linear(n, 2)).double().eval()
    x = torch.randn(16, 1, 1, n, dtype=torch.float64)
    w = lin[1].weight[1] - lin[1].weight[0]
    b = lin[1].bias[1] - lin[1].bias[0]
    distance = (x.flatten(1) @ w + b).abs() / w.norm()
    _, r, iterations, success = cv.deepfool(lin, x, overshoot=0.0)
    assert success.all() and (iterations == 1).all()
    torch.testing.assert_close(r.flatten(1).norm(dim=1), distance.detach(), atol=2e-4, rtol=0)
    bp = cv.boundary_points(lin, x)
    torch.testing.assert_close(bp.r.flatten(1).norm(dim=1), distance.detach(), atol=1e-6, rtol=0)
    assert (bp.i != bp.j).all()


def test_deepfool_multiclass_reaches_the_nearest_of_several_hyperplanes():
    """An affine multiclass classifier: the distance to class c's region boundary is |f_c - f_i| / ||w_c - w_i||;
    DeepFool (one step) goes to the nearest one."""
    torch.manual_seed(4)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(10, 5)).double().eval()
    x = torch.randn(32, 1, 1, 10, dtype=torch.float64)
    with torch.no_grad():
        f = lin(x)
    i = f.argmax(1)
    W, rows = lin[1].weight, torch.arange(32)
    d = (f - f[rows, i][:, None]).abs() / (W[None] - W[i][:, None]).norm(dim=2)
    d[rows, i] = float("inf")
    bp = cv.boundary_points(lin, x)
    assert bp.success.all()
    torch.testing.assert_close(bp.r.flatten(1).norm(dim=1), d.min(1).values.detach(), atol=1e-5, rtol=0)


def test_subspace_curvature_and_normal_share():
    n, r = 9, 0.5
    a = np.full(n, 1 / r**2)
    z, i, j = vertex(a, n)
    op = cv.ShapeOperator(Quadric(a), z, i, j)
    Q = torch.eye(n, dtype=torch.float64)[:, 1:4]  # inside the boundary's tangent plane
    s = cv.subspace_curvature(op, Q)
    for key in ("mean", "rms", "min", "max"):
        assert abs(float(s[key][0]) - 1 / r) < 1e-9
    assert float(cv.normal_share(op.normal, Q)[0]) < 1e-12
    assert abs(float(cv.normal_share(op.normal, torch.eye(n, dtype=torch.float64)[:, :2])[0]) - 1) < 1e-12


def test_random_bases_are_orthonormal_and_share_is_sqrt_k_over_n():
    g = torch.Generator().manual_seed(0)
    Q = cv.random_bases(400, 100, 9, g, dtype=torch.float64)
    torch.testing.assert_close(Q.transpose(1, 2) @ Q, torch.eye(9, dtype=torch.float64).expand(400, 9, 9))
    normal = torch.nn.functional.normalize(torch.randn(400, 100, generator=g, dtype=torch.float64), dim=1)
    share2 = cv.normal_share(normal, Q) ** 2  # Beta(k/2, (n-k)/2): mean k/n
    assert abs(float(share2.mean()) - 0.09) < 0.01


def test_softplus_twin_keeps_the_weights_and_approaches_relu():
    torch.manual_seed(5)
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2)).eval()
    twin = cv.softplus_twin(net, beta=1000.0)
    assert isinstance(twin[2], nn.Softplus) and isinstance(net[2], nn.ReLU)
    x = torch.randn(4, 1, 1, 6)
    torch.testing.assert_close(twin(x), net(x), atol=5e-3, rtol=0)


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="h"):
        cv.hvp_central(None, torch.zeros(1, 1, 1, 2), torch.tensor([0]), torch.tensor([1]), torch.zeros(1, 1, 2), 0.0)
    with pytest.raises(ValueError, match="overshoot"):
        cv.deepfool(None, torch.zeros(1, 2), overshoot=-1)


def test_eigenvalues_without_vectors_match_eigh_and_drop_only_the_normal():
    """The Householder deflation (vectors=False) gives the same n-1 principal curvatures as eigh minus the normal's."""
    torch.manual_seed(6)
    net = nn.Sequential(nn.Flatten(), nn.Linear(40, 16), nn.Softplus(beta=2), nn.Linear(16, 3)).double().eval()
    bp = cv.boundary_points(net, torch.randn(3, 1, 1, 40, dtype=torch.float64))
    (with_vectors, _), op = cv.spectrum(net, bp)
    only, none = cv.principal_curvatures(op.dense(), op.normal, vectors=False)
    assert none is None
    torch.testing.assert_close(only, with_vectors, atol=1e-10, rtol=0)
