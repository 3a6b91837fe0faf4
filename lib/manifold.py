"""Tangent spaces of an autoencoder's decoder, and projections onto them (Shamir et al. 2021, section 4).

At an image x: z = E(x), J = dD/dz at z (an n x k matrix, n = C*H*W), Q = an orthonormal basis of
J's columns. P_on v = Q Q^T v is the part of v along the manifold, P_off v = v - P_on v the rest.

Small k (MNIST 16, CIFAR 128): `tangent_basis` forms J with forward-mode AD and QR-factorises it.
Large k (ImageNet 25,088, where J alone is 15 GB): `project_onto_matrix_free` solves the least-squares
problem min_a ||J a - v|| by conjugate gradients with jvp / vjp and returns P_on v = J a, J never formed.

Every function is batched: v has shape (B, C, H, W), Q shape (B, n, k) (one basis per image) or
(n, k) (one basis shared by all images). Jacobians are taken with the autoencoder in eval mode, so that
BatchNorm uses its running statistics and the images of a batch do not mix.
"""
import warnings
from contextlib import contextmanager

import torch
from torch.func import jvp, vjp, vmap

from lib.runtime import progress as progress_bar


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
    """P_on v = Q Q^T v, per image; Q is (B, n, k) or (n, k) (shared); v (B, C, H, W) -> same shape."""
    _check_basis(v, Q)
    flat = v.flatten(1)
    coefficients = torch.einsum("...nk,...n->...k", Q, flat)
    return torch.einsum("...nk,...k->...n", Q, coefficients).view_as(v)


def project_off(v, Q):
    """P_off v = v - Q Q^T v: the part of v orthogonal to the subspace spanned by Q."""
    return v - project_onto(v, Q)


def energy_share(v, projected):
    """||P v||^2 / ||v||^2 per image: the fraction of v's energy that lies in the subspace; shape (B,)."""
    return projected.flatten(1).pow(2).sum(1) / v.flatten(1).pow(2).sum(1)


def project_onto_matrix_free(decode, z, v, tol=1e-6, max_iter=200, progress=False):
    """P_on v = J a with a = argmin ||J a - v||, i.e. J^T J a = J^T v, solved by conjugate gradients.

    CGLS (CG on the normal equations, in the numerically stable form of Hestenes & Stiefel), batched,
    one independent solve per image; each iteration costs one jvp (J p) and one vjp (J^T r), so memory
    is that of one forward and one backward pass of `decode` (its graph is kept for the vjp). No
    preconditioner: J^T J's condition number is kappa(J)^2 and CG needs O(kappa(J)) iterations, so an
    ill-conditioned decoder may stop at max_iter before the tolerance; `info` says how far it got.
    An image stops (its update is frozen) once ||J^T r|| <= tol * ||J^T v||, r = v - J a; the error of
    P_on v is then at most ||J^T r|| / sigma_min(J), so a small residual means less when J is ill-conditioned.

    decode: z (B, k) -> (B, C, H, W), every image independent (put the autoencoder in eval mode);
    z: (B, k); v: (B, C, H, W). Returns (P_on v, info), info = {"iterations": (B,) iterations taken,
    "residual": (B,) final ||J^T r|| / ||J^T v||, "converged": (B,) bool}. progress: a tqdm bar.
    """
    _require(tol > 0, "tol", "> 0", tol)
    _require(isinstance(max_iter, int) and max_iter >= 1, "max_iter", "an integer >= 1", max_iter)
    _require(z.dim() == 2 and z.shape[0] == v.shape[0], "z", f"of shape (B, k) with B = {v.shape[0]}",
             tuple(z.shape))

    def batch_dot(a, b):  # per-image inner product, shape (B,)
        return (a.flatten(1) * b.flatten(1)).sum(1)

    def per_image(s, like):  # (B,) -> broadcastable against `like`
        return s.view(-1, *[1] * (like.dim() - 1))

    tiny = torch.finfo(v.dtype).tiny
    with torch.no_grad():
        x_hat, J_T = vjp(decode, z)  # J_T(w) = (J^T w,): the graph is built once and reused
        _require(x_hat.shape == v.shape, "v", f"of the decoder's output shape {tuple(x_hat.shape)}",
                 tuple(v.shape))
        a = torch.zeros_like(z)
        r = v.clone()                      # residual v - J a
        s = J_T(r)[0]                      # normal-equation residual J^T r
        p = s.clone()
        gamma = batch_dot(s, s)
        norm0 = gamma.sqrt().clamp_min(tiny)
        iterations = torch.zeros(v.shape[0], dtype=torch.long, device=v.device)
        active = gamma.sqrt() > tol * norm0
        for _ in progress_bar(range(max_iter), desc="CG projection", disable=not progress):
            if not active.any():
                break
            q = jvp(decode, (z,), (p,))[1]  # J p
            alpha = torch.where(active, gamma / batch_dot(q, q).clamp_min(tiny), 0)
            a = a + per_image(alpha, a) * p
            r = r - per_image(alpha, r) * q
            s = J_T(r)[0]
            gamma_new = batch_dot(s, s)
            beta = torch.where(active, gamma_new / gamma.clamp_min(tiny), 0)
            p = torch.where(per_image(active, p), s + per_image(beta, p) * p, p)
            gamma = torch.where(active, gamma_new, gamma)
            iterations += active.long()
            active = active & (gamma.sqrt() > tol * norm0)
        projected = jvp(decode, (z,), (a,))[1]  # J a, exactly in the column space of J
    residual = gamma.sqrt() / norm0
    return projected, {"iterations": iterations, "residual": residual, "converged": residual <= tol}
