"""Notebook 09: do the discriminating verdicts replicate across independently trained models?

Every verdict of notebook 05 rests on one classifier and one autoencoder per data set: its intervals say what holds
for *that* pair of networks. Here the pair is retrained with several seeds (seed s: classifier seed s and
autoencoder seed s, through lib.learn.train's cached functions, so seed 0 is notebooks 01-02's pair), every pair attacks
the same test images (correctly classified by every seed's classifier) under notebook 03's settings, the
discriminating claims are measured per pair with lib.studies.manifold.claims' functions, and each claim is pooled over
the seeds by a random-effects meta-analysis (lib.inference.pooling) and judged by the report's one rule
(lib.inference.verdicts).

Besides the seed pairs (both networks vary together, the replicate), two series vary one network only: the
classifier seed with the autoencoder at seed 0, and the autoencoder seed with the classifier at seed 0. Their
between-seed variances (tau^2) say which network carries the variation (claims 3, 4 and 5b: one set of clipped
attacks gives all three).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from lib.experiments import experiment
from lib.inference import pooling, verdicts
from lib.learn import train
from lib.studies.manifold import claims
from lib.infra.runtime import per_dataset, progress

FAMILY = "09 · replication (seeds pooled)"
FAMILY_ONE = "09 · replication, one network varied"
SERIES = {"both": "classifier and autoencoder seeds together", "classifier": "classifier seed (autoencoder at seed 0)",
          "autoencoder": "autoencoder seed (classifier at seed 0)"}
CLAIM_IDS = ("3", "4", "5b", "1b")  # the discriminating claims with a fixed control (random), and 1b
ONE_NETWORK = ("3", "4", "5b")      # measured in the one-network series too


@dataclass
class SeedModels:
    """One data set's models per seed: {seed: lib.learn.train.Trained} for classifiers and autoencoders, and a table of
    their test accuracy and reconstruction MSE."""
    classifiers: dict
    autoencoders: dict
    summary: pd.DataFrame


def seeds_of(seed: int, n_seeds: int) -> list[int]:
    """The model seeds: seed (notebooks 01-02's pair), seed + 1, ..."""
    if n_seeds < 2:
        raise ValueError(f"n_seeds must be >= 2 (one seed replicates nothing); got {n_seeds}")
    return [seed + i for i in range(n_seeds)]


def seed_models(d, seeds, settings, device="cpu", extra_ae_epochs=None) -> SeedModels:
    """The classifier and autoencoder of the profile's shared settings (lib.learn.session.ModelSettings) for every seed
    (cached; seeds[0] is the pair of notebooks 01 and 02). extra_ae_epochs (int, {dataset: int} or None): the
    autoencoder epochs of the other seeds, where a profile shortens them to fit its time (None: as seeds[0])."""
    clfs, aes, rows = {}, {}, {}
    # the extra seeds first: while notebooks 01 and 02 still train seeds[0]'s pair (make report runs them side by
    # side), this notebook trains its own instead of waiting on their cache locks
    for s in progress(list(seeds[1:]) + list(seeds[:1]), desc=f"{d.name}: models per seed", unit="seed", leave=False):
        clfs[s] = settings.classifier(d, device, seed=s)
        shorter = s != seeds[0] and per_dataset(extra_ae_epochs, d.name) is not None
        aes[s] = settings.autoencoder(d, device, seed=s, epochs=extra_ae_epochs if shorter else None)
        rows[s] = {"dataset": d.name, "seed": s, "classifier": clfs[s].summary(),
                   "test accuracy": train.accuracy(clfs[s].model, d.test_x, d.test_y, device),
                   "autoencoder": aes[s].summary(), "autoencoder epochs": aes[s].meta["config"]["epochs"],
                   "test MSE": train.reconstruction_mse(aes[s].model, d.test_x, device)}
    return SeedModels({s: clfs[s] for s in seeds}, {s: aes[s] for s in seeds}, pd.DataFrame([rows[s] for s in seeds]))


@torch.no_grad()
def common_images(classifiers, x, y, n, seed=0, device="cpu"):
    """Indices of up to n images that every classifier classifies correctly, in experiment.pick_correct's seeded
    order: the same test images for every seed pair."""
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    ok = torch.ones(len(x), dtype=torch.bool)
    for m in classifiers:
        pred = torch.cat([m.model(x[order[i:i + 1000]].to(device)).argmax(1).cpu() for i in range(0, len(x), 1000)])
        ok &= pred == y[order]
    return order[ok][:n]


def pairs(seeds, separately=True):
    """(classifier seed, autoencoder seed) pairs: the seed pairs, then (with ``separately``) one network varied."""
    out = [(s, s) for s in seeds]
    if separately:
        out += [(s, seeds[0]) for s in seeds[1:]] + [(seeds[0], s) for s in seeds[1:]]
    return out


def attack_pair(clf, ae, d, ids, settings, *, seed=0, device="cpu", shard_size=50, scheduler=None,
                unclipped=True):
    """Per-image records of one pair on the test images ``ids``: on/off the tangent space and on/off a random
    subspace of the same k (clipped), and (``unclipped``) the tangent on/off attacks without clipping (claim 1b).
    Shards are cached as in notebooks 03 and 04 (the random attacks depend on the classifier only, so a pair that
    shares a classifier reads them from the cache)."""
    specs = [experiment.tangent_spec(ae), experiment.control_spec("random", ae.model.latent_dim, seed)]
    runs = [(settings, specs)] + ([(experiment.unclipped(settings), specs[:1])] if unclipped else [])
    frames = []
    for s, sp in runs:
        exp = experiment.AttackExperiment(clf, d, "test", 1, s, seed=seed, device=device, shard_size=shard_size,
                                          scheduler=scheduler)
        exp.ids, exp.x, exp.y = ids, d.test_x[ids], d.test_y[ids]  # the common images, not this classifier's own
        frames += [exp.run(c, spec).records for spec in sp for c in ("on", "off")]
    return pd.concat(frames, ignore_index=True)


def attack_all(found, models, n_images, settings, *, seed=0, device="cpu", shard_size=50, scheduler=None,
               separately=True, flat_boundary=True):
    """(records of every pair of every data set, with clf_seed and ae_seed columns; notes for the reader): tqdm over
    the pairs. A data set with fewer than n_images images that every seed's classifier gets right says so; with
    none, it is left out."""
    frames, notes = [], []
    for name, d in found.items():
        m = models[name]
        seeds = list(m.classifiers)
        ids = common_images(m.classifiers.values(), d.test_x, d.test_y, n_images, seed, device)
        if len(ids) < n_images:
            notes.append(f"{name}: {len(ids)} test images are classified correctly by every seed's classifier, fewer "
                         f"than n_images = {n_images}" + ("; left out" if not len(ids) else ""))
        if not len(ids):
            continue
        for c, a in progress(pairs(seeds, separately), desc=f"{name}: seed pairs", unit="pair", leave=False):
            r = attack_pair(m.classifiers[c], m.autoencoders[a], d, ids, settings, seed=seed, device=device,
                            shard_size=shard_size, scheduler=scheduler, unclipped=flat_boundary and c == a)
            frames.append(r.assign(clf_seed=c, ae_seed=a))
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), notes


