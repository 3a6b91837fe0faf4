"""Benchmark: on-manifold PGD end to end for 256 MNIST test images, tangent bases included.

  ours          lib.geometry.manifold.tangent_basis (J by vmap of k = 16 jvps, batched QR), then
  lib.boundary.attacks.pgd_l2
                with the gradient projected by Q Q^T (lib.geometry.subspaces.TangentSubspace.on).
  reproduction  the public reproduction's route: J by one backward pass per output pixel (n = 784 of them,
                batched over the images), orthonormalised by classical Gram-Schmidt, then the same PGD with
                its Q Q^T projection.
The first 256 real MNIST test images (lib.learn.data.load("mnist"); random images if the data are missing), the MNIST
conv autoencoder (lib.learn.models.ConvAutoencoder, k = 16) and MLP classifier (lib.learn.models.mnist_mlp), both with
random weights (the cost does not depend on them), labels = the classifier's own predictions. Both routes must give the
same perturbations (same tangent spaces, to rounding). Run: .venv/bin/python bench/bench_onmanifold.py
"""
import torch

from bench_tangent import per_pixel_jacobian  # bench/: this folder is on sys.path when a benchmark runs
from lib.boundary.attacks import pgd_l2
from lib.geometry.manifold import project_onto, tangent_basis
from lib.learn.models import ConvAutoencoder, mnist_mlp
from lib.geometry.subspaces import TangentSubspace
from rows import row
from timing import race, repeats

N, K = 256, 16
REPEATS = repeats(3)
EPS, ALPHA, STEPS = 5.0, 0.1, 50  # an on-manifold budget (in [0, 1] pixel scale) that most images use up


def gram_schmidt(J):
    """Classical Gram-Schmidt on the k columns of J (B, n, k), batched: Q (B, n, k) with orthonormal columns.
    Column j loses its projections on q_1..q_{j-1}, all taken against the ORIGINAL column (classical, not modified)."""
    Q = torch.empty_like(J)
    for j in range(J.shape[2]):
        a = J[:, :, j]
        coefficients = torch.einsum("bni,bn->bi", Q[:, :, :j], a)
        v = a - torch.einsum("bni,bi->bn", Q[:, :, :j], coefficients)
        Q[:, :, j] = v / v.norm(dim=1, keepdim=True)
    return Q


def mnist_images(n):
    """The first n MNIST test images, or random ones of MNIST shape where the data are not available."""
    try:
        from lib.learn.data import load
        return load("mnist").test_x[:n], "the first 256 MNIST test images"
    except Exception as error:  # no data offline: the cost does not depend on the pixels
        return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)), f"random images ({error})"


def setup(device):
    torch.manual_seed(0)
    ae, model = ConvAutoencoder(1, 28, K).eval().to(device), mnist_mlp().eval().to(device)
    x, source = mnist_images(N)
    x = x.to(device)
    with torch.no_grad():
        y = model(x).argmax(1)
    return ae, model, x, y, source


def ours(ae, model, x, y):
    sub = TangentSubspace(tangent_basis(ae, x))
    return pgd_l2(model, x, y, eps=EPS, alpha=ALPHA, steps=STEPS, project=sub.on)


def reproduction(ae, model, x, y):
    Q = gram_schmidt(per_pixel_jacobian(ae, x))
    return pgd_l2(model, x, y, eps=EPS, alpha=ALPHA, steps=STEPS, project=lambda v: project_onto(v, Q))


def rows(devices):
    out = []
    for device in devices:
        ae, model, x, y, source = setup(device)
        (r_ours, r_repro), (t_ours, t_repro) = race([lambda: ours(ae, model, x, y),
                                                     lambda: reproduction(ae, model, x, y)], REPEATS)
        diff = (r_ours.norm - r_repro.norm).abs().max().item()
        out.append(row(f"on-manifold PGD, {N} MNIST images, tangent bases included", device, t_ours, t_repro,
                       "vmap(jvp) + QR, pgd_l2", "per-pixel backward + Gram-Schmidt, pgd_l2",
                       f"{source}; eps {EPS:g}, alpha {ALPHA:g}, {STEPS} steps; success "
                       f"{r_ours.success.float().mean():.0%}; max |norm difference| {diff:.1e}; median of {REPEATS}"))
    return out


if __name__ == "__main__":
    for r in rows(["cpu"]):
        print(r)
