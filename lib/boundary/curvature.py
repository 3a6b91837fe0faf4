"""Curvature of a classifier's decision boundary (Fawzi, Moosavi-Dezfooli, Frossard & Soatto, CVPR 2018).

At a boundary point z between the image's class i and the class j across, F = f_j - f_i (F < 0 on the
image's side, F(z) = 0), n = grad F / ||grad F|| and the shape operator

    G = P H_F P / ||grad F||,   P = I - n n^T,

whose eigenvalues on the n - 1 directions orthogonal to n are the principal curvatures (the normal
curvature along a unit v orthogonal to n is v^T G v). With this sign, the boundary of a ball of class i
(F = ||z||^2 - r^2) has curvature +1/r in every direction.

G is applied through Hessian-vector products, batched over images and vectors:
- ``hvp_autograd``: exact, forward-over-reverse (torch.func.jvp of torch.func.grad), for smooth nets;
- ``hvp_central``: (grad F(z + h v) - grad F(z - h v)) / 2h, for ReLU nets, whose Hessian is zero almost
  everywhere: it measures the bending of the boundary at the scale h. The authors' code takes
  h = sqrt(n) * (pixel range) / 512 (``default_h``), 0.055 for MNIST in [0, 1] pixels. On a ReLU net this
  is not a linear operator (which kinks lie within h of z depends on v): its "spectrum" depends on the
  vectors it is probed with, so a smooth twin (``softplus_twin``, same weights) gives the well-defined one.
Full spectra by vmap-free batching (G applied to the n basis vectors at once) and torch.linalg.eigh where
n is small (MNIST 784); extremes by Lanczos (scipy.sparse.linalg.eigsh on a LinearOperator) where it is not.
Boundary points by DeepFool (Moosavi-Dezfooli, Fawzi & Frossard, CVPR 2016), the crossing then refined by
bisection on the segment x -> x + r so that z lies on the boundary to 2^-30 ||r||.
"""
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import grad, vjp

from lib.boundary.attacks import bisect_crossing

REFINE_STEPS = 30  # bisections after DeepFool: z on the boundary to 2^-30 of the DeepFool step


def _require(ok, name, allowed, value):
    if not ok:
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def default_h(n, pixel_range=1.0):
    """The finite-difference scale of the authors' code: sqrt(n) * pixel_range / 512 (L2 norm of h v, |v| = 1)."""
    return float(np.sqrt(n) * pixel_range / 512)


# ---------------------------------------------------------------- boundary points

def _logit_gradients(model, x, classes):
    """Logits (B, L) and d logit_c / dx for each c in `classes` (a list of (B,) index tensors): (B, len, n)."""
    x = x.detach().requires_grad_(True)
    logits = model(x)
    rows = torch.arange(len(x), device=x.device)
    grads = [torch.autograd.grad(logits[rows, c].sum(), x, retain_graph=True)[0].flatten(1) for c in classes]
    return logits.detach(), torch.stack(grads, 1)


def deepfool(model, x, overshoot=0.02, max_iter=50):
    """Batched DeepFool (L2): returns (x_adv, r, iterations, success), x_adv = x + (1 + overshoot) r.

    Each step linearises every logit difference f_c - f_i around the current point and moves to the
    nearest linearised boundary; an image stops once its label changes. For an affine classifier one
    step reaches the nearest boundary exactly. The model must treat images independently (eval mode)."""
    _require(overshoot >= 0, "overshoot", ">= 0", overshoot)
    _require(isinstance(max_iter, int) and max_iter >= 1, "max_iter", "an integer >= 1", max_iter)
    with torch.no_grad():
        label = model(x).argmax(1)
    L = model(x[:1]).shape[1]
    r = torch.zeros_like(x).flatten(1)
    active = torch.ones(len(x), dtype=torch.bool, device=x.device)
    iterations = torch.zeros(len(x), dtype=torch.long, device=x.device)
    for _ in range(max_iter):
        cur = (x.flatten(1) + (1 + overshoot) * r).view_as(x)
        logits, g = _logit_gradients(model, cur, [torch.full_like(label, c) for c in range(L)])
        active &= logits.argmax(1) == label
        if not active.any():
            break
        rows = torch.arange(len(x), device=x.device)
        f = logits - logits[rows, label][:, None]                   # (B, L)
        w = g - g[rows, label][:, None]                             # (B, L, n)
        dist = f.abs() / w.norm(dim=2).clamp_min(1e-12)
        dist[rows, label] = float("inf")
        c = dist.argmin(1)
        wc = w[rows, c]
        step = (dist[rows, c] + 1e-4)[:, None] * wc / wc.norm(dim=1, keepdim=True).clamp_min(1e-12)
        r = torch.where(active[:, None], r + step, r)
        iterations += active.long()
    x_adv = (x.flatten(1) + (1 + overshoot) * r).view_as(x).detach()
    with torch.no_grad():
        success = model(x_adv).argmax(1) != label
    return x_adv, r.view_as(x).detach(), iterations, success


