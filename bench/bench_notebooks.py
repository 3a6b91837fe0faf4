"""Benchmark: where each notebook's time goes, read from the executed notebooks (nothing is run).

For every executed notebook in a report folder (reports/<profile>/NN_name.ipynb, as lib.reporting.report writes them):
its wall time as papermill recorded it (metadata.papermill.duration; the results JSON's wall_seconds beside it), what
the run took from the cache and what it computed (its own printed lines: models "trained in" / "loaded from the
cache", attack shards "from the cache" / "computed"), and its costliest cells (papermill's per-cell durations) with
the first line of each. A notebook's last run may have found its models in the cache: the "work" column says so,
and only a run that trained and computed everything is a cold time. `make bench BENCH_REPORT=1` runs the whole
quick report from an empty cache (bench/bench_report.py) and prints this table of that cold run.
Run:  .venv/bin/python bench/bench_notebooks.py [--profile quick] [--top 3]
"""
import argparse
import json
import os
import re
from pathlib import Path

from rows import row  # bench/: this folder is on sys.path when a benchmark runs

REPO = Path(__file__).resolve().parents[1]
TOP = 3


def _outputs_text(cell):
    parts = []
    for out in cell.get("outputs", []):
        text = out.get("text", out.get("data", {}).get("text/plain", ""))
        parts.append("".join(text) if isinstance(text, list) else text)
    return "".join(parts)


def work_done(text):
    """What a run's printed lines say it trained and computed, e.g. "trained 1 model, 176 shards computed"."""
    trained, loaded = len(re.findall(r"trained in \d", text)), text.count("loaded from the cache")
    shards = [tuple(map(int, m)) for m in re.findall(r"(\d+) from the cache, (\d+) computed", text)]
    parts = []
    if trained or loaded:
        parts.append(f"models: {trained} trained, {loaded} from the cache")
    if shards:
        parts.append(f"attack shards: {sum(c for _, c in shards)} computed, {sum(h for h, _ in shards)} from the cache")
    return "; ".join(parts) or "-"


def notebook_times(folder, top=TOP):
    """Per executed notebook in `folder`: {notebook, seconds, wall_seconds, work, cells: [(seconds, index, first
    line)] costliest first (at most `top`)}."""
    out = []
    for path in sorted(Path(folder).glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text())
        meta = nb.get("metadata", {}).get("papermill", {})
        cells, text = [], ""
        for i, cell in enumerate(nb.get("cells", [])):
            if cell.get("cell_type") != "code":
                continue
            text += _outputs_text(cell)
            duration = cell.get("metadata", {}).get("papermill", {}).get("duration")
            source = "".join(cell.get("source", ""))
            first = next((line for line in source.splitlines() if line.strip() and not line.startswith("#")), "")
            if duration is not None:
                cells.append((duration, i, first.strip()[:48]))
        results = Path(folder) / "results" / f"{path.stem}.json"
        wall = json.loads(results.read_text()).get("wall_seconds") if results.exists() else None
        out.append({"notebook": path.stem, "seconds": meta.get("duration"), "wall_seconds": wall,
                    "work": work_done(text), "cells": sorted(cells, reverse=True)[:top]})
    return out


def table_rows(folder, label, top=TOP):
    """bench/table.py's rows: one per notebook, its time as `ours` and its costliest cells in the note."""
    rows, times = [], notebook_times(folder, top)
    for t in times:
        cells = "; ".join(f"cell {i} {s:.0f} s ({src})" for s, i, src in t["cells"])
        rows.append(row(f"notebook {t['notebook']} ({label})", "cpu", t["seconds"], None, "papermill duration", "-",
                        f"{t['work']} | {cells}", wall_seconds=t["wall_seconds"], cells=t["cells"]))
    total = sum(t["seconds"] or 0 for t in times)
    if rows:
        rows.append(row(f"notebooks, all ({label})", "cpu", total, None, "sum of the notebooks' durations", "-",
                        "run one after another (make -j1)"))
    return rows


def reports_folder(profile):
    return Path(os.environ.get("DIMPLED_REPORTS", REPO / "reports")) / profile


def rows(devices):
    """The last recorded run of each notebook of the quick profile (or $BENCH_PROFILE) in the reports folder."""
    profile = os.environ.get("BENCH_PROFILE", "quick")
    folder = reports_folder(profile)
    found = table_rows(folder, f"{profile}, last run")
    return found or [row(f"notebooks ({profile}, last run)", "cpu", None, None, "-", "-",
                         f"no executed notebooks in {folder}: run `make report` first")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--top", type=int, default=TOP)
    args = ap.parse_args()
    folder = reports_folder(args.profile)
    for t in notebook_times(folder, args.top):
        print(f"{t['notebook']:36s} {t['seconds'] or float('nan'):7.1f} s   {t['work']}")
        for s, i, src in t["cells"]:
            print(f"{'':40s}cell {i:2d} {s:7.1f} s  {src}")


if __name__ == "__main__":
    main()
