"""Tangent spaces of an autoencoder's decoder, and projections onto them (Shamir et al. 2021, section 4).

At an image x: z = E(x), J = dD/dz at z (an n x k matrix, n = C*H*W), Q = an orthonormal basis of
J's columns. P_on v = Q Q^T v is the part of v along the manifold, P_off v = v - P_on v the rest.

Small k (MNIST 16, CIFAR 128): `tangent_basis` forms J with forward-mode AD and QR-factorises it.
Large k (ImageNet 25,088, where J alone is 15 GB): `gram_matrix` forms G = J^T J (k x k) from jvp / vjp
pairs, `gram_solver` factorises it, and `project_onto_gram` returns P_on v = J a with G a = J^T v, J never
formed. (Conjugate gradients would solve the same least-squares problem with no k x k matrix at all, but they
converge only where J is well conditioned, and a trained decoder's is not: bench/cg_route.py keeps that route as
the benchmarks' baseline.)

Every function is batched: v has shape (B, C, H, W), Q shape (B, n, k) (one basis per image) or
(n, k) (one basis shared by all images). Jacobians are taken with the autoencoder in eval mode, so that
BatchNorm uses its running statistics and the images of a batch do not mix.
"""
import warnings
from contextlib import contextmanager

import torch
from torch.func import jvp, vjp, vmap

from lib.infra.runtime import progress as progress_bar


def _require(ok, name, allowed, value):
    if not ok:
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


@contextmanager
def eval_mode(module):
    """Put `module` in eval mode for the block, then restore each submodule's previous mode."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:
            m.training = training


def decoder_jacobian(decode, z):
    """J = dD/dz at z for every image: (B, n, k), one jvp per latent direction e_i, vmapped."""
    k = z.shape[1]
    tangents = torch.eye(k, dtype=z.dtype, device=z.device).unsqueeze(1).expand(k, *z.shape)
    with warnings.catch_warnings():  # MaxUnpool has no vmap rule yet: torch loops over k, and says so
        warnings.filterwarnings("ignore", message=".*have not yet implemented the batching rule.*")
        # torch's forward-AD loads its own jvp decompositions through torch.jit.script, which warns
        # (torch-internal, nothing we call): not the reader's concern
        warnings.filterwarnings("ignore", message=".*torch.jit.script.* is deprecated", category=FutureWarning)
        columns = vmap(lambda u: jvp(decode, (z,), (u,))[1])(tangents)  # (k, B, C, H, W)
    return columns.flatten(2).permute(1, 2, 0)


def tangent_basis(ae, x, chunk_size=64):
    """Q (B, n, k): orthonormal basis of the columns of J = dD/dz at z = E(x), by reduced QR of J.

    J is formed with vmap over jvp (forward mode), which holds about chunk_size * k copies of the
    decoder's activations: the batch is processed chunk_size images at a time. If J is rank-deficient
    (k > rank) the extra columns of Q are arbitrary directions orthogonal to the others.
    """
    _require(isinstance(chunk_size, int) and chunk_size >= 1, "chunk_size", "an integer >= 1", chunk_size)
    _require(x.dim() == 4, "x", "a batch of images of shape (B, C, H, W)", tuple(x.shape))
    bases = []
    with eval_mode(ae), torch.no_grad():
        for xc in x.split(chunk_size):
            z = ae.encode(xc)
            J = decoder_jacobian(ae.decoder_at(xc), z)
            bases.append(torch.linalg.qr(J, mode="reduced").Q)
    return torch.cat(bases)


def _check_basis(v, Q):
    n = v[0].numel()
    ok = Q.dim() == 2 and Q.shape[0] == n or Q.dim() == 3 and Q.shape[:2] == (v.shape[0], n)
    _require(ok, "Q", f"of shape (n, k) or (B, n, k) with B = {v.shape[0]}, n = {n}", tuple(Q.shape))


def project_onto(v, Q):
    """P_on v = Q Q^T v, per image; Q is (B, n, k) or (n, k) (shared); v (B, C, H, W) -> same shape.

    Two batched matrix products on Q as it is stored: memory-bound, 3.3x faster than the einsum that copied a
    per-image Q (B = 1,000, n = 784, k = 16: 8.7 against 29 ms per projection on one core of this CPU)."""
    _check_basis(v, Q)
    coefficients = v.flatten(1).unsqueeze(-2) @ Q       # (B, 1, k)
    return (coefficients @ Q.mT).view_as(v)


def energy_share(v, projected):
    """||P v||^2 / ||v||^2 per image: the fraction of v's energy that lies in the subspace; shape (B,)."""
    return projected.flatten(1).pow(2).sum(1) / v.flatten(1).pow(2).sum(1)


# ---- the Gram route: an exact projection for large k without J --------------------------------------------------

