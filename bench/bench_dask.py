"""Benchmark: the overhead of Dask for attack shards, a 2-worker LocalCluster against an in-process loop.

A workload this benchmark controls (it does not depend on lib.infra.distributed's API): SHARDS shards, each a greedy
lib.boundary.attacks.pgd_l2 on 64 random MNIST-shape images against a random MLP (seeded per shard), submitted to
dask.distributed.LocalCluster(n_workers=2, threads_per_worker=1) and gathered, against the same shards run one
after the other in this process (1 torch thread each way). The cluster's start-up is timed apart. The row runs
only where lib.infra.distributed exists (the project's Dask layer); else it says it is not available.
Run: .venv/bin/python bench/bench_dask.py
"""
import importlib.util
import sys
import time

import torch

from lib.boundary.attacks import pgd_l2
from rows import row  # bench/: this folder is on sys.path when a benchmark runs
from timing import race, repeats

SHARDS, IMAGES = 8, 64
REPEATS = repeats(3)
TASK = f"Dask: {SHARDS} PGD shards, 2-worker LocalCluster vs in-process"


def shard(seed):
    """One small attack shard: its norms (a worker returns tensors, as the real shards do)."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 10)).eval()
    x = torch.rand(IMAGES, 1, 28, 28)
    with torch.no_grad():
        y = model(x).argmax(1)
    return pgd_l2(model, x, y, eps=1.0, alpha=0.01, steps=50).norm


def rows(devices):
    if importlib.util.find_spec("lib.infra.distributed") is None:
        return [row(TASK, "cpu", None, None, "dask", "in-process loop", "not available: lib.infra.distributed missing")]
    import cloudpickle
    from dask.distributed import Client, LocalCluster
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not find bench/ on their path
    t0 = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        startup = time.perf_counter() - t0
        client.gather(client.map(shard, range(SHARDS), pure=False))  # warm-up: workers import torch and lib
        (on_dask, local), (t_dask, t_local) = race(
            [lambda: client.gather(client.map(shard, range(SHARDS), pure=False)),
             lambda: [shard(i) for i in range(SHARDS)]], REPEATS)
    same = all(torch.equal(a, b) for a, b in zip(on_dask, local))
    return [row(TASK, "cpu", t_dask, t_local, "dask LocalCluster (2 workers x 1 thread)", "in-process loop",
                f"cluster start-up {startup:.1f} s (not included); identical results: {same}; median of {REPEATS}")]


if __name__ == "__main__":
    for r in rows(["cpu"]):
        print(r)
