"""`make bench`'s summary: one row per task, ours against a peer, written to reports/bench.json and printed.

Each row comes from the benchmark that owns the task (its `rows(devices)` function) and is a dict:
task, device, ours_s and peer_s (median wall seconds over repeats in this run, or None), ours / peer (what
was compared), ratio = peer_s / ours_s (> 1: ours is faster), estimated (True where the peer's time is
extrapolated, not run), note. The machine is recorded beside the rows: CPU model, cores, torch threads, devices.
Run: .venv/bin/python bench/table.py [--only attacks,onmanifold,projection,dask,training,notebooks,report] [--merge]
     [--out reports/bench.json]
"""
import argparse
import json
import os
import platform
import sys

import torch

import bench_attacks
import bench_dask
import bench_notebooks
import bench_onmanifold
import bench_projection
import bench_report
import bench_training

SOURCES = {"attacks": bench_attacks, "onmanifold": bench_onmanifold, "projection": bench_projection,
           "dask": bench_dask, "training": bench_training, "notebooks": bench_notebooks, "report": bench_report}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def machine():
    return {"cpu_model": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def devices():
    """CPU always; the GPU too where there is one (its rows sit beside the CPU rows)."""
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def fmt_s(s):
    return "-" if s is None else f"{s:.3g} s"


def print_table(rows, info):
    print(f"\nmachine: {info['cpu_model']}, {info['cores']} cores, {info['torch_threads']} torch threads, "
          f"torch {info['torch']}, GPU {info['gpu'] or 'none'}")
    print(f"{'task':58s} {'device':6s} {'ours':>10s} {'peer':>12s} {'ratio':>7s}  peer / notes")
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        peer = fmt_s(r["peer_s"]) + (" (est.)" if r["estimated"] else "")
        print(f"{r['task'][:58]:58s} {r['device']:6s} {fmt_s(r['ours_s']):>10s} {peer:>12s} {ratio:>7s}  "
              f"{r['peer']}; {r['note']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(SOURCES), help="comma-separated subset of " + ", ".join(SOURCES))
    ap.add_argument("--out", default=os.path.join(os.environ.get("DIMPLED_REPORTS", "reports"), "bench.json"))
    ap.add_argument("--merge", action="store_true", help="replace only these benchmarks' rows in --out")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    rows, names = [], args.only.split(",")
    for name in names:
        rows += [{**r, "source": name} for r in SOURCES[name].rows(devices())]
        print(f"[bench] {name}: done", file=sys.stderr, flush=True)
    if args.merge and os.path.exists(args.out):  # keep the other benchmarks' rows of an earlier run (rows too
        # old to say which benchmark wrote them are dropped)
        with open(args.out) as f:
            rows = [r for r in json.load(f)["rows"] if r.get("source") and r["source"] not in names] + rows
    info = machine()
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"machine": info, "rows": rows}, f, indent=1)
    print_table(rows, info)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
