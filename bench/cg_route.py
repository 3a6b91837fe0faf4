"""The conjugate-gradient tangent route: P_on v = J a with J^T J a = J^T v solved by CGLS, J never formed.

This is the projection onto an autoencoder's tangent space (lib.geometry.manifold) that needs no memory beyond the
decoder's passes: neither a basis (n x k) nor a Gram matrix (k x k). The report does not use it. CG on the
normal equations needs O(kappa(J)) iterations, and a trained decoder's J is ill-conditioned: on the VGG
autoencoder at 224 x 224 with widths / 8 (k = 3,136, kappa(J) = 3.0e4; bench/bench_projection.py), 1,000
iterations left the projection 52% wrong while the normal-equation residual read 1.4e-2, so an "off-manifold"
attack would leak into the tangent space unseen. Where a basis does not fit, the report projects through the
k x k Gram matrix instead (lib.geometry.manifold.gram_matrix, lib.geometry.subspaces.GramTangentSubspace: exact to
3.3e-6 there). Kept here as the baseline the benchmarks compare with (bench_manifold.py, bench_projection.py), tested in
tests/test_cg_route.py.

  column_scale               a Jacobi (column) preconditioner for J^T J, estimated from vjps
  project_onto_matrix_free   batched CGLS, warm-startable, with an honest residual
  MatrixFreeTangentSubspace  the lib.geometry.subspaces interface (on, off, solve_summary) over it, warm-started per
  image
"""
import torch
from torch.func import jvp, vjp

from lib.geometry.manifold import _require, eval_mode
from lib.infra.runtime import progress as progress_bar
from lib.geometry.subspaces import Subspace, _new_log, _record, _summary


def column_scale(decode, z, probes=8, generator=None):
    """A Jacobi (diagonal) preconditioner for J^T J: 1 / (column norms of J), estimated, shape (B, k).

    diag(J^T J)_i = ||J e_i||^2 = E_w[(J^T w)_i^2] for Rademacher w (Hutchinson), so `probes` vjps
    estimate every column norm at once, J never formed. The estimate is floored at 1e-3 of its mean
    so that a column the probes missed does not get an enormous weight.
    """
    _require(isinstance(probes, int) and probes >= 1, "probes", "an integer >= 1", probes)
    with torch.no_grad():
        x_hat, J_T = vjp(decode, z)
        diag = torch.zeros_like(z)
        for _ in range(probes):
            w = torch.randint(0, 2, x_hat.shape, generator=generator, dtype=torch.int8).to(z) * 2 - 1
            diag += J_T(w)[0] ** 2
        diag = diag / probes
        diag = torch.maximum(diag, 1e-3 * diag.mean(1, keepdim=True))
    return diag.clamp_min(torch.finfo(z.dtype).tiny).rsqrt()


DIVERGED = 100.0  # CGLS stops an image whose residual rose this far above its best (rounding took over)