def unit_vectors(start, stop, k, like):
    """e_start .. e_(stop-1) of R^k as rows, (stop - start, k), like's dtype and device (not a slice of a
    k x k identity: at k = 25,088 that is 5 GB)."""
    units = torch.zeros(stop - start, k, dtype=like.dtype, device=like.device)
    units[torch.arange(stop - start), torch.arange(start, stop)] = 1
    return units


def gram_matrix(decode, z, chunk_size=16, progress=False):
    """G = J^T J for every image, (B, k, k) in z's dtype, from k jvp + vjp pairs (chunk_size at a time,
    vmapped): column i is J^T (J e_i). J itself (n x k) is never held: at ImageNet size G is k^2 floats
    (25,088^2 x 8 bytes = 5.0 GB in float64) against J's n k (30 GB in float64, 15 GB in float32).
    Both triangles are filled; they differ by rounding, and gram_solver reads one of them."""
    _require(isinstance(chunk_size, int) and chunk_size >= 1, "chunk_size", "an integer >= 1", chunk_size)
    B, k = z.shape
    G = torch.empty(B, k, k, dtype=z.dtype, device=z.device)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*have not yet implemented the batching rule.*")
        warnings.filterwarnings("ignore", message=".*torch.jit.script.* is deprecated", category=FutureWarning)
        _, J_T = vjp(decode, z)
        column = vmap(lambda u: J_T(jvp(decode, (z,), (u,))[1])[0])  # e_i (as B rows) -> J^T J e_i, (B, k)
        for start in progress_bar(range(0, k, chunk_size), desc="Gram matrix J^T J", disable=not progress):
            stop = min(start + chunk_size, k)
            units = unit_vectors(start, stop, k, z)  # (c, k)
            G[:, :, start:stop] = column(units[:, None, :].expand(-1, B, -1)).permute(1, 2, 0)
    return G


def gram_solver(G, shift=None):
    """A solver for G a = s per image, G = J^T J (B, k, k), by Cholesky, IN PLACE (G's memory becomes the
    factor, and G is lost: at ImageNet size a second k x k matrix would be another 5 GB).
    The diagonal is first raised by shift * the largest diagonal entry (default k * machine epsilon, the
    rcond of numpy's pinv): a latent direction the decoder ignores (a dead ReLU: a zero column of J) or one
    below working precision would make G singular; with the shift it is damped instead, and the projection
    J a is onto J's numerical range (a direction of J with sigma^2 >> shift * max diag is kept to a relative
    error of shift * max diag / sigma^2). Returns solve: s (B, k) -> a (B, k)."""
    k = G.shape[-1]
    shift = k * torch.finfo(G.dtype).eps if shift is None else shift
    diagonal = G.diagonal(dim1=-2, dim2=-1)
    diagonal.add_(shift * diagonal.amax(-1, keepdim=True).clamp_min(torch.finfo(G.dtype).tiny))
    # factorised through its column-major view G^T (the same memory): LAPACK then works in place, where
    # G itself (row-major) would be copied; G^T's lower triangle is G's upper one
    Gt = G.mT
    L, info = torch.linalg.cholesky_ex(Gt, out=(Gt, torch.empty(G.shape[:-2], dtype=torch.int32, device=G.device)))
    if info.any():
        raise RuntimeError(f"J^T J is not positive definite even with a diagonal shift of {shift:g} x its largest "
                           f"entry (images {torch.nonzero(info).flatten().tolist()}): its rounding errors exceed "
                           "the shift; compute it in float64")

    def solve(s):  # L L^T a = s by two triangular solves (cholesky_solve would copy L)
        y = torch.linalg.solve_triangular(L, s[:, :, None], upper=False)
        return torch.linalg.solve_triangular(L.mT, y, upper=True)[:, :, 0]
    return solve


def project_onto_gram(decode, z, v, solve, J_T=None):
    """P_on v = J a with G a = J^T v solved directly (gram_solver): one vjp, two triangular solves, one jvp.
    Returns (P_on v, info), info = {"iterations": (B,) zeros, "residual": (B,) ||J^T r|| / ||J^T v|| recomputed
    from r = v - J a (one more vjp; 0 where J^T v = 0), "solution": (B, k) a}: the residual is a direct solve's
    rounding, about kappa(J)^2 * machine epsilon.
    J_T: the vjp function of decode at z (torch.func.vjp(decode, z)[1]) where the caller keeps one across
    calls, which saves the decoder's forward pass on each; else it is built here."""
    with torch.no_grad():
        if J_T is None:
            _, J_T = vjp(decode, z)
        s = J_T(v)[0]
        a = solve(s)
        projected = jvp(decode, (z,), (a,))[1]
        r = J_T(v - projected)[0]
        norm0 = s.flatten(1).norm(dim=1)
        residual = torch.where(norm0 > 0, r.flatten(1).norm(dim=1) / norm0.clamp_min(torch.finfo(v.dtype).tiny), 0)
    return projected, {"iterations": torch.zeros(v.shape[0], dtype=torch.long, device=v.device),
                       "residual": residual, "solution": a}
