"""Benchmark: `make report` at the quick profile, cold (empty cache) and warm (nothing changed; a lib edit).

Opt-in (the cold run takes half an hour or more on a 2-core machine): only with BENCH_REPORT=1 in the
environment (`make bench BENCH_REPORT=1`); otherwise the row says it was skipped.
  cold       python -m lib.reporting make --profile quick, with a fresh temporary DIMPLED_CACHE and DIMPLED_REPORTS
  warm       the same command again, nothing changed: only fingerprints are checked and the index rebuilt
  lib edit   the fingerprint check (--dry-run) in a temporary copy of the repository whose lib/boundary/attacks.py has
             one comment appended: how long it takes to find what must rerun. The repository is never modified.
  per notebook  the cold run's time of each notebook and its costliest cells (bench/bench_notebooks.py, read from
             the notebooks the cold run executed).
Run: BENCH_REPORT=1 .venv/bin/python bench/bench_report.py
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_notebooks import table_rows as notebook_rows
from rows import row  # bench/: this folder is on sys.path when a benchmark runs

REPO = Path(__file__).resolve().parents[1]
TASK = "make report quick"


def report(root, env, *args):
    """Wall seconds of `python -m lib.reporting make --profile quick [args]` run from the repository at root."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lib.reporting", "make", "--profile", "quick", *args], cwd=root,
                   env={**env, "PYTHONPATH": str(root)}, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def rows(devices):
    if os.environ.get("BENCH_REPORT") != "1":
        return [row(f"{TASK}: cold, warm, after a lib edit", "cpu", None, None, "-", "-",
                    "skipped (make bench BENCH_REPORT=1)")]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DIMPLED_CACHE": f"{tmp}/cache", "DIMPLED_REPORTS": f"{tmp}/reports",
               "DIMPLED_DATA": os.environ.get("DIMPLED_DATA", str(REPO / "data"))}
        cold = report(REPO, env)
        per_notebook = notebook_rows(Path(tmp) / "reports" / "quick", "quick, cold")
        warm = report(REPO, env)
        copy = Path(tmp) / "repo"
        shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(".git", ".venv", "data", "reports"))
        with open(copy / "lib" / "attacks.py", "a") as f:
            f.write("# an edit, for the benchmark\n")
        edited = report(copy, env, "--dry-run")
    return [
        row(f"{TASK}, cold (empty cache)", "cpu", cold, None, "lib.reporting.report make", "-", "one run"),
        row(
            f"{TASK}, warm (nothing changed)", "cpu", warm, cold, "lib.reporting.report make", "the cold run", "one run"
        ),
        row(
            f"{TASK}, fingerprint check after a lib edit (--dry-run)",
            "cpu",
            edited,
            cold,
            "lib.reporting.report make --dry-run",
            "the cold run",
            "in a temporary copy of the repository; one run",
        ),
    ] + per_notebook


if __name__ == "__main__":
    for r in rows(["cpu"]):
        print(r)