def project_onto_matrix_free(decode, z, v, tol=1e-6, max_iter=200, progress=False, a0=None, scale=None):
    """P_on v = J a with a = argmin ||J a - v||, i.e. J^T J a = J^T v, solved by conjugate gradients.

    CGLS (CG on the normal equations, in the numerically stable form of Hestenes & Stiefel), batched,
    one independent solve per image; each iteration costs one jvp (J p) and one vjp (J^T r), so memory
    is that of one forward and one backward pass of `decode` (its graph is kept for the vjp).
    CG needs O(kappa(J)) iterations; two ways to need fewer:
      a0     (B, k) a warm start, e.g. the previous PGD step's solution (info["solution"]): it is first
             rescaled by the best c (min ||v - c J a0||), and an image falls back to a = 0 wherever
             that start is worse than a cold one (||J^T r0|| > ||J^T v||).
      scale  (B, k) a right (column) preconditioner D, e.g. `column_scale`: CGLS on J D, a = D y.
    An image stops (its update is frozen) once ||J^T r|| <= tol * ||J^T v||, r = v - J a, whatever
    a0 and scale are; the error of P_on v is then at most ||J^T r|| / sigma_min(J). The residual
    returned is recomputed from the final a (one more vjp), not CGLS's running estimate; a is the
    iterate of lowest running residual, and an image whose residual rises DIVERGED-fold above that
    stops (in float32, asked for more than the attainable accuracy, CGLS diverges). A zero row of v
    gives a = 0 and P_on v = 0 exactly, with 0 iterations and residual 0.

    decode: z (B, k) -> (B, C, H, W), every image independent (put the autoencoder in eval mode);
    z: (B, k); v: (B, C, H, W). Returns (P_on v, info), info = {"iterations": (B,) iterations taken,
    "residual": (B,) final ||J^T r|| / ||J^T v||, "converged": (B,) bool, "solution": (B, k) a}.
    progress: a tqdm bar.
    """
    _require(tol > 0, "tol", "> 0", tol)
    _require(isinstance(max_iter, int) and max_iter >= 1, "max_iter", "an integer >= 1", max_iter)
    _require(z.dim() == 2 and z.shape[0] == v.shape[0], "z", f"of shape (B, k) with B = {v.shape[0]}",
             tuple(z.shape))
    for name, t in (("a0", a0), ("scale", scale)):
        _require(t is None or t.shape == z.shape, name, f"None or of z's shape {tuple(z.shape)}",
                 None if t is None else tuple(t.shape))

    def batch_dot(a, b):  # per-image inner product, shape (B,)
        return (a.flatten(1) * b.flatten(1)).sum(1)

    def per_image(s, like):  # (B,) -> broadcastable against `like`
        return s.view(-1, *[1] * (like.dim() - 1))

    def J(u):
        return jvp(decode, (z,), (u,))[1]

    tiny = torch.finfo(v.dtype).tiny
    D2 = None if scale is None else scale ** 2
    with torch.no_grad():
        x_hat, J_T = vjp(decode, z)  # J_T(w) = (J^T w,): the graph is built once and reused
        _require(x_hat.shape == v.shape, "v", f"of the decoder's output shape {tuple(x_hat.shape)}",
                 tuple(v.shape))
        s = J_T(v)[0]                      # normal-equation residual J^T r at a = 0
        norm0 = batch_dot(s, s).sqrt()
        a, r = torch.zeros_like(z), v.clone()
        if a0 is not None:
            Ja0 = J(a0)
            c = batch_dot(Ja0, v) / batch_dot(Ja0, Ja0).clamp_min(tiny)
            r0 = v - per_image(c, v) * Ja0
            s0 = J_T(r0)[0]
            better = batch_dot(s0, s0).sqrt() < norm0  # else start cold
            a = torch.where(per_image(better, a), per_image(c, a0) * a0, a)
            r = torch.where(per_image(better, r), r0, r)
            s = torch.where(per_image(better, s), s0, s)
        norm0 = norm0.clamp_min(tiny)
        s_pre = s if D2 is None else D2 * s  # D D^T J^T r, the preconditioned direction in a-space
        p = s_pre.clone()
        gamma = batch_dot(s, s_pre)
        residual = batch_dot(s, s).sqrt() / norm0
        best, best_a = residual.clone(), a.clone()  # in float32 CGLS can diverge past its attainable accuracy
        iterations = torch.zeros(v.shape[0], dtype=torch.long, device=v.device)
        active = residual > tol
        for _ in progress_bar(range(max_iter), desc="CG projection", disable=not progress):
            if not active.any():
                break
            q = J(p)
            alpha = torch.where(active, gamma / batch_dot(q, q).clamp_min(tiny), 0)
            a = a + per_image(alpha, a) * p
            r = r - per_image(alpha, r) * q
            s = J_T(r)[0]
            s_pre = s if D2 is None else D2 * s
            gamma_new = batch_dot(s, s_pre)
            beta = torch.where(active, gamma_new / gamma.clamp_min(tiny), 0)
            p = torch.where(per_image(active, p), s_pre + per_image(beta, p) * p, p)
            gamma = torch.where(active, gamma_new, gamma)
            residual = torch.where(active, batch_dot(s, s).sqrt() / norm0, residual)
            iterations += active.long()
            improved = active & (residual < best)
            best, best_a = torch.where(improved, residual, best), torch.where(improved[:, None], a, best_a)
            # ||J^T r|| is not monotone in CGLS, but a 100-fold rise above its best means rounding took over
            active = active & (residual > tol) & (residual < DIVERGED * best)
        a = best_a
        projected = J(a)  # J a, exactly in the column space of J
        # the reported residual is recomputed from r = v - J a: the recursive one drifts in float32 (past the
        # attainable accuracy CGLS can even diverge while it still decreases), and would then claim convergence
        s = J_T(v - projected)[0]
        residual = torch.where(norm0 > tiny, batch_dot(s, s).sqrt() / norm0, 0)
    return projected, {"iterations": iterations, "residual": residual, "converged": residual <= tol,
                       "solution": a}


