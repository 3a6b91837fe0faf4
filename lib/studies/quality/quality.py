"""Notebook 11: does the answer depend on how well the models are trained?

A supporter of DMM can say that the report's networks are undertrained: a converged autoencoder's tangent space, or
a converged classifier, would show the dimple. Three series of models answer it with the chain of notebooks 03-05,
each point measured on the same test images (correctly classified by every classifier of the series):
- "autoencoder": the autoencoder's checkpoints (lib.learn.checkpoints: kept by the training that made notebook 02's
  model), the classifier fixed (notebook 01's); quality: test reconstruction MSE;
- "classifier": the classifier's checkpoints, the autoencoder fixed; quality: test error;
- "data": autoencoders trained on fewer images for the same number of steps, beside notebook 02's at that step;
  quality: training images.
At each point the discriminating claims of notebook 09 (lib.studies.manifold.replication.claim_rows: 3, 4, 5b and
1b), and per series and claim the trend of the effect over the points' quality (lib.inference.trend), judged by the
report's one rule. The claims' effects are also put on notebook 08's steepness scale (lib.studies.worlds.worlds:
steepness_of): the dimpled world that would show the same effect.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lib.inference import published, stats, trend, verdicts
from lib.learn import checkpoints, train
from lib.reporting import report
from lib.studies.manifold import claims, replication
from lib.studies.worlds import worlds
from lib.infra.runtime import progress

FAMILY = "11 · model quality"
SERIES = {"autoencoder": "the autoencoder's training", "classifier": "the classifier's training",
          "data": "the autoencoder's training images"}
QUALITY = {"autoencoder": "test reconstruction MSE", "classifier": "test error", "data": "training images"}
CLAIM_IDS = replication.CLAIM_IDS
STEEP_CLAIMS = ("3", "4")  # the claims notebook 08's world maps to a steepness


@dataclass
class Point:
    """One pair of networks of a series: its label, the classifier and autoencoder (lib.learn.train.Trained), its
    quality (MSE, error rate or images) and x, the decades of improvement (-log10 of an error, log10 of images)."""
    series: str
    label: str
    classifier: train.Trained
    autoencoder: train.Trained
    quality: float
    x: float
    epoch: int | None = None
    mse: float | None = None  # the autoencoder's test reconstruction MSE (every series but the classifier's)


def steps_per_epoch(n_images, batch_size):
    return math.ceil(n_images / batch_size)


def points_for(d, settings, device, *, data_sizes, data_epochs, classifier_at=None, ae_at=None):
    """(points of the three series for the data set d, notes): the checkpoints of notebook 01's classifier and
    notebook 02's autoencoder (the kept epochs in classifier_at / ae_at, None: all, and the last), and autoencoders
    trained on each of data_sizes images for the steps of data_epochs epochs over all of notebook 02's (the
    autoencoder's checkpoint after data_epochs is the series' last point; it must be a kept epoch or the last)."""
    clf, ae = settings.classifier(d, device), settings.autoencoder(d, device)
    clfs = checkpoints.checkpoints("classifier", clf, device, classifier_at)
    aes = checkpoints.checkpoints("autoencoder", ae, device, ae_at)
    epochs = ae.meta["config"]["epochs"]
    kept = train.kept_epochs(epochs) + [epochs]
    if int(data_epochs) not in kept:
        raise ValueError(f"data_epochs must be an epoch the autoencoder's training kept ({kept}); got {data_epochs}")
    error = {e: 1 - train.accuracy(m.model, d.test_x, d.test_y, device) for e, m in clfs.items()}
    mse = {e: train.reconstruction_mse(m.model, d.test_x, device) for e, m in aes.items()}
    last_clf, last_ae = clfs[max(clfs)], aes[max(aes)]
    pts = [Point("autoencoder", f"epoch {e}", last_clf, m, mse[e], x_of("autoencoder", mse[e]), e, mse[e])
           for e, m in aes.items()]
    pts += [Point("classifier", f"epoch {e}", m, last_ae, error[e], x_of("classifier", error[e]), e)
            for e, m in clfs.items()]
    n_all, bs = len(ae.train_data.train_x), ae.meta["config"]["batch_size"]
    budget = int(data_epochs) * steps_per_epoch(n_all, bs)
    notes = []
    full = aes.get(int(data_epochs)) or checkpoints.checkpoints("autoencoder", ae, device, [data_epochs])[
        int(data_epochs)]
    full_mse = mse[int(data_epochs)] if int(data_epochs) in mse else train.reconstruction_mse(full.model, d.test_x,
                                                                                             device)
    sizes = sorted({int(n) for n in data_sizes if int(n) < n_all})
    if len(sizes) < len(set(data_sizes)):
        notes.append(f"{d.name}: data sizes of {n_all:,} images or more are the autoencoder of notebook 02 itself")
    for n in progress(sizes, desc=f"{d.name}: autoencoders on fewer images", unit="model", leave=False):
        e = max(1, round(budget / steps_per_epoch(n, bs)))
        m = settings.autoencoder(d, device, epochs=e, train_subset=n)
        q = train.reconstruction_mse(m.model, d.test_x, device)
        pts.append(Point("data", f"{n:,} images, {e} epochs ({e * steps_per_epoch(n, bs):,} steps)", last_clf, m, n,
                         x_of("data", n), e, q))
    pts.append(Point("data", f"{n_all:,} images, {data_epochs} epochs ({budget:,} steps)", last_clf, full, n_all,
                     x_of("data", n_all), int(data_epochs), full_mse))
    return pts, notes


def summary(points, dataset):
    """One row per point: series, label, quality, x, the autoencoder's training images."""
    return pd.DataFrame([{"dataset": dataset, "series": p.series, "point": p.label, "quality": p.quality, "x": p.x,
                          "test error": p.quality if p.series == "classifier" else np.nan,
                          "test reconstruction MSE": p.mse if p.mse is not None else np.nan,
                          "autoencoder images": len(p.autoencoder.train_data.train_x)} for p in points])


