"""The k-dimensional subspaces an attack can be confined to (the learned tangent space and its controls).

Every subspace has the same small interface: `.name`, `.k`, `.n` (the input dimension C*H*W),
`.on(v)` (the orthogonal projection onto the subspace) and `.off(v) = v - .on(v)`, for v of shape
(B, C, H, W). A subspace is either one per image (tangent, coordinate, random) or shared (PCA).

  tangent     the autoencoder's tangent space at each image: span of J = dD/dz (lib.geometry.manifold)
  coordinate  k of the n coordinates (pixel values, one per channel), chosen at random per image
  random      span of an n x k Gaussian matrix (orthonormalised by QR), per image or shared
              (per-image draws come from the seed and the image's id, not its place in a batch)
  pca         the top-k principal directions of a set of training images, shared

The controls exist because confining an attack to ANY k-dimensional subspace lengthens it by about
sqrt(n/k); only the difference between the tangent space and these says something about the manifold.
Note the memory: a basis is n x k floats per image (ImageNet k = 25,088: 15 GB), so at ImageNet
size the tangent space is projected through its k x k Gram matrix (GramTangentSubspace, 5.0 GB per image),
one image at a time, and the coordinate subspace stores only a mask.
"""
import copy
import hashlib

import torch
from torch.func import vjp

from lib.infra.names import SUBSPACES
from lib.geometry.manifold import eval_mode, gram_matrix, gram_solver, project_onto, project_onto_gram, tangent_basis

KINDS = SUBSPACES  # the subspaces a basis can be built for


def _check_k(k, n):
    if not (isinstance(k, int) and 1 <= k <= n - 1):
        raise ValueError(f"k must be an integer in 1..{n - 1} (n = {n}), got {k!r}")


class Subspace:
    """Base: subclasses set name, k, n and define on(v); off(v) is the complement v - on(v)."""

    name, k, n = "subspace", 0, 0

    def on(self, v):
        raise NotImplementedError

    def off(self, v):
        return v - self.on(v)

    def solve_summary(self, batch):
        """How exact the projections were, per image: {"residual": max relative residual, "iterations":
        total solver iterations, "iterations_max", "solves", "converged": all within tolerance}, each (batch,).
        A basis or mask projects exactly: residual 0, no iterations; GramTangentSubspace overrides."""
        zeros = torch.zeros(batch, dtype=torch.long)
        return {"residual": torch.zeros(batch), "iterations": zeros, "iterations_max": zeros, "solves": zeros,
                "converged": torch.ones(batch, dtype=torch.bool)}

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, k={self.k}, n={self.n})"


class BasisSubspace(Subspace):
    """Span of the orthonormal columns of Q: (n, k) shared, or (B, n, k) one per image. on(v) = Q Q^T v."""

    def __init__(self, Q, name="basis"):
        self.Q, self.name = Q, name
        self.n, self.k = Q.shape[-2], Q.shape[-1]

    def on(self, v):
        return project_onto(v, self.Q)


class TangentSubspace(BasisSubspace):
    """The autoencoder's tangent space at each image, from Q = lib.geometry.manifold.tangent_basis(ae, x)."""

    def __init__(self, Q):
        super().__init__(Q, name="tangent")


class GramTangentSubspace(Subspace):
    """The tangent space at each image, projected exactly without J: G = J^T J (k x k,
    lib.geometry.manifold.gram_matrix, k jvp + vjp pairs per image) is factorised once (Cholesky); each on(v) then costs
    one vjp, two triangular solves and one jvp, plus one vjp for the residual it logs. For large k, where a basis (n x
    k) does not fit: at ImageNet size G is 5.0 GB per image in float64, a basis 15 GB in float32.

    Why not conjugate gradients (bench/cg_route.py): a trained decoder's J is ill-conditioned, and CG on
    the normal equations then needs far more than k iterations. bench/bench_projection.py, VGG autoencoder at
    224 x 224 with widths / 8 (k = 3,136), briefly trained: kappa(J) = 3.0e4; after 1,000 CG iterations the
    projection was still 52% wrong while the normal-equation residual read 1.4e-2; this class: 3.3e-6.
    dtype: the precision of G and of the projection's jvp / vjp (the autoencoder is copied into it); float64
    by default, because forming J^T J squares the condition number (kappa(J)^2 * epsilon: 1e-7 in float64 at
    kappa = 3e4, above 1 in float32). Where G is singular to working precision (a latent direction the
    decoder ignores) the projection is onto J's numerical range (lib.geometry.manifold.gram_solver damps it).
    """

    def __init__(self, ae, x, dtype=torch.float64, tol=1e-4, chunk_size=16, progress=False):
        self.tol, self.dtype = tol, dtype
        floats = [t for t in (*ae.parameters(), *ae.buffers()) if t.is_floating_point()]
        self.ae = ae if all(t.dtype == dtype for t in floats) else copy.deepcopy(ae).to(dtype)
        with eval_mode(self.ae), torch.no_grad():
            xw = x.to(dtype)
            self.z = self.ae.encode(xw)
            self.decode = self.ae.decoder_at(xw)
            G = gram_matrix(self.decode, self.z, chunk_size, progress)
            _, self.J_T = vjp(self.decode, self.z)  # kept: every on(v) reuses the decoder's forward pass
        self.solve = gram_solver(G)
        self.name, self.n, self.k = "tangent", x[0].numel(), ae.latent_dim
        self.reset()

    def reset(self):
        """Forget the solve log."""
        self.last_info = None
        self._log = _new_log(self.z.shape[0], self.z.device)

    def on(self, v):
        with eval_mode(self.ae):
            projected, info = project_onto_gram(self.decode, self.z, v.to(self.dtype), self.solve, self.J_T)
        info["converged"] = info["residual"] <= self.tol
        _record(self._log, info, v.flatten(1).ne(0).any(1))
        self.last_info = info
        return projected.to(v.dtype)

    def solve_summary(self, batch=None):
        """The solve log of every call since construction or reset(): see Subspace.solve_summary."""
        return _summary(self._log, self.z.shape[0], batch)


