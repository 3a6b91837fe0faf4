"""Benchmark: tangent bases for 256 MNIST images, ours against the public reproduction's method.

  ours          lib.geometry.manifold.tangent_basis: J = dD/dz by forward mode, one jvp per latent direction
                (k = 16 of them), vmapped over directions, batched over images; then a batched QR.
  per pixel     J row by row, one backward pass per output pixel (n = 784 of them), batched over the
                images (they are independent in eval mode); then the same QR.
Both bases must span the same space: the projections Q Q^T agree. Random-weight autoencoder (the
cost does not depend on the weights). Run: .venv/bin/python bench/bench_tangent.py [--images 256]
"""
import argparse

import torch

from lib.geometry.manifold import eval_mode, tangent_basis
from lib.learn.models import ConvAutoencoder
from timing import timed  # bench/timing.py: this folder is on sys.path when a benchmark runs


def per_pixel_jacobian(ae, x):
    """The reproduction's way to J (B, n, k): one backward pass per output pixel gives J's rows."""
    with eval_mode(ae):
        z = ae.encode(x).detach().requires_grad_(True)
        out = ae.decoder_at(x)(z).flatten(1)
        rows = [torch.autograd.grad(out[:, i].sum(), z, retain_graph=True)[0] for i in range(out.shape[1])]
    return torch.stack(rows, 1)


def per_pixel_basis(ae, x):
    """J by one backward pass per output pixel, then QR."""
    return torch.linalg.qr(per_pixel_jacobian(ae, x), mode="reduced").Q


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(0)
    ae = ConvAutoencoder(1, 28, 16).eval()
    x = torch.rand(args.images, 1, 28, 28)
    Q_ours, t_ours = timed(lambda: tangent_basis(ae, x), args.repeats)
    Q_pix, t_pix = timed(lambda: per_pixel_basis(ae, x), args.repeats)
    P_ours, P_pix = Q_ours @ Q_ours.transpose(1, 2), Q_pix @ Q_pix.transpose(1, 2)
    diff = (P_ours - P_pix).flatten(1).norm(dim=1).max().item()
    print(f"tangent bases for {args.images} MNIST images (n = 784, k = 16), {torch.get_num_threads()} threads, "
          f"best of {args.repeats}:")
    print(f"  ours (vmap of jvp, k = 16 forward passes): {t_ours:8.2f} s  {args.images / t_ours:8.1f} images/s")
    print(f"  one backward pass per pixel (784):         {t_pix:8.2f} s  {args.images / t_pix:8.1f} images/s")
    print(f"  speed-up {t_pix / t_ours:.1f}x;  max ||P_ours - P_pixel||_F = {diff:.2e} (same tangent spaces)")


if __name__ == "__main__":
    main()