def attack_points(d, points, n_images, settings, *, seed=0, device="cpu", shard_size=50, scheduler=None,
                  flat_boundary=True):
    """The records of every point, with series / point / x / quality columns: notebook 09's attacks
    (replication.attack_pair) on the same n_images test images, correctly classified by every classifier of the
    points. A pair two series share (the last checkpoints) reads its shards from the cache."""
    ids = replication.common_images({id(p.classifier): p.classifier for p in points}.values(), d.test_x, d.test_y,
                                    n_images, seed, device)
    frames = []
    for p in progress(points, desc=f"{d.name}: model pairs", unit="pair", leave=False):
        r = replication.attack_pair(p.classifier, p.autoencoder, d, ids, settings, seed=seed, device=device,
                                    shard_size=shard_size, scheduler=scheduler, unclipped=flat_boundary)
        frames.append(r.assign(series=p.series, point=p.label, x=p.x, quality=p.quality))
    return pd.concat(frames, ignore_index=True)


def point_rows(records, margin=1.1, cosine_margin=0.05, max_failure_rate=0.5):
    """{(dataset, series, point): [Row]} with the points in their records' order."""
    out = {}
    for (name, series, point), r in records.groupby(["dataset", "series", "point"], sort=False):
        out[name, series, point] = replication.claim_rows(r, name, margin, cosine_margin, max_failure_rate)
    return out


