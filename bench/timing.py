"""The benchmarks' one stopwatch."""
import os
import statistics
import time


def timed(fn, repeats=1):
    """(fn's last result, best wall time in seconds over ``repeats`` calls)."""
    out, times = timings(fn, repeats)
    return out, min(times)


def timings(fn, repeats=1):
    """(fn's last result, the wall time in seconds of each of ``repeats`` calls)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, times


def race(fns, repeats):
    """Median wall time of each function over ``repeats`` rounds, calls alternating within a round (so that a
    shared machine's load falls on all alike); returns ([last result of each], [median seconds of each])."""
    times, outs = [[] for _ in fns], [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            outs[i], t = timings(fn)
            times[i] += t
    return outs, [statistics.median(t) for t in times]


def repeats(default):
    """How many repeats a benchmark takes: $BENCH_REPEATS where set (e.g. 1 for a quick look), else `default`."""
    return int(os.environ.get("BENCH_REPEATS", default))