def _new_log(batch, device):
    return {"residual": torch.zeros(batch, device=device),
            "iterations": torch.zeros(batch, dtype=torch.long, device=device),
            "iterations_max": torch.zeros(batch, dtype=torch.long, device=device),
            "solves": torch.zeros(batch, dtype=torch.long, device=device),
            "converged": torch.ones(batch, dtype=torch.bool, device=device)}


def _record(log, info, solved):
    """Add one call's solves (info from lib.geometry.manifold's projections) to the per-image log; solved: (B,) bool."""
    log["residual"] = torch.maximum(log["residual"], info["residual"].to(log["residual"].dtype))
    log["iterations"] += info["iterations"]
    log["iterations_max"] = torch.maximum(log["iterations_max"], info["iterations"])
    log["solves"] += solved.long()
    log["converged"] &= info["converged"]


def _summary(log, images, batch):
    if batch is not None and batch != images:
        raise ValueError(f"batch must be the subspace's {images} images, got {batch!r}")
    return {name: t.detach().cpu().clone() for name, t in log.items()}


MAX_BASIS_BYTES = 2**31  # dense bases (n x k per image) up to 2 GiB at once: MNIST and CIFAR-10
MAX_GRAM_BYTES = 2**33   # else Gram matrices (k x k float64 per image) up to 8 GiB at once: ImageNet, one image


def tangent_route(k, x, max_basis_bytes=None, max_gram_bytes=None):
    """How a k-dimensional tangent space at images like x is projected, and how many images fit at once:
    ("basis", m) where a QR basis per image fits max_basis_bytes (m of them), else ("gram", m) where a float64
    Gram matrix per image fits max_gram_bytes (None: MAX_BASIS_BYTES, MAX_GRAM_BYTES). Raises ValueError where
    neither fits one image."""
    max_basis_bytes = MAX_BASIS_BYTES if max_basis_bytes is None else max_basis_bytes
    max_gram_bytes = MAX_GRAM_BYTES if max_gram_bytes is None else max_gram_bytes
    n = x[0].numel()
    per_basis, per_gram = n * k * x.element_size(), k * k * 8
    if per_basis <= max_basis_bytes:
        return "basis", max_basis_bytes // per_basis
    if per_gram <= max_gram_bytes:
        return "gram", max_gram_bytes // per_gram
    raise ValueError(f"max_gram_bytes must hold one k x k float64 Gram matrix ({per_gram / 2**30:.1f} GiB for "
                     f"k = {k}), got {max_gram_bytes}")