def point_table(rows_by_point, records):
    """Every point's claims, one table (effects as the rule shows them; judged one family per point, for display:
    the verdicts that count are the trends')."""
    x = records.groupby(["dataset", "series", "point"], sort=False)[["x", "quality"]].first()
    tables = []
    for (name, series, point), rows in rows_by_point.items():
        t = verdicts.judge(rows, f"11 · {series} · {point}")
        tables.append(t.assign(series=series, point=point, x=x.loc[(name, series, point), "x"],
                               quality=x.loc[(name, series, point), "quality"]))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def trends(rows_by_point, records, alpha=0.05, n_boot=2000, seed=0, margin=1.1, cosine_margin=0.05):
    """(the verdict table of the trends, FAMILY, with where each would reach DMM's side ("reaches", reach_text);
    {(dataset, series, claim_id): (trend fit or None, [x], [Row])})."""
    x = records.groupby(["dataset", "series", "point"], sort=False)["x"].first()
    groups = {}
    for (name, series, point), rows in rows_by_point.items():
        for r in rows:
            groups.setdefault((name, series, r.claim_id), []).append((float(x.loc[(name, series, point)]), r))
    out_rows, reaches, fits = [], [], {}
    for (name, series, cid), pts in groups.items():
        pts.sort(key=lambda t: t[0])
        xs, rows = [p[0] for p in pts], [p[1] for p in pts]
        row, f = trend.trend_row(rows, xs, SERIES[series], alpha, n_boot, seed)
        out_rows.append(row)
        reaches.append(reach_text(f, row, series, margin, cosine_margin))
        fits[name, series, cid] = (f, xs, rows)
    table = verdicts.judge(out_rows, FAMILY, alpha)
    return table.assign(series=[r.notes["series"] for r in out_rows], reaches=reaches), fits


def quality_of(series, x):
    """A quality in its own units from x (decades): MSE or error rate 10^-x, images 10^x (x may be an array)."""
    return 10 ** np.asarray(x) if series == "data" else 10 ** -np.asarray(x)


def x_of(series, q):
    """x, the decades of improvement, of a quality in its own units: log10 of images, -log10 of an MSE or error rate
    (an error rate of 0 counts as 1e-6)."""
    q = np.asarray(q, float)
    return np.log10(q) if series == "data" else -np.log10(np.maximum(q, 1e-6) if series == "classifier" else q)


def quality_text(series, q):
    return f"{q:,.0f} images" if series == "data" else (f"MSE {q:.2g}" if series == "autoencoder" else
                                                         f"{100 * q:.2g}% error")


def reach_text(fit, row, series, margin, cosine_margin):
    """Where the trend would reach the DMM side of the margin if it went on, in the series' own units."""
    if fit is None:
        return "no trend (not testable)"
    s = 1 if row.predicted == "greater" else -1
    threshold = s * (np.log(margin) if row.scale == "ratio" else cosine_margin)
    r = trend.reach(fit, threshold, s)
    if r["already"]:
        return "already on it at the best point"
    early = quality_text(series, quality_of(series, r["earliest"])) if not np.isnan(r["earliest"]) else None
    late = quality_text(series, quality_of(series, r["latest"])) if not np.isnan(r["latest"]) else "never"
    if np.isnan(r["at"]):
        return (f"not on the fitted line within {r['beyond']:.0f} decades"
                + (f" (its 95% band reaches it from {early})" if early else ", nor on its 95% band"))
    return f"at {quality_text(series, quality_of(series, r['at']))} (95% band of the line: from {early} to {late})"


def steepness_table(point_table_, records):
    """Per point: the claim-3 and claim-4 effects (with intervals) on notebook 08's steepness scale, with the
    analytic references (the flat boundary's on/off ratio, the Beta median share) and with the random subspace's
    as measured on these networks (its median on/off ratio, its median gradient share)."""
    rows = []
    for (name, series, point), t in point_table_.groupby(["dataset", "series", "point"], sort=False):
        r = records[(records["dataset"] == name) & (records["series"] == series) & (records["point"] == point)
                    & records["clip"].astype(bool)]
        k, n = int(r.loc[r["subspace"] == "tangent", "k"].iloc[0]), int(r["n"].iloc[0])
        rand = r[r["subspace"] == "random"]
        on, off = (rand[rand["condition"] == c].set_index("image_id")["norm"] for c in ("on", "off"))
        ratio = float(np.exp(np.median(np.log((on / off).dropna()))))
        share = float(rand.loc[rand["condition"] == "on", "grad_share"].median())
        row = {"dataset": name, "series": series, "point": point, "x": t["x"].iloc[0], "quality": t["quality"].iloc[0]}
        for cid, ref in (("3", ratio), ("4", share)):
            c = t[t["claim_id"] == cid].iloc[0]
            vals = [worlds.steepness_of(cid, c[v], k, n) for v in ("effect", "ci_low", "ci_high")]
            row |= {f"claim {cid} effect": c["effect"], f"s (claim {cid})": vals[0],
                    f"s (claim {cid}) low": min(vals[1:]), f"s (claim {cid}) high": max(vals[1:]),
                    f"s (claim {cid}, measured reference)": worlds.steepness_of(cid, c["effect"], k, n, ref)}
        row |= {"random on/off (measured)": ratio, "random share (measured)": share, "k": k, "n": n}
        rows.append(row)
    return pd.DataFrame(rows)


