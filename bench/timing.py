"""The benchmarks' one stopwatch."""
import time


def timed(fn, repeats=1):
    """(fn's last result, best wall time in seconds over ``repeats`` calls)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best