def series_of(records, series, seed0):
    """The records of one series: "both" (clf_seed == ae_seed), "classifier" (ae_seed == seed0) or "autoencoder"
    (clf_seed == seed0); the pair (seed0, seed0) belongs to every series."""
    c, a = records["clf_seed"], records["ae_seed"]
    keep = {"both": c == a, "classifier": a == seed0, "autoencoder": c == seed0}[series]
    return records[keep]


def claim_rows(r, name, margin=1.1, cosine_margin=0.05, max_failure_rate=0.5, claim_ids=CLAIM_IDS):
    """[Row] of one pair of networks' records ``r`` on data set ``name`` (lib.studies.manifold.claims' functions;
    claim 5b against the random subspace, a control that stays the same whatever the networks); 1b only where the
    records hold unclipped attacks."""
    lm, rows = np.log(margin), []
    clipped, free = r[r["clip"].astype(bool)], r[~r["clip"].astype(bool)]
    where = {"dataset": name, "split": "test", "clip": True}
    makers = {"3": lambda: claims.claim_gap(clipped, where, "random", lm, max_failure_rate),
              "4": lambda: claims.claim_gradient_share(clipped, where, lm),
              "5b": lambda: claims.claim_class_cosine(clipped, where, ("on", "random"), cosine_margin),
              "1b": lambda: claims.claim_flat_boundary(free, {**where, "clip": False}, lm)}
    for cid in claim_ids:
        if cid == "1b" and not len(free):
            continue
        rows.append(makers[cid]())
    return rows