def flat_reference(k=16, n=784):
    """The flat boundary's on/off ratio of a random subspace (the world's R, claim 3's steepness per unit effect)."""
    return stats.flat_boundary_median(k, n)


def steepness_view(steep):
    """The steepness table as the page shows it: the quality in its units, each s with its interval in one cell."""
    out = pd.DataFrame({"data set": steep["dataset"].map(lambda n: claims.DATASET_NAMES.get(n, n)),
                        "series": steep["series"], "point": steep["point"],
                        "quality": [quality_text(s, q) for s, q in zip(steep["series"], steep["quality"])]})
    for cid in STEEP_CLAIMS:
        out[f"claim {cid} effect"] = steep[f"claim {cid} effect"].map(lambda v: f"{v:.3g}×")
        out[f"s from claim {cid} [95% CI]"] = [f"{a:.3g} [{b:.3g}, {c:.3g}]" for a, b, c in zip(
            steep[f"s (claim {cid})"], steep[f"s (claim {cid}) low"], steep[f"s (claim {cid}) high"])]
        out[f"s from claim {cid}, measured reference"] = steep[f"s (claim {cid}, measured reference)"].map(
            lambda v: f"{v:.3g}")
    out["random on/off, share (measured)"] = [f"{a:.3g}, {b:.3g}" for a, b in zip(
        steep["random on/off (measured)"], steep["random share (measured)"])]
    return out


def dmm_steepness(k=16, n=784, margin=1.1):
    """{claim: the steepness beyond which the dimpled world's claim is supported} (notebook 08's turning points)."""
    return {cid: worlds.analytic_threshold(cid, margin, k, n) for cid in STEEP_CLAIMS}


def published_marks(series, dataset):
    """[(label, quality)] of the published models in a series' units (the autoencoders' test MSE, the classifiers'
    test error)."""
    if series == "autoencoder":
        return [(src, v[1]) for src, v in published.AUTOENCODER_MSE.get(dataset, {}).items() if v[1] is not None]
    if series == "classifier":
        return [(src, 1 - v) for src, v in published.CLASSIFIER_TEST_ACC.get(dataset, {}).items()]
    return []


def best_points(steep, margin):
    """Per data set: (name, the autoencoder series' last point, i.e. notebook 01-02's networks, and the s DMM needs
    for each claim at the data set's k and n)."""
    for name, s in steep.groupby("dataset") if len(steep) else []:
        best = s[s["series"] == "autoencoder"].sort_values("x").iloc[-1]
        yield name, best, dmm_steepness(int(best["k"]), int(best["n"]), margin)


def distance(steep, margin):
    """Per data set and claim (3, 4): where notebook 01-02's networks (the autoencoder series' last point) sit on the
    steepness scale, s with its 95% interval and the claim's effect (a ratio), beside the s DMM needs (the analytic
    turning point at the margin, at the data set's k and n): plain records for the index (lib.reporting.front)."""
    out = []
    for name, best, need in best_points(steep, margin):
        for cid in ("3", "4"):
            out.append({"dataset": name, "claim_id": cid, "s": float(best[f"s (claim {cid})"]),
                        "low": float(best[f"s (claim {cid}) low"]), "high": float(best[f"s (claim {cid}) high"]),
                        "effect": float(best[f"claim {cid} effect"]), "needed": float(need[cid])})
    return out


