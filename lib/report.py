"""What a notebook hands to the report: results/<notebook>.json of headline figures, in the report folder.

    python -m lib.report make --profile quick [-j 2]   # run what changed (lib.pipeline), rebuild the index
    python -m lib.report run notebooks/01_classifiers.py --profile quick   # one notebook -> HTML
    python -m lib.report index --profile quick          # reports/quick/index.html

Each notebook writes results/<notebook>.json with `write_results`; the index (lib.index) reads those files
and the executed notebooks' papermill metadata (wall time), nothing else.

Results JSON: {"notebook", "title", "profile", "device", "wall_seconds", "data_sources": {dataset: text},
"unavailable": {dataset: message}, "headline": [{"name", "value", "unit", "published"}], ...details}.
"""
import json
import math
import os
import sys
from pathlib import Path

from lib.files import atomic_write

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"


def reports_dir(profile):
    """$DIMPLED_REPORTS/<profile>, else reports/<profile> in the repository."""
    return Path(os.environ.get("DIMPLED_REPORTS", REPO / "reports")) / profile


def results_dir(profile):
    return reports_dir(profile) / "results"


def _plain(obj):
    """JSON-safe: NaN becomes null, infinities the strings "inf" / "-inf", numpy scalars plain numbers."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and math.isinf(obj):
        return "inf" if obj > 0 else "-inf"  # e.g. a median ratio where most attacks failed
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def write_json_atomic(obj, path):
    """Write `obj` as JSON to `path`, whole or not at all (lib.files.atomic_write)."""
    with atomic_write(path) as f:
        json.dump(_plain(obj), f, indent=1, allow_nan=False)
    return Path(path)


def write_results(run, title, headline, data_sources=None, unavailable=None, **details):
    """Write results/<notebook>.json for the index: the run's headline figures and where its data came from."""
    payload = {"notebook": run.notebook, "title": title, "profile": run.profile, "device": str(run.device),
               "seed": run.seed, "wall_seconds": run.elapsed(), "data_sources": data_sources or {},
               "unavailable": unavailable or {}, "headline": headline, **details}
    return write_json_atomic(payload, results_dir(run.profile) / f"{run.notebook}.json")


def headline(name, value, unit="", published=""):
    """One headline figure: unit '%' shows value as a percentage; published is the reference, in words."""
    return {"name": name, "value": value, "unit": unit, "published": published}


def format_value(h):
    v = h["value"]
    if v is None:
        return "–"
    if isinstance(v, str):  # "inf" / "-inf"
        return {"inf": "∞", "-inf": "−∞"}.get(v, v)
    return f"{100 * v:.2f}%" if h["unit"] == "%" else f"{v:.4g} {h['unit']}".strip()


if __name__ == "__main__":
    # The command line (run / index / make) lives in lib.pipeline. It is named by string, not imported, because the
    # notebooks import this module for write_results: their fingerprints follow lib imports, and the pipeline's
    # code does not change what a notebook computes.
    import importlib

    sys.exit(importlib.import_module("lib.pipeline").main())