class MatrixFreeTangentSubspace(Subspace):
    """The tangent space at each image without a basis: on(v) = J a with J^T J a = J^T v, solved by
    conjugate gradients with jvp / vjp (project_onto_matrix_free) at every call: no memory beyond
    the decoder's passes, where neither a basis (n x k) nor a Gram matrix (k x k) fits.

    Successive calls of an attack project nearby vectors (PGD's gradients), so each call is warm-started
    from the previous solution of the same image (`solution`, (B, k)); a zero row of v (a frozen image in
    lib.boundary.attacks.pgd_l2) is projected to exactly zero and leaves that image's solution as it was.
    probes > 0: CG is preconditioned by the Jacobi column scaling of column_scale, estimated
    once per image from `probes` vjps; off by default (VGG autoencoder at ImageNet size: it did not beat plain
    warm-started CGLS). Every solve is logged per image (solve_summary), but mind what the log can say: the
    residual is the normal equations' ||J^T r|| / ||J^T v||, and the projection's error can be kappa(J) times
    larger. Where J is ill-conditioned, as a trained decoder's is, use lib.geometry.subspaces.GramTangentSubspace
    (lib.geometry.subspaces.tangent_subspace does): this class needs the least memory and is exact only for a
    well-conditioned J.
    """

    def __init__(self, ae, x, tol=1e-4, max_iter=100, probes=0, seed=0):
        self.ae, self.tol, self.max_iter = ae, tol, max_iter
        with eval_mode(ae), torch.no_grad():
            self.z = ae.encode(x)
            self.decode = ae.decoder_at(x)
            self.scale = (column_scale(self.decode, self.z, probes, torch.Generator(x.device).manual_seed(seed))
                          if probes else None)
        self.name, self.n, self.k = "tangent", x[0].numel(), ae.latent_dim
        self.reset()

    def reset(self):
        """Forget the warm start and the solve log (e.g. before another attack at the same images)."""
        self.solution, self.last_info = None, None
        self._log = _new_log(self.z.shape[0], self.z.device)

    def on(self, v):
        with eval_mode(self.ae):
            projected, info = project_onto_matrix_free(self.decode, self.z, v, self.tol, self.max_iter,
                                                       a0=self.solution, scale=self.scale)
        solved = v.flatten(1).ne(0).any(1)  # zero rows: frozen images, nothing solved
        keep = solved[:, None]
        self.solution = (
            info["solution"] if self.solution is None else torch.where(keep, info["solution"], self.solution)
        )
        _record(self._log, info, solved)
        self.last_info = info
        return projected

    def solve_summary(self, batch=None):
        """The solve log of every call since construction or reset(): see Subspace.solve_summary."""
        return _summary(self._log, self.z.shape[0], batch)