def answer(table, fits, steep, margin, cosine_margin):
    """Sentences: per data set, where the best networks sit on the steepness scale against DMM's (at the data set's
    k and n); then per series and claim the trend's verdict, its slope per decade and where it would reach DMM's
    side."""
    out = []
    for name, best, need in best_points(steep, margin):
        dn, measured = claims.DATASET_NAMES.get(name, name), best["s (claim 3, measured reference)"]
        out.append(
            f"{dn}: notebook 01-02's networks behave like a dimpled world of steepness s = {best['s (claim 3)']:.2g} "
            f"[{best['s (claim 3) low']:.2g}, {best['s (claim 3) high']:.2g}] by claim 3 (the tangent space's on/off "
            f"gap against a random subspace, with the flat boundary's random ratio; {measured:.2g} with the random "
            f"ratio measured on these networks) and s = {best['s (claim 4)']:.2g} [{best['s (claim 4) low']:.2g}, "
            f"{best['s (claim 4) high']:.2g}] by claim 4 (the gradient's share in the tangent space); DMM needs s "
            f"above {need['3']:.2g} and {need['4']:.2g}.")
        out += _heading(table, fits, name)
    for (name, series), t in table.groupby(["dataset", "series"], sort=False):
        key = series_key(series)
        xs = fits[name, key, t["claim_id"].iloc[0]][1]
        span = f"{quality_text(key, quality_of(key, min(xs)))} to {quality_text(key, quality_of(key, max(xs)))}"
        parts = [f"claim {r['short'].split(' ')[0]} {r['verdict']} ({r['effect_text'].replace(' (95% CI)', '')} per "
                 f"tenfold improvement; DMM's side {r['reaches']})" for _, r in t.iterrows()]
        out.append(f"{claims.DATASET_NAMES.get(name, name)}, over {series} ({len(xs)} points, {span}): "
                   + "; ".join(parts) + ".")
    return out


def _heading(table, fits, name):
    """[A sentence] on where the autoencoder's training is heading: claim 3's trend continued, beside the published
    autoencoders (an extrapolation, and how far beyond the measured range)."""
    t = table[(table["dataset"] == name) & (table["claim_id"] == "3") & (table["series"] == SERIES["autoencoder"])]
    if not len(t) or fits.get((name, "autoencoder", "3"), (None,))[0] is None:
        return []
    f, r = fits[name, "autoencoder", "3"][0], t.iloc[0]
    span = float(np.ptp(f["x"]))
    marks = "; ".join(f"{src}: MSE {q:.2g}" for src, q in published_marks("autoencoder", name)) or "none published"
    effect, verdict = r["effect_text"].replace(" (95% CI)", ""), r["verdict"]
    return [f"{claims.DATASET_NAMES.get(name, name)}: as the autoencoder trains (test MSE {10 ** -f['x'].min():.2g} "
            f"to {10 ** -f['x'].max():.2g}), claim 3's effect changes by {effect} per tenfold fall of the test MSE "
            f"({verdict}: a trend toward DMM is {'' if verdict == 'supported' else 'not '}established). Continued, it "
            f"would reach DMM's side {r['reaches']}; the published autoencoders: {marks}. That is an extrapolation "
            f"from {span:.2g} decades of measured training, and the verdicts of notebooks 05 and 09 describe the "
            "autoencoders trained here, not converged ones: a longer-trained autoencoder (a GPU) would settle it."]


def series_key(words):
    return next(k for k, v in SERIES.items() if v == words)


def headlines(steep, table, margin=1.1):
    """The index's figures: per data set, the best networks' steepness by claim 3 (with its interval) against DMM's
    turning point, and per trend row its slope and verdict."""
    out = []
    for name, best, need in best_points(steep, margin):
        out.append(report.headline(f"{name}: steepness s of the matching dimpled world (claim 3)",
                                   float(best["s (claim 3)"]), ci=(best["s (claim 3) low"], best["s (claim 3) high"]),
                                   note=f"DMM needs s > {need['3']:.2g}"))
    for _, r in table.iterrows() if len(table) else []:
        out.append(report.headline(f"{r['dataset']}: {r['short']} — {r['verdict']}", float(r["effect"]),
                                   "x" if r["scale"] == "ratio" else "", ci=(r["ci_low"], r["ci_high"]),
                                   note="per tenfold improvement"))
    return out
