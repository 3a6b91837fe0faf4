"""Notebook 05's per-image figures: for each discriminating claim, the per-image values behind every row's effect."""
import numpy as np

from lib.experiments import records as rec
from lib.figures.plots import effect_strips


def claim_strips(records, table, name, margin, cosine_margin):
    """Claims 3, 4 and 5 of data set `name`: each row's per-image values (a strip) with its effect and interval, the
    negligible band shaded (ratios within ×/÷ margin, cosine differences within ±cosine_margin)."""
    t = table[table["dataset"] == name]

    def strips(rows, values_of, title, xlabel, log=True, ref=1.0, band=(1 / margin, margin)):
        effects = {}
        for _, row in rows.iterrows():
            r = records[(records["dataset"] == name) & (records["split"] == row["split"])
                        & (records["clip"] == row["clip"])]
            label = f"{row['short']} · {row['split']}" + ("" if row["clip"] else " · no clip")
            effects[label] = (values_of(r, row), (row["effect"], row["ci_low"], row["ci_high"]))
        if effects:
            effect_strips(effects, title, xlabel, log=log, reference=ref, band=band)

    strips(t[t["claim_id"].isin(["3", "3c", "3pca"])],
           lambda r, row: np.exp(rec.gap(r, "tangent", row["control"]).complete),
           f"{name}: claim 3, (on/off, tangent) ÷ (on/off, control) per image", "gap ratio")
    strips(t[t["claim_id"] == "4"], lambda r, row: np.exp(rec.share_log_ratio(r, "tangent", "random").complete),
           f"{name}: claim 4, gradient energy share, tangent ÷ random", "share ratio")
    versus = lambda row: rec.OFF_T if row["claim_id"] == "5a" else ("on", row["control"])  # noqa: E731
    strips(t[t["claim_id"].isin(["5", "5a", "5b", "5c"])],
           lambda r, row: rec.difference(r, rec.ON_T, versus(row)).complete,
           f"{name}: claim 5, difference of class cosines", "Δ cos(δ, μ_target − μ_true)", log=False, ref=0.0,
           band=(-cosine_margin, cosine_margin))
