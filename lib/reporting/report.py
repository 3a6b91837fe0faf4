"""What a notebook hands to the report: results/<notebook>.json of headline figures, in the report folder.

    python -m lib.reporting make --profile quick [-j 2]   # run what changed (lib.reporting.pipeline), rebuild the index
    python -m lib.reporting run notebooks/01_classifiers.py --profile quick   # one notebook -> HTML
    python -m lib.reporting index --profile quick          # reports/quick/index.html

Each notebook writes results/<notebook>.json with `write_results`; the index (lib.reporting.index) reads those files
and the executed notebooks' papermill metadata (wall time), nothing else.

Results JSON: {"notebook", "title", "profile", "device", "wall_seconds", "data_sources": {dataset: text},
"unavailable": {dataset: message}, "headline": [{"name", "value", "unit", "published"}], ...details}; a table among
the details is written as its list of rows.
"""
import json
import math
import os
from pathlib import Path

from lib.infra.files import atomic_write

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"


def reports_dir(profile):
    """$DIMPLED_REPORTS/<profile>, else reports/<profile> in the repository."""
    return Path(os.environ.get("DIMPLED_REPORTS", REPO / "reports")) / profile


def results_dir(profile):
    return reports_dir(profile) / "results"


def _plain(obj):
    """JSON-safe: a table (pandas DataFrame) becomes its list of rows, NaN null, infinities the strings "inf" / "-inf",
    numpy scalars plain numbers."""
    if hasattr(obj, "columns") and hasattr(obj, "to_dict"):
        obj = obj.to_dict(orient="records")
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
    """Write `obj` as JSON to `path`, whole or not at all (lib.infra.files.atomic_write)."""
    with atomic_write(path) as f:
        json.dump(_plain(obj), f, indent=1, allow_nan=False)
    return Path(path)


def write_results(run, title, headline, data_sources=None, unavailable=None, **details):
    """Write results/<notebook>.json for the index: the run's headline figures and where its data came from."""
    payload = {"notebook": run.notebook, "title": title, "profile": run.profile, "device": str(run.device),
               "seed": run.seed, "wall_seconds": run.elapsed(), "data_sources": data_sources or {},
               "unavailable": unavailable or {}, "headline": headline, **details}
    return write_json_atomic(payload, results_dir(run.profile) / f"{run.notebook}.json")


def save_records(records, profile, filename, groups, unit):
    """Write a notebook's per-image records to results/<filename> (CSV) and say so: how many, of how many `groups`
    (`unit`: "points", "seed pairs", ...). Returns the path."""
    path = results_dir(profile) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    records.to_csv(path, index=False)
    print(f"{len(records):,} per-image records of {groups} {unit} -> {path}")
    return path


def headline(name, value, unit="", published="", ci=None, note=""):
    """One headline figure: unit '%' shows value as a percentage; published is the reference, in words; ci an
    interval (low, high) in the value's unit; note how to read the value, in words (e.g. what below 0.5 means)."""
    h = {"name": name, "value": value, "unit": unit, "published": published}
    if ci is not None:
        h["ci"] = [float(ci[0]), float(ci[1])]
    if note:
        h["note"] = note
    return h


def proportion(name, k, n, published="", level=0.95):
    """A headline share k / n (an accuracy, a robust accuracy) with its Wilson interval
    (lib.inference.stats.wilson_ci)."""
    from lib.inference.stats import wilson_ci  # noqa: PLC0415 (scipy: only for the notebooks that report a share)

    return headline(name, k / n if n else None, "%", published, ci=wilson_ci(k, n, level) if n else None)


# A median ratio that is infinite: more than half the attacks involved failed at their budget, so the ratio is
# only bounded below (lib.experiments.records); shown in words, never as "inf".
BEYOND_BUDGET = "> budget (most attacks failed)"


def number(v, fmt="{:.2f}"):
    """A value as table text: infinity in words (BEYOND_BUDGET), NaN / None as "–", else `fmt`."""
    if v is None or isinstance(v, str) and v in ("inf", "-inf"):
        return {"inf": BEYOND_BUDGET, "-inf": "−∞"}.get(v, "–")
    if isinstance(v, str):
        return v
    if math.isnan(v):
        return "–"
    return BEYOND_BUDGET if v == math.inf else "−∞" if v == -math.inf else fmt.format(v)


def _in_unit(v, unit):
    if isinstance(v, str) or v is None or math.isinf(v) or math.isnan(v):
        return number(v)
    return f"{100 * v:.2f}%" if unit == "%" else f"{v:.4g} {unit}".strip()


def format_value(h):
    """A headline figure as text: the value in its unit, then its interval if it has one."""
    text = _in_unit(h["value"], h["unit"])
    if h.get("ci") and h["value"] is not None:
        lo, hi = h["ci"]
        text += f" [{_in_unit(lo, h['unit'])}, {_in_unit(hi, h['unit'])}]"
    return text