def images_at_once(kind, k, x):
    """How many of the images x can have their subspaces of this kind in memory at once: the tangent route's
    count (tangent_route), as many n x k random bases as fit in MAX_BASIS_BYTES but at least one (ImageNet:
    15 GB for one image), every image for coordinate masks and the shared PCA basis."""
    if kind == "tangent":
        return tangent_route(k, x)[1]
    if kind == "random":
        return max(1, MAX_BASIS_BYTES // (x[0].numel() * k * x.element_size()))
    return len(x)


def tangent_subspace(ae, x, chunk_size=64, max_basis_bytes=None, max_gram_bytes=None):
    """The tangent space of `ae` at the images x (B, C, H, W); k = ae.latent_dim, by `tangent_route`:
    a dense TangentSubspace (bases by QR) when the B bases fit in max_basis_bytes, else a GramTangentSubspace
    (ImageNet: one basis is 150,528 x 25,088 floats, 15 GB; its Gram matrix 5.0 GB in float64). More images
    than fit at once raise ValueError: attack them in groups (lib.experiments.shards does)."""
    route, at_once = tangent_route(ae.latent_dim, x, max_basis_bytes, max_gram_bytes)
    if x.shape[0] > at_once:
        raise ValueError(f"x must hold at most {at_once} images for the {route} route of a k = {ae.latent_dim} "
                         f"tangent space, got {x.shape[0]}: attack them in groups")
    if route == "gram":  # minutes per image on a GPU, hours on a CPU: a progress bar over the k columns of G
        return GramTangentSubspace(ae, x, progress=True)
    return TangentSubspace(tangent_basis(ae, x, chunk_size=chunk_size))


def image_generator(seed, image_id):
    """A torch.Generator for one image's random subspace, seeded from (seed, image_id) alone: an image gets
    the same subspace whatever batch (or shard of a distributed run) it is attacked in."""
    digest = hashlib.sha256(f"{int(seed)}:{int(image_id)}".encode()).hexdigest()
    return torch.Generator().manual_seed(int(digest[:15], 16))


def _image_ids(batch, ids):
    """The ids the per-image draws are seeded with: `ids` (one per image), else 0..batch-1."""
    ids = list(range(batch)) if ids is None else [int(i) for i in ids]
    if batch is not None and len(ids) != batch:
        raise ValueError(f"ids must hold one id per image ({batch}), got {len(ids)}")
    return ids


class CoordinateSubspace(Subspace):
    """k of the n coordinates, chosen uniformly at random per image: on keeps them, off zeroes them.
    Image i's coordinates are drawn from image_generator(seed, ids[i]) (ids default to 0..batch-1)."""

    def __init__(self, n, k, batch, seed=0, device=None, ids=None):
        _check_k(k, n)
        chosen = torch.stack([torch.rand(n, generator=image_generator(seed, i)).argsort()[:k]
                              for i in _image_ids(batch, ids)])
        self.mask = torch.zeros(len(chosen), n, dtype=torch.bool).scatter_(1, chosen, True).to(device)
        self.name, self.n, self.k = "coordinate", n, k

    def on(self, v):
        return v * self.mask.view_as(v).to(v.dtype)


class RandomSubspace(BasisSubspace):
    """Span of an n x k standard Gaussian matrix, orthonormalised by QR (uniform on the Grassmannian).

    batch=None: one subspace shared by all images, Q (n, k), drawn with `seed`; else one per image,
    Q (batch, n, k), image i's drawn from image_generator(seed, ids[i]) (ids default to 0..batch-1).
    """

    def __init__(self, n, k, batch=None, seed=0, dtype=torch.float32, device=None, ids=None):
        _check_k(k, n)
        if batch is None and ids is None:
            gaussian = torch.randn(n, k, generator=torch.Generator().manual_seed(seed), dtype=dtype)
        else:
            gaussian = torch.stack([torch.randn(n, k, generator=image_generator(seed, i), dtype=dtype)
                                    for i in _image_ids(batch, ids)])
        super().__init__(torch.linalg.qr(gaussian, mode="reduced").Q.to(device), name="random")


class PCASubspace(BasisSubspace):
    """Span of the top-k principal directions of training images X (N, C, H, W), shared by all images:
    the first k right singular vectors of the centred data X - mean (a linear 'manifold').
    """

    def __init__(self, train_images, k):
        X = train_images.flatten(1)
        n = X.shape[1]
        _check_k(k, n)
        if k > X.shape[0]:
            raise ValueError(f"k must be at most the number of training images ({X.shape[0]}), got {k}")
        _, singular_values, Vh = torch.linalg.svd(X - X.mean(0), full_matrices=False)
        self.singular_values = singular_values
        super().__init__(Vh[:k].T.contiguous(), name="pca")


def make_subspace(kind, k, x, *, ae=None, train_images=None, seed=0, ids=None):
    """The subspace of kind `kind` and dimension k for the images x (B, C, H, W), on x's device/dtype.

    tangent needs ae (and k == ae.latent_dim); pca needs train_images (N, C, H, W); coordinate and
    random draw one subspace per image from a generator seeded with (seed, the image's id): `ids`, one
    per image (e.g. its index in the data set), default 0..B-1.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    n = x[0].numel()
    _check_k(k, n)
    if kind == "tangent":
        if ae is None:
            raise ValueError("ae must be given (an autoencoder) for kind='tangent', got None")
        if k != ae.latent_dim:
            raise ValueError(f"k must equal ae.latent_dim ({ae.latent_dim}) for kind='tangent', got {k}")
        return tangent_subspace(ae, x)
    if kind == "coordinate":
        return CoordinateSubspace(n, k, batch=x.shape[0], seed=seed, device=x.device, ids=ids)
    if kind == "random":
        return RandomSubspace(n, k, batch=x.shape[0], seed=seed, dtype=x.dtype, device=x.device, ids=ids)
    if train_images is None:
        raise ValueError("train_images must be given (N, C, H, W) for kind='pca', got None")
    return PCASubspace(train_images.to(device=x.device, dtype=x.dtype), k)
