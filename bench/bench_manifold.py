"""Benchmark: tangent-space projections, dense (J formed, QR) against matrix-free (CG with jvp / vjp).

  1. CIFAR size (n = 3,072, k = 128, lib.models.ConvAutoencoder): both methods fit; time per batch,
     and the agreement of the two projections (they must agree to the CG tolerance).
  2. ImageNet size (n = 150,528, k = 25,088, lib.models.VGGAutoencoder, 13 conv layers each side):
     J alone would be 15.1 GB in float32, so only the matrix-free projection runs; time, CG
     iterations, the final residual ||J^T (v - P v)|| / ||J^T v||, and the process's peak RSS.
Weights are random (untrained): timings and memory do not depend on them, but the conditioning of J,
hence the number of CG iterations, does; rerun with a trained autoencoder for the real count.
Run:  .venv/bin/python bench/bench_manifold.py [cifar|imagenet|all] [--max-iter N] [--tol T]
"""
import argparse
import json
import resource
import time

import torch

from lib.manifold import energy_share, project_onto, project_onto_matrix_free, tangent_basis
from lib.models import ConvAutoencoder, VGGAutoencoder

SEED = 0


def peak_rss_gb():
    """Peak resident memory of this process so far (Linux: ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def bench_cifar(batch=16, tol=1e-5, max_iter=500):
    torch.manual_seed(SEED)
    ae = ConvAutoencoder(channels=3, size=32, latent_dim=128).eval()
    x, v = torch.rand(batch, 3, 32, 32), torch.randn(batch, 3, 32, 32)
    t0 = time.perf_counter()
    dense = project_onto(v, tangent_basis(ae, x))
    t_dense = time.perf_counter() - t0
    t0 = time.perf_counter()
    with torch.no_grad():
        z, decode = ae.encode(x), ae.decoder_at(x)
    free, info = project_onto_matrix_free(decode, z, v, tol=tol, max_iter=max_iter)
    t_free = time.perf_counter() - t0
    error = ((free - dense).flatten(1).norm(dim=1) / dense.flatten(1).norm(dim=1)).max().item()
    return {"size": "cifar n=3072 k=128", "batch": batch, "dense_s": round(t_dense, 3),
            "matrix_free_s": round(t_free, 3), "cg_iterations_max": int(info["iterations"].max()),
            "cg_residual_max": float(info["residual"].max()), "relative_difference_max": error}


def bench_imagenet(batch=1, tol=1e-4, max_iter=100, progress=True):
    torch.manual_seed(SEED)
    ae = VGGAutoencoder().eval()
    x, v = torch.rand(batch, 3, 224, 224), torch.randn(batch, 3, 224, 224)
    rss_model = peak_rss_gb()
    t0 = time.perf_counter()
    with torch.no_grad():
        z, decode = ae.encode(x), ae.decoder_at(x)
    t_encode = time.perf_counter() - t0
    t0 = time.perf_counter()
    projected, info = project_onto_matrix_free(decode, z, v, tol=tol, max_iter=max_iter, progress=progress)
    t_cg = time.perf_counter() - t0
    # an independent check of the answer: the off part must be orthogonal to J's columns
    with torch.no_grad():
        _, J_T = torch.func.vjp(decode, z)
        orthogonality = (J_T(v - projected)[0].flatten(1).norm(dim=1) / J_T(v)[0].flatten(1).norm(dim=1))
    iterations = int(info["iterations"].max())
    return {"size": "imagenet n=150528 k=25088", "batch": batch, "threads": torch.get_num_threads(),
            "dense_J_gb_float32": round(150528 * 25088 * 4 / 1e9, 1),
            "encode_s": round(t_encode, 2), "cg_s": round(t_cg, 1),
            "s_per_iteration": round(t_cg / max(iterations, 1), 2), "cg_iterations": info["iterations"].tolist(),
            "cg_residual": info["residual"].tolist(), "converged": info["converged"].tolist(),
            "check_JT_off_over_JT_v": orthogonality.tolist(),
            "energy_share_on": energy_share(v, projected).tolist(), "k_over_n": 25088 / 150528,
            "peak_rss_gb_after_model": round(rss_model, 2), "peak_rss_gb": round(peak_rss_gb(), 2)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="?", default="all", choices=["cifar", "imagenet", "all"])
    parser.add_argument("--max-iter", type=int, default=100, help="CG iteration cap at ImageNet size")
    parser.add_argument("--tol", type=float, default=1e-4, help="CG tolerance at ImageNet size")
    parser.add_argument("--batch", type=int, default=1, help="images per ImageNet-size solve")
    args = parser.parse_args()
    if args.which in ("cifar", "all"):
        print(json.dumps(bench_cifar()))
    if args.which in ("imagenet", "all"):
        print(json.dumps(bench_imagenet(batch=args.batch, tol=args.tol, max_iter=args.max_iter)))
