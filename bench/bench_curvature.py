"""Benchmark: principal curvatures of the decision boundary of the MNIST MLP (784-256-256-10) at DeepFool points.

  1. One boundary point: the top-20 principal curvatures (10 from each end) by Lanczos (ARPACK, one HVP per
     matvec) against the full spectrum (G applied to all 784 basis vectors, then eigh); time and agreement.
  2. 64 images: full spectra batched (one HVP call on 64 x chunk rows) against one image at a time.
The network is the softplus twin (beta = 10) of a randomly initialised MLP: timings do not depend on the weights,
and the smooth twin makes G a linear operator, so both methods must agree.
Run:  .venv/bin/python bench/bench_curvature.py [--threads N]
"""
import argparse
import json
import time

import numpy as np
import torch

from lib.boundary import curvature as cv
from lib.learn.models import mnist_mlp
from timing import timed  # bench/timing.py: this folder is on sys.path when a benchmark runs

SEED = 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    twin = cv.softplus_twin(mnist_mlp().eval(), beta=10.0)
    x = torch.rand(64, 1, 28, 28)
    bp = cv.boundary_points(twin, x)

    one = cv.BoundaryPoints(bp.x[:1], bp.z[:1], bp.i[:1], bp.j[:1], bp.success[:1])
    cv.spectrum(twin, one)  # warm-up: torch loads its forward-AD decompositions on first use
    ((kappa, _), op), t_full = timed(lambda: cv.spectrum(twin, one))
    ext, t_lanczos = timed(lambda: cv.lanczos_extremes(op, 0, k=20, which="BE"))
    full_ext = np.concatenate([kappa[0, :10].numpy(), kappa[0, -10:].numpy()])
    err = float(np.abs(ext - full_ext).max() / np.abs(full_ext).max())
    print(f"one point, top-20: Lanczos {t_lanczos:.2f} s, full spectrum {t_full:.2f} s; "
          f"max relative difference {err:.1e}")

    (_, _), t_batched = timed(lambda: cv.spectrum(twin, bp)[0])
    t0 = time.perf_counter()
    for b in range(len(x)):
        cv.spectrum(
            twin,
            cv.BoundaryPoints(
                bp.x[b : b + 1], bp.z[b : b + 1], bp.i[b : b + 1], bp.j[b : b + 1], bp.success[b : b + 1]
            ),
        )
    t_loop = time.perf_counter() - t0
    print(f"64 images, full spectra: batched {t_batched:.1f} s, one at a time {t_loop:.1f} s "
          f"({t_loop / t_batched:.1f}x)")
    print(json.dumps({"threads": args.threads, "lanczos_top20_s": t_lanczos, "full_spectrum_one_s": t_full,
                      "lanczos_rel_err": err, "batched_64_s": t_batched, "loop_64_s": t_loop}))


if __name__ == "__main__":
    main()