@dataclass
class BoundaryPoints:
    """Boundary points z of a batch: the classes i (image side) and j (across), the perturbation r = z - x."""

    x: torch.Tensor
    z: torch.Tensor
    i: torch.Tensor
    j: torch.Tensor
    success: torch.Tensor

    @property
    def r(self):
        return self.z - self.x


def boundary_points(model, x, overshoot=0.02, max_iter=50):
    """DeepFool, then the crossing refined by bisection: z on the boundary between i = pred(x) and j."""
    with torch.no_grad():
        label = model(x).argmax(1)
    x_adv, _, _, success = deepfool(model, x, overshoot, max_iter)
    with torch.no_grad():
        z, j = bisect_crossing(model, x, x_adv, label, model(x_adv).argmax(1), REFINE_STEPS)
    return BoundaryPoints(x, z, label, j, success)


# ---------------------------------------------------------------- F, its gradient and Hessian-vector products

def boundary_function(model, i, j):
    """F(z) = f_j(z) - f_i(z) per row: z (N, n) flat -> (N,); i, j (N,) class indices."""
    rows = torch.arange(len(i), device=i.device)

    def F(z, shape):
        logits = model(z.view(len(z), *shape))
        return logits[rows[:len(z)], j] - logits[rows[:len(z)], i]
    return F


def grad_F(model, z, i, j):
    """grad F at z: z (N, C, H, W), i, j (N,) -> (N, n) (rows independent: eval mode)."""
    shape = z.shape[1:]
    zf = z.detach().flatten(1).requires_grad_(True)
    with torch.enable_grad():
        out = boundary_function(model, i, j)(zf, shape)
        return torch.autograd.grad(out.sum(), zf)[0].detach()


def _repeat(t, m):
    return t.repeat_interleave(m, 0)


def hvp_autograd(model, z, i, j, V):
    """H_F(z) v for every image and vector, exactly: reverse-over-reverse (torch.func.vjp of torch.func.grad; on CPU
    about 1.4x faster than forward-over-reverse, jvp of grad, for the MLP).

    z (B, C, H, W); i, j (B,); V (B, m, n) -> (B, m, n). The Hessian of a ReLU net is 0 almost everywhere:
    use this on smooth nets (e.g. ``softplus_twin``)."""
    B, m, n = V.shape
    shape = z.shape[1:]
    zs, ii, jj = _repeat(z.detach().flatten(1), m), _repeat(i, m), _repeat(j, m)
    F = boundary_function(model, ii, jj)
    _, grad_vjp = vjp(grad(lambda zz: F(zz, shape).sum()), zs)
    return grad_vjp(V.reshape(B * m, n))[0].view(B, m, n).detach()


def hvp_central(model, z, i, j, V, h):
    """(grad F(z + h v) - grad F(z - h v)) / 2h for every image and vector: (B, m, n); V (B, m, n) unit rows.

    Exact for a quadratic F at any h; for a ReLU net the average bending of the boundary over a ball of radius h."""
    _require(h > 0, "h", "> 0", h)
    B, m, n = V.shape
    shape = z.shape[1:]
    zs, ii, jj = _repeat(z.detach().flatten(1), m), _repeat(i, m), _repeat(j, m)
    Vf = V.reshape(B * m, n)
    pts = torch.cat([zs + h * Vf, zs - h * Vf]).view(2 * B * m, *shape)
    g = grad_F(model, pts, torch.cat([ii, ii]), torch.cat([jj, jj]))
    return ((g[:B * m] - g[B * m:]) / (2 * h)).view(B, m, n)


