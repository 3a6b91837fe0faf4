"""Small helpers on the notebooks' result tables (pandas DataFrames): look a figure up by its row's keys, stack
per-data-set frames, write a table of records to the report's results folder.

    lookup(robust, "robust accuracy", dataset="mnist", defence="I-AE", attack="adaptive", eps=1.0)
"""
import numpy as np
import pandas as pd

from lib.inference.rules import COLOURS
from lib.reporting import report


def lookup(table, column=None, default=None, **where):
    """The first row of `table` whose columns equal `where` (floats compared with np.isclose): that row (a Series) if
    `column` is None, else its value in `column` as a float (a tuple of floats for a tuple of columns); `default`
    where no row matches or the table lacks a column."""
    if table is None or not len(table) or any(c not in table for c in where):
        return default
    keep = np.ones(len(table), bool)
    for c, v in where.items():
        col = table[c]
        keep &= np.isclose(col.astype(float), v) if isinstance(v, float) else (col == v).to_numpy(bool)
    rows = table[keep]
    if not len(rows):
        return default
    row = rows.iloc[0]
    if column is None:
        return row
    return tuple(float(row[c]) for c in column) if isinstance(column, tuple) else float(row[column])


def stack(frames, columns=()):
    """pd.concat of `frames` with a fresh index; an empty frame with `columns` when there are none."""
    frames = list(frames)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(columns))


def save_csv(frame, profile, file):
    """Write `frame` to results/<file> of the profile's report folder (made if missing); returns the path."""
    path = report.results_dir(profile) / file
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


# A verdict table's columns as a page shows them, in order (those a table lacks are left out).
VERDICT_HEADERS = {
    "short": "claim",
    "dataset": "data set",
    "split": "split",
    "clip": "clip",
    "effect_text": "effect [CI]",
    "margin_text": "negligible band",
    "statistic": "test",
    "p_holm": "p (no effect, Holm)",
    "p_margin_holm": "p (margin, Holm)",
    "n": "N",
    "n_undecided": "undecided",
    "power": "power",
    "n_needed": "N for 80%",
    "leakage": "subspace share (on)",
    "reaches": "if the trend went on, DMM's side reached",
    "verdict": "verdict",
}


def verdict_styler(table, caption):
    """A verdict table (lib.inference.verdicts.judge's columns) as a page shows it: the columns of VERDICT_HEADERS,
    p-values and power rounded, each verdict cell in its colour (lib.inference.rules.COLOURS)."""
    cols = {k: v for k, v in VERDICT_HEADERS.items() if k in table}
    tint = {v: f"background-color: {c}33" for v, c in COLOURS.items()}
    return (table[list(cols)].rename(columns=cols).style.set_caption(caption)
            .format({"p (no effect, Holm)": "{:.2g}", "p (margin, Holm)": "{:.2g}", "power": "{:.2f}",
                     "N for 80%": "{:,.0f}", "N": "{:.0f}", "undecided": "{:.0f}"}, na_rep="–")
            .map(lambda v: tint.get(v, ""), subset=["verdict"]).hide(axis="index"))
