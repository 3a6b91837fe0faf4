"""Benchmark: tangent-space projections, dense (J formed, QR) against matrix-free (CG with jvp / vjp).

At CIFAR size (n = 3,072, k = 128, lib.learn.models.ConvAutoencoder) both methods fit: time per batch, and the
agreement of the two projections (they must agree to the CG tolerance). Random weights. The matrix-free route
is bench/cg_route.py, not the report's; ImageNet size, where a basis does not fit and a trained decoder's
ill-conditioned J defeats CG, is bench/bench_projection.py.
Run:  .venv/bin/python bench/bench_manifold.py
"""
import json
import time

import torch

from cg_route import project_onto_matrix_free  # bench/: this folder is on sys.path when a benchmark runs
from lib.geometry.manifold import project_onto, tangent_basis
from lib.learn.models import ConvAutoencoder

SEED = 0


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


if __name__ == "__main__":
    print(json.dumps(bench_cifar()))