def seed_rows(records, margin=1.1, cosine_margin=0.05, max_failure_rate=0.5, claim_ids=CLAIM_IDS):
    """{(dataset, clf_seed, ae_seed): [Row]}: the claims of each pair's records (claim_rows)."""
    return {(name, int(c), int(a)): claim_rows(r, name, margin, cosine_margin, max_failure_rate, claim_ids)
            for (name, c, a), r in records.groupby(["dataset", "clf_seed", "ae_seed"])}


def per_seed_table(rows_by_pair):
    """The seed pairs' verdicts, each pair its own Holm family (as notebook 05 judges one network), one table."""
    tables = [verdicts.judge(rows, f"09 · seed {c}").assign(clf_seed=c, ae_seed=a)
              for (name, c, a), rows in sorted(rows_by_pair.items()) if c == a]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def pooled_tables(rows_by_pair, seed0, method="dl", hksj=True, alpha=0.05, separately=True):
    """(pooled table of the seed pairs, FAMILY; table of the one-network series, FAMILY_ONE; groups) with groups
    {(dataset, claim_id, series): [(clf_seed, ae_seed, Row)]}, the seed rows each pooled row pools."""
    groups = {}
    for (name, c, a), rows in sorted(rows_by_pair.items()):
        for series in ("both",) + (("classifier", "autoencoder") if separately else ()):
            if (series == "both" and c != a) or (series == "classifier" and a != seed0) or \
                    (series == "autoencoder" and c != seed0):
                continue
            for r in rows:
                if series == "both" or r.claim_id in ONE_NETWORK:
                    groups.setdefault((name, r.claim_id, series), []).append((c, a, r))
    main, one = [], []
    for (name, cid, series), seeds in groups.items():
        row = pooling.pooled_row([r for _, _, r in seeds], SERIES[series], method, hksj, alpha)
        (main if series == "both" else one).append(row)
    return pooling.judge(main, FAMILY, alpha), pooling.judge(one, FAMILY_ONE, alpha), groups


def with_agreement(pooled, per_seed, by=("dataset", "claim_id")):
    """The pooled table with how many seed pairs' own verdicts agree with the pooled one, and their verdicts; a seed's
    row is the pooled row's where the columns `by` agree."""
    out = pooled.copy()
    agree, said = [], []
    for _, r in out.iterrows():
        same = np.logical_and.reduce([per_seed[c] == r[c] for c in by])
        v = per_seed[same]["verdict"]
        agree.append(f"{int((v == r['verdict']).sum())} of {len(v)}")
        said.append(", ".join(f"{k} ×{n}" for k, n in v.value_counts().items()))
    return out.assign(agreeing_seeds=agree, seed_verdicts=said)


