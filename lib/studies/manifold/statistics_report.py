"""What notebook 05 reads and reports around lib.studies.manifold.claims: the per-image records of notebooks 03 and 04
at the tangent space's k (`load_records`, with where they came from), the headline figures of the discriminating
rows (`headlines`)."""
import json
from typing import NamedTuple

import pandas as pd

from lib.experiments import records as rec
from lib.infra.runtime import escape, show
from lib.reporting import report

SOURCES = (("03_on_off_manifold_attacks", "03_records.csv"), ("04_random_subspace_control", "04_records.csv"))


class Loaded(NamedTuple):
    """Notebook 05's input (`load_records`)."""

    records: pd.DataFrame  # one row per image and attack, every subspace at the tangent space's k
    found: list            # the data sets with records
    data_sources: dict     # {data set: where notebook 03's images came from}
    unavailable: dict      # {data set: why it has no records}


def load_records(profile, datasets, splits):
    """The records notebooks 03 and 04 wrote for `profile`, cut to the data sets and splits asked for, at the tangent
    space's k (lib.experiments.records.same_k_records); a notice on the page for each missing file or data set."""
    results = report.results_dir(profile)
    frames, tangent_k, info = [], {}, {}
    for nb, csv in SOURCES:
        meta = results / f"{nb}.json"
        info[nb] = json.loads(meta.read_text()) if meta.exists() else {}
        tangent_k.update(info[nb].get("tangent_k", {}))
        if (results / csv).exists():
            frames.append(pd.read_csv(results / csv))
        else:
            show(f"> **No records from notebook {nb[:2]}** (`{results / csv}`): run it first (`make report` does).")
    records, notes = rec.same_k_records(frames, tangent_k, datasets, splits)
    for note in notes if frames else []:
        show(f"> {note}")
    found = [d for d in datasets if d in set(records["dataset"])]
    first = info[SOURCES[0][0]]
    sources, why = first.get("data_sources", {}), first.get("unavailable", {})
    unavailable = {
        d: why.get(d, "no records of notebooks 03 and 04 for this data set") for d in datasets if d not in found
    }
    for name, message in unavailable.items():
        show(f"> **{name}: not available** — {escape(message)}")
    return Loaded(records, found, {d: sources.get(d, "records of notebooks 03 and 04") for d in found}, unavailable)


def headlines(table, split):
    """The index's figures: each discriminating row of `split`, its verdict and effect beside what DMM predicts."""
    out = []
    rows = table[table["discriminating"] & (table["split"] == split)] if len(table) else table
    for _, v in rows.iterrows():
        predicts = "< 1" if v["claim_id"] == "4" else "> 0" if v["scale"] == "difference" else "> 1"
        out.append(report.headline(f"{v['dataset']} {v['split']}{'' if v['clip'] else ' (no clip)'}: {v['short']} — "
                                   f"{v['verdict']}", v["effect"], "" if v["scale"] == "difference" else "x",
                                   f"DMM predicts {predicts}; dimension alone predicts none"))
    return out or [report.headline("no records: run notebooks 03 and 04 first", 0, "records")]