class ShapeOperator:
    """G = P H_F P / ||grad F|| at the boundary points z of a batch, applied to vectors by HVPs.

    h: None for the exact HVP (smooth nets), else the central-difference scale. chunk: vectors per call
    (memory: the HVP runs on B * chunk rows at once)."""

    def __init__(self, model, z, i, j, h=None, chunk=128):
        self.model, self.z, self.i, self.j, self.h, self.chunk = model, z.detach(), i, j, h, chunk
        g = grad_F(model, self.z, i, j)
        self.grad_norm = g.norm(dim=1)                       # (B,)
        self.normal = g / self.grad_norm[:, None]            # (B, n)
        self.B, self.n = g.shape

    def project(self, V):
        """P v = v - n (n^T v): V (B, m, n)."""
        return V - torch.einsum("bm,bn->bmn", torch.einsum("bmn,bn->bm", V, self.normal), self.normal)

    def hvp(self, V):
        if self.h is None:
            return hvp_autograd(self.model, self.z, self.i, self.j, V)
        # central differences along unit directions, rescaled: H v = ||v|| H (v / ||v||)
        norms = V.norm(dim=2, keepdim=True).clamp_min(1e-30)
        return hvp_central(self.model, self.z, self.i, self.j, V / norms, self.h) * norms

    def apply(self, V):
        """G V for V (B, m, n), in chunks of vectors."""
        out = [self.project(self.hvp(self.project(c)).detach()) for c in V.split(self.chunk, dim=1)]
        return torch.cat(out, 1) / self.grad_norm[:, None, None]

    def dense(self, basis=None):
        """G as a (B, n, n) matrix, symmetrised (a finite-difference G is symmetric only to O(h^2)).

        basis: None probes G with the pixel basis e_1..e_n; an orthonormal (n, n) U probes it with U's columns
        and returns U (U^T G U) U^T. The two agree for an exact HVP. A central difference on a ReLU net is not
        linear in v (which kinks lie within h depends on v), so there the probe basis matters: a random basis
        treats every direction alike, as Lanczos with random starting vectors does."""
        if basis is None:  # rows G e_k: G itself, up to the transpose the symmetrisation removes
            A = self.apply(torch.eye(self.n, dtype=self.z.dtype, device=self.z.device).expand(self.B, self.n, self.n))
            return (A + A.transpose(1, 2)) / 2
        U = basis.to(self.z.dtype)
        A = self.apply(U.T.expand(self.B, self.n, self.n)) @ U  # A[k, l] = u_l^T G u_k
        return U @ ((A + A.transpose(1, 2)) / 2) @ U.T

    def restricted(self, Q):
        """Q^T G Q for orthonormal bases Q (B, n, k) or (n, k): the shape operator seen inside span(Q)."""
        Q = Q.expand(self.B, *Q.shape[-2:]) if Q.dim() == 2 else Q
        GQ = self.apply(Q.transpose(1, 2).contiguous())     # (B, k, n): rows G q_c
        A = torch.einsum("bcn,bnd->bcd", GQ, Q)
        return (A + A.transpose(1, 2)) / 2


def principal_curvatures(G, normal, vectors=True):
    """The principal curvatures of G (B, n, n): its eigenvalues without the normal's (G n = 0), ascending, (B, n-1);
    and with vectors=True their directions (B, n, n-1), else None.

    vectors=True: eigh of G, dropping the eigenvector most aligned with n. vectors=False: eigenvalues only, of G
    deflated exactly: a Householder reflection H maps n to e_1, and H G H without its first row and column is G on the
    complement of n (a rank-2 update, O(n^2)); eigvalsh costs a fraction of eigh. Both in float64."""
    dtype = G.dtype
    G, normal = G.double(), normal.double()
    B, n, _ = G.shape
    if not vectors:
        e1 = torch.zeros_like(normal)
        e1[:, 0] = 1
        w = torch.nn.functional.normalize(normal - e1, dim=1)  # H = I - 2 w w^T, H n = e_1
        Gw = torch.einsum("bkl,bl->bk", G, w)
        wGw = (w * Gw).sum(1)
        HGH = (G - 2 * torch.einsum("bk,bl->bkl", w, Gw) - 2 * torch.einsum("bk,bl->bkl", Gw, w)
               + 4 * wGw[:, None, None] * torch.einsum("bk,bl->bkl", w, w))
        return torch.linalg.eigvalsh(HGH[:, 1:, 1:]).to(dtype), None
    evals, evecs = torch.linalg.eigh(G)
    drop = torch.einsum("bnk,bn->bk", evecs, normal).abs().argmax(1)
    keep = torch.ones_like(evals, dtype=torch.bool)
    keep[torch.arange(B), drop] = False
    return (evals[keep].view(B, n - 1).to(dtype),
            evecs.transpose(1, 2)[keep].view(B, n - 1, n).transpose(1, 2).to(dtype))