def variance_source(one_network: pd.DataFrame, pooled: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per data set and claim: tau^2 with the classifier seed varied and with the autoencoder seed varied, with
    their upper confidence bounds, which estimate is larger ("neither" where both are 0: a few seeds cannot tell
    which network carries the variance, nor that there is none), and (from ``pooled``) tau^2 with both varied."""
    rows = []
    for (name, cid), t in one_network.groupby(["dataset", "claim_id"]) if len(one_network) else []:
        tau = {s: float(t.loc[t["series"] == SERIES[s], "tau2"].iloc[0]) for s in ("classifier", "autoencoder")
               if (t["series"] == SERIES[s]).any()}
        if len(tau) < 2:
            continue
        larger = "neither" if max(tau.values()) == 0 else max(tau, key=tau.get)
        upper = {s: float(t.loc[t["series"] == SERIES[s], "tau2_upper"].iloc[0]) if "tau2_upper" in t else np.nan
                 for s in ("classifier", "autoencoder")}
        rows.append(
            {
                "dataset": name,
                "claim_id": cid,
                "short": t["short"].iloc[0].split(" · ")[0],
                "tau² (classifier varied)": tau["classifier"],
                "tau² (autoencoder varied)": tau["autoencoder"],
                "tau² upper bound (classifier)": upper["classifier"],
                "tau² upper bound (autoencoder)": upper["autoencoder"],
                "seeds": int(t["n"].max()) if "n" in t else np.nan,
                "larger estimate": larger,
            }
        )
        both = pooled[(pooled["dataset"] == name) & (pooled["claim_id"] == cid)] if pooled is not None else []
        if len(both):
            rows[-1]["tau² (both varied)"] = float(both["tau2"].iloc[0])
    return pd.DataFrame(rows)


def forest_panels(groups, tables, dataset, series=("both",), per_seed=None, margin=1.1, cosine_margin=0.05):
    """plots_replication.forest's panels for one data set: per claim, each series' seeds (coloured by their own
    verdict where per_seed has one) and its pooled row from ``tables`` (the pooled tables, concatenated)."""
    panels = {}
    for cid in CLAIM_IDS:
        entries, scale = [], None
        for s in series:
            seeds = groups.get((dataset, cid, s), [])
            t = tables[(tables["dataset"] == dataset) & (tables["claim_id"] == cid) & (tables["series"] == SERIES[s])]
            if not seeds or not len(t):
                continue
            scale = seeds[0][2].scale
            show = np.exp if scale == "ratio" else (lambda v: v)
            for c, a, r in seeds:
                v = None
                if per_seed is not None and len(per_seed) and s == "both":
                    m = per_seed[(per_seed["dataset"] == dataset) & (per_seed["claim_id"] == cid)
                                 & (per_seed["clf_seed"] == c)]["verdict"]
                    v = m.iloc[0] if len(m) else None
                label = f"seed {c}" if s == "both" else (f"classifier {c}" if s == "classifier" else f"autoencoder {a}")
                entries.append((label, show(r.effect), show(r.ci_low), show(r.ci_high), v, False))
            p = t.iloc[0]
            entries.append((f"pooled: {s}" if len(series) > 1 else "pooled", p["effect"], p["ci_low"], p["ci_high"],
                            p["verdict"], True))
        if entries:
            band = (1 / margin, margin) if scale == "ratio" else (-cosine_margin, cosine_margin)
            panels[claims.CLAIMS[cid][0]] = {"scale": scale, "band": band, "entries": entries}
    return panels


def answer(pooled: pd.DataFrame, source: pd.DataFrame) -> list[str]:
    """Sentences: per data set and claim, the pooled effect with its interval, tau^2, the agreeing seeds and the
    verdict; then which network carries the between-seed variance."""
    out = []
    for _, r in pooled.iterrows():
        name = claims.DATASET_NAMES.get(r["dataset"], r["dataset"])
        upper = r.get("tau2_upper", np.nan)
        bound = f" (up to {upper:.3g} not ruled out by {r['seeds']} seeds)" if pd.notna(upper) else ""
        out.append(
            f"{name}, claim {r['short'].split(' · ')[0]} over {r['seeds']} seed pairs on the same images: pooled "
            f"{r['effect_text'].split(' (')[0]}, tau² = {r['tau2']:.3g}{bound}; {r['verdict']} "
            f"({r['agreeing_seeds']} seeds' own verdicts agree: {r['seed_verdicts']})."
        )
    for _, s in source.iterrows():
        name = claims.DATASET_NAMES.get(s["dataset"], s["dataset"])
        bounds = (f"; upper {1 - 0.05:.0%} bounds {s['tau² upper bound (classifier)']:.3g} and "
                  f"{s['tau² upper bound (autoencoder)']:.3g}" if pd.notna(s["tau² upper bound (classifier)"]) else "")
        who = {"classifier": "the classifier's estimate is the larger", "autoencoder": "the autoencoder's (the "
               "manifold estimate's) is the larger", "neither": "neither estimate is above 0"}[s["larger estimate"]]
        who += (f"{bounds}. With {s['seeds']} seeds an estimate says little: a tau² of 0 is often estimated where "
                "the true one is positive, so this shows neither that the seeds add no variance nor which network "
                "carries it")
        both = (f" (both varied together: {s['tau² (both varied)']:.3g})"
                if pd.notna(s.get("tau² (both varied)", np.nan)) else "")
        out.append(f"{name}, claim {s['short']}: between-seed variance tau² = {s['tau² (classifier varied)']:.3g} with "
                   f"the classifier's seed varied, {s['tau² (autoencoder varied)']:.3g} with the autoencoder's{both}: "
                   f"{who}.")
    return out