def spectrum(model, bp, h=None, chunk=128, basis=None, vectors=True):
    """Principal curvatures (B, n-1), ascending, and their directions (B, n, n-1) (None with vectors=False), at
    boundary points bp, and the ShapeOperator. basis: the probe basis of ``ShapeOperator.dense`` (None: pixels)."""
    op = ShapeOperator(model, bp.z, bp.i, bp.j, h, chunk)
    return principal_curvatures(op.dense(basis), op.normal, vectors), op


def lanczos_extremes(op, b, k=20, which="BE", tol=1e-6):
    """The k extreme principal curvatures of image b by Lanczos (ARPACK through scipy.sparse.linalg.eigsh on a
    LinearOperator whose matvec is one HVP): "BE" half from each end, "LM" largest magnitude. Sorted ascending."""
    from scipy.sparse.linalg import ArpackError, LinearOperator, eigsh

    sl = slice(b, b + 1)
    sub = ShapeOperator.__new__(ShapeOperator)
    sub.__dict__.update(op.__dict__, z=op.z[sl], i=op.i[sl], j=op.j[sl], grad_norm=op.grad_norm[sl],
                        normal=op.normal[sl], B=1)
    dtype = op.z.dtype

    def matvec(v):
        V = torch.as_tensor(np.asarray(v).ravel(), dtype=dtype, device=op.z.device).view(1, 1, -1)
        return sub.apply(V).view(-1).double().cpu().numpy()

    A = LinearOperator((op.n, op.n), matvec=matvec, dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(op.n)
    if not np.any(matvec(v0)):  # a ReLU net probed at a scale h that crosses no kink: G v = 0, ARPACK cannot start
        return np.zeros(k)
    try:
        return np.sort(eigsh(A, k=k, which=which, tol=tol, v0=v0, return_eigenvectors=False))
    except ArpackError:  # the Krylov space collapsed to the (exactly zero) null space of a piecewise-linear net
        return np.zeros(k)


# ---------------------------------------------------------------- subspaces and the normal

def random_bases(B, n, k, generator=None, dtype=torch.float32):
    """B independent uniformly random orthonormal bases (B, n, k): QR of Gaussian matrices, sign-fixed."""
    A = torch.randn(B, n, k, generator=generator, dtype=torch.float64)
    Q, R = torch.linalg.qr(A)
    return (Q * torch.sign(torch.diagonal(R, dim1=1, dim2=2))[:, None, :]).to(dtype)


def subspace_curvature(op, Q):
    """Per image, the shape operator restricted to span(Q): mean curvature tr(A)/k, RMS curvature ||A||_F/sqrt(k),
    and the extreme eigenvalues of A = Q^T G Q. Returns a dict of (B,) tensors."""
    A = op.restricted(Q)
    k = A.shape[-1]
    ev = torch.linalg.eigvalsh(A)
    return {"mean": ev.mean(1), "rms": A.flatten(1).norm(dim=1) / np.sqrt(k), "min": ev[:, 0], "max": ev[:, -1]}


def normal_share(normal, Q):
    """||Q^T n|| per image (n unit): the normal's share in span(Q); sqrt(k/n) on average for a random subspace."""
    Q = Q.expand(len(normal), *Q.shape[-2:]) if Q.dim() == 2 else Q
    return torch.einsum("bnk,bn->bk", Q, normal).norm(dim=1)


# ---------------------------------------------------------------- a smooth twin of a ReLU net

def softplus_twin(model, beta=10.0):
    """A copy of `model` with every ReLU replaced by Softplus(beta) (same weights; softplus -> ReLU as beta -> inf),
    in eval mode: a network with a Hessian, to check the finite-difference curvatures of the ReLU net."""
    import copy

    twin = copy.deepcopy(model).eval()
    for name, module in list(twin.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(module, child_name, nn.Softplus(beta=beta))
    return twin
