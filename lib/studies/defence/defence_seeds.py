"""Notebook 07's verdicts over training seeds: every 07 row measured for several trainings of the defence and pooled.

The I-AE, the classifiers fine-tuned on P(x) and so 07's verdicts move with rounding-level changes of the trained
weights, so one training run is one draw. Seed s here (seeds[0] is the notebook's own run, the other seeds repeat it):

* varies: the I-AE's training at the λ chosen on seeds[0]'s sweep (its subset of the plain autoencoder's training
  images, batch order, latent draws: lib.learn.iae.IAEConfig.seed), and the fine-tuned classifiers of every
  projection defence (their training subset and batch order: lib.studies.defence.defence.FinetuneConfig.seed), with
  the fine-tune policy applied again to seed s's projections;
* fixed: the classifier of notebook 01 (the "none" defence), the plain autoencoder of notebook 02 (retraining it per
  seed is notebook 09's job and costs minutes per seed), the PCA projection (no randomness), the attacked images (the
  first `n_images` of the notebook's, the same for every seed), and the attacks and measurements with their seeds:
  the instrument stays the same, the trained defence changes.

Each seed's rows are defence_claims' rows on its own records at the verdict budgets, from the attacks of SEED_ATTACKS
(the same for every seed, the first included): 07c on the I-AE's on- and off-manifold PGD; 07d on the worst case per
image of transfer PGD, adaptive PGD and AutoAttack (L2; run on the images the PGD attacks left robust, the only ones
where it can change the worst case). The other attacks of the page (the baselines' on- and off-manifold PGD, Square
alone, the longer convergence run) are left out of every seed's worst case: on the first seed, `left_out` measures
what they change. The convergence check (whether a longer attack lowers robust accuracy by more than half the margin)
is the first seed's, carried to every seed. Each seed's rows are judged as one network's table; each row is pooled
over the seeds on the shared images
(lib.inference.pooling.pooled_row: robust-accuracy differences as the mean of per-image paired outcomes, the isometry
spreads as medians) and judged by the report's one rule in notebook 07's family, with the replication check (seeds
that disagree in sign cannot make a row supported) and how many seeds' own verdicts agree.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from lib.inference import pooling, verdicts
from lib.infra.runtime import show
from lib.reporting.tables import stack
from lib.studies.defence import defence_claims, defence_report, defence_setup, iae_study
from lib.studies.defence.defence_claims import FAMILY
from lib.studies.manifold.replication import seeds_of, with_agreement

__all__ = ["Plan", "FirstRun", "Seeds", "seeds_of", "replicate", "forest_panels", "interval_cost"]


SEED_ATTACKS = ("transfer", "adaptive", "AutoAttack")  # 07d's worst case in every seed; 07c: the I-AE's on/off PGD
ON_OFF = ("on-manifold", "off-manifold")


def seed_records(records):
    """The budget records of the attacks every seed runs (SEED_ATTACKS, and the I-AE's on- and off-manifold PGD)."""
    keep = records["attack"].isin(SEED_ATTACKS) | (records["attack"].isin(ON_OFF) & (records["defence"] == "I-AE"))
    return records[keep]


def left_out(records, verdict_eps):
    """How much the attacks the seeds leave out change the first seed's worst case: the largest difference, over
    data sets, defences and verdict budgets, between robust accuracy under every attack and under the seeds' attacks
    (07d's: SEED_ATTACKS), in points."""
    worst = 0.0
    for eps in verdict_eps:
        for name, r in records.groupby("dataset"):
            every = defence_claims.worst_case(r, eps).mean()
            own = defence_claims.worst_case(r[r["attack"].isin(SEED_ATTACKS)], eps).mean()
            worst = max(worst, float((own - every).abs().max() * 100))
    return worst


@dataclass(frozen=True)
class Plan:
    """What each extra seed repeats of the notebook's run (its parameters)."""

    iae: dict               # lib.studies.defence.iae_study.lambda_sweep's keyword settings (seed and λ aside)
    ae_subset: object       # the plain autoencoder's training subset (lib.learn.session.ModelSettings.ae_train_subset)
    finetune: object        # lib.studies.defence.defence.FinetuneConfig of seeds[0] (its seed replaced per seed)
    threshold: float        # the fine-tune policy's threshold
    eps_grid: tuple         # the budgets of the main run (the on/off-manifold PGD's budget is its largest)
    verdict_eps: tuple      # the budgets the rows judge
    steps: int              # PGD steps per budget
    restarts: int           # adaptive PGD restarts
    manifold: tuple         # (alpha, steps) of the on/off-manifold PGD
    autoattack: object      # lib.boundary.autoattack.SuiteConfig
    n_jacobian: int         # test images of the isometry rows
    radius: float           # projection_radius of the isometry measures
    margin: float           # negligible difference of robust accuracies


class FirstRun(NamedTuple):
    """The notebook's own run, seeds[0]: its models ({data set: {"clf", "ae", "iae", "k"}}), λ sweeps, defended
    models ({data set: (defences, images, labels)}), every attack's budget records, isometry spreads and the
    defences whose adaptive attack had not converged ({data set: set})."""

    models: dict
    sweeps: dict
    defended: dict
    records: object  # every attack's budget records (a DataFrame with a dataset column)
    spread: dict
    unconverged: dict


class Seeds(NamedTuple):
    """Notebook 07's rows over the seeds."""

    seeds: list
    rows: dict        # {(data set, seed): [lib.inference.verdicts.Row]}
    per_seed: object  # each seed's rows judged as one network's table (family "07 · seed s"), one table
    pooled: object    # the rows pooled over the seeds, family FAMILY, with agreeing_seeds and seed_verdicts
    models: object    # per data set and seed: λ, the I-AE, the fine-tuned classifiers, seconds
    n_images: int     # images attacked per seed
    left_out: float   # what the attacks the seeds leave out change on the first seed (points; `left_out`)


def replicate(first: FirstRun, found, seeds, n_images, plan: Plan, device="cpu") -> Seeds:
    """Every 07 row for each seed of `seeds` (seeds[0]: `first`, the notebook's run, on its first `n_images` attacked
    images; the others: `seed_rows`), each seed's table and the pooled table (`pool_rows`)."""
    if not 1 <= n_images <= min([len(x) for _, x, _ in first.defended.values()] or [n_images]):
        raise ValueError(f"seed_images must be >= 1 and at most n_images; got {n_images}")
    rows, summary = {}, []
    for name, (_, x, y) in first.defended.items():
        r = first.records[(first.records["dataset"] == name) & (first.records["image"] < n_images)]
        unconverged = first.unconverged.get(name, set())
        rows[name, seeds[0]] = _rows(name, seed_records(r), first.spread[name], plan, unconverged)
        summary.append({"dataset": name, "seed": seeds[0], "lambda": first.sweeps[name].lam,
                        "I-AE": first.models[name]["iae"].summary(), "fine-tuned": "as above", "seconds": 0.0})
        for s in seeds[1:]:
            t0 = time.time()
            rows[name, s], tuned = seed_rows(name, found[name], first.models[name], first.sweeps[name].lam,
                                             x[:n_images], y[:n_images], s, seeds[0], plan, unconverged, device)
            summary.append({"dataset": name, "seed": s, "lambda": first.sweeps[name].lam, **tuned,
                            "seconds": time.time() - t0})
    per_seed, pooled = pool_rows(rows, seeds)
    shared = first.records[first.records["image"] < n_images]
    return Seeds(list(seeds), rows, per_seed, pooled, pd.DataFrame(summary), n_images,
                 left_out(shared, plan.verdict_eps))


def seed_rows(name, d, base, lam, x, y, s, seed0, plan: Plan, unconverged, device):
    """One extra seed `s` of one data set: the I-AE at λ = `lam` trained with seed s (iae_study.lambda_sweep, cached),
    the defences with classifiers fine-tuned with seed s where the policy asks (defence_setup.defences_for, cached),
    the seeds' attacks on the images x (labels y) at the verdict budgets (`seed_records`' attacks, cached, with the
    main run's attack seeds `seed0`), and the isometry spreads at the first plan.n_jacobian test images; the
    defences in `unconverged` (the first seed's convergence check) make their rows inconclusive. Returns (its 07
    rows, a summary of its models)."""
    sweep = iae_study.lambda_sweep(d, base["ae"], [lam], ae_subset=plan.ae_subset, seed=s, device=device, **plan.iae)
    iae = sweep.chosen
    setup = defence_setup.defences_for(name, d, base["clf"], base["ae"], iae, plan.threshold,
                                       replace(plan.finetune, seed=s), device)
    budgets = [float(e) for e in plan.verdict_eps]
    pgd = defence_report.attack_records(setup.defences, setup.keys, base["clf"].model, x, y, eps_grid=budgets,
                                        steps=plan.steps, restarts=plan.restarts, seed=seed0)
    on_off, _ = defence_report.manifold_attacks({name: (setup.defences, x, y)}, keys={name: setup.keys},
                                                eps_grid=plan.eps_grid, alpha=plan.manifold[0],
                                                steps=plan.manifold[1], only=("I-AE",))
    aa = autoattack_left(setup.defences, setup.keys, x, y, pgd, budgets, plan.autoattack, name)
    every = stack([pgd.assign(dataset=name), on_off, aa.assign(dataset=name)])
    _, _, spread = iae_study.isometry(name, base["ae"].model, iae.model, d.test_x[:plan.n_jacobian].to(device),
                                      plan.radius, seed0)
    tuned = {"I-AE": iae.summary(), "fine-tuned": "; ".join(f"{k}: {v}" for k, v in setup.finetuned.items()) or "no"}
    return _rows(name, every, spread, plan, unconverged), tuned


def autoattack_left(defences, keys, x, y, pgd, budgets, cfg, label=""):
    """AutoAttack (L2, lib.boundary.autoattack.suite_records, cached) on each defence at each budget, on the images
    the PGD attacks (`pgd`: budget records) left robust: the others are broken in the worst case already. Budget
    records of attack "AutoAttack" for every image (an image PGD broke counts as not broken by AutoAttack here)."""
    from lib.boundary import autoattack as aa

    frames = []
    for eps in budgets:
        at = pgd[np.isclose(pgd["eps"].astype(float), eps)]
        for d, net in defences.items():
            broken = at[at["defence"] == d].groupby("image")["broken"].any().reindex(range(len(x)), fill_value=False)
            todo = np.flatnonzero(~broken.to_numpy(bool))
            hit = np.zeros(len(x), bool)
            if len(todo):
                ids = torch.tensor(todo, device=x.device)
                r = aa.suite_records({d: net}, keys, x[ids], y[ids], norm="L2", eps_list=[eps], cfg=cfg,
                                     label=f"{label} seed")
                hit[todo[r["broken_by"].to_numpy() != ""]] = True
            frames.append(pd.DataFrame({"defence": d, "attack": "AutoAttack", "eps": float(eps),
                                        "image": np.arange(len(x)), "broken": hit}))
    return stack(frames, ["defence", "attack", "eps", "image", "broken"])


def _rows(name, records, spread, plan, unconverged):
    """The 07 rows of one seed of one data set (defence_claims), each with its budget in notes (eps, NaN for 07a/b)."""
    rows = defence_claims.isometry_rows(name, spread["plain AE"], spread["I-AE"])
    rows = [replace(r, notes={**r.notes, "eps": np.nan}) for r in rows]
    return rows + defence_claims.defence_rows(name, records, plan.verdict_eps, plan.margin, unconverged)


def _budget(eps):
    """A row's budget as text ("" for the isometry rows, which have none): a key that compares equal."""
    return f"{float(eps):g}" if pd.notna(eps) else ""


def _key(row):
    return row.dataset, row.claim_id, _budget(row.notes.get("eps"))


def pool_rows(rows, seeds, alpha=0.05):
    """(each seed's rows judged as one network's table, family "07 · seed s", stacked with a seed column; the rows
    pooled over the seeds, lib.inference.pooling.pooled_row (robust-accuracy differences: each seed's mean paired
    difference, images shared; isometry spreads: medians; inconclusive where a seed's row is for its checks: the
    convergence check), judged in FAMILY (lib.inference.pooling.judge: seeds
    that disagree in sign are not supported), with how many seeds' own verdicts agree)."""
    per_seed = stack([verdicts.judge(r, f"07 · seed {s}").assign(seed=s) for (_, s), r in rows.items() if r])
    groups = {}
    for s in seeds:
        for (name, t), rs in rows.items():
            if t == s:
                for r in rs:
                    groups.setdefault(_key(r), []).append(r)
    pooled = []
    for _, rs in groups.items():
        first = rs[0]
        p = pooling.pooled_row(rs, "training seeds", alpha=alpha,
                               statistic="mean" if first.scale == "points" else "median")
        keep = {k: first.notes[k] for k in ("eps", "other") if k in first.notes}
        # a check that makes a seed's row inconclusive (its defences' attack had not converged) holds for the pool
        robust = all(r.robust_to_failures for r in rs)
        pooled.append(replace(p, notes={**p.notes, **keep}, robust_to_failures=p.robust_to_failures and robust))
    table = pooling.judge(pooled, FAMILY, alpha)
    if not len(table) or not len(per_seed):
        return per_seed, table
    key = lambda t: t.assign(row=[f"{c}@{_budget(e)}" for c, e in zip(t["claim_id"], t["eps"])])
    return per_seed, with_agreement(key(table), key(per_seed), by=("dataset", "row")).drop(columns="row")


DECIDING = ("07c", "07d/plain AE", "07d/pca", "07d/none")  # the defence rows: robust-accuracy differences


def forest_panels(result: Seeds, dataset, margin):
    """plots_replication.forest's panels for one data set: per defence row and budget, each seed's robust-accuracy
    difference with its 95% interval (coloured by its own verdict) and the pooled mean (in points)."""
    panels = {}
    pooled = result.pooled[result.pooled["dataset"] == dataset]
    for _, p in pooled[pooled["claim_id"].isin(DECIDING)].iterrows():
        entries = []
        for s in result.seeds:
            r = [r for r in result.rows.get((dataset, s), [])
                 if _key(r) == (dataset, p["claim_id"], _budget(p["eps"]))]
            v = result.per_seed[(result.per_seed["seed"] == s) & (result.per_seed["dataset"] == dataset)
                                & (result.per_seed["claim_id"] == p["claim_id"])
                                & np.isclose(result.per_seed["eps"].astype(float), p["eps"])]["verdict"]
            if r:
                entries.append((f"seed {s}", 100 * r[0].effect, 100 * r[0].ci_low, 100 * r[0].ci_high,
                                v.iloc[0] if len(v) else None, False))
        label = "pooled" if pd.notna(p["effect"]) else f"pooled: {p['verdict']}"
        entries.append((label, 100 * p["effect"], 100 * p["ci_low"], 100 * p["ci_high"], p["verdict"], True))
        panels[f"{p['short'].split(' · ')[0]}, ε = {p['eps']:g}"] = {
            "scale": "difference", "band": (-100 * margin, 100 * margin), "entries": entries,
            "xlabel": "robust accuracy difference (points, 0 = none), 95% CI"}
    return panels


def interval_cost(result: Seeds, n_images):
    """A sentence per data set: the median width of the seeds' own 95% intervals of the defence rows on
    `result.n_images` images, what the same rows' intervals would be on `n_images` (width scales as 1/√n), and the
    pooled intervals' median width."""
    out = []
    for name in result.pooled["dataset"].unique() if len(result.pooled) else []:
        own = result.per_seed[(result.per_seed["dataset"] == name) & result.per_seed["claim_id"].isin(DECIDING)]
        pool = result.pooled[(result.pooled["dataset"] == name) & result.pooled["claim_id"].isin(DECIDING)]
        w_seed = float(np.nanmedian(own["ci_high"] - own["ci_low"])) * 100
        w_pool = float(np.nanmedian(pool["ci_high"] - pool["ci_low"])) * 100
        w_full = w_seed * np.sqrt(result.n_images / n_images)
        out.append(f"{name}: a seed's interval of a robust-accuracy difference on {result.n_images} images is "
                   f"{w_seed:.0f} points wide (median over the defence rows), about {w_full:.0f} on all {n_images} "
                   f"images; pooled over {len(result.seeds)} seeds, {w_pool:.0f} points.")
    return out


def show_summary(result: Seeds, n_images):
    """On the page: the seeds' models (one line per data set), what the attacks the seeds leave out change on the
    first seed, and what attacking fewer images per seed costs in the intervals (`interval_cost`)."""
    for name, t in result.models.groupby("dataset", sort=False):
        show(f"**{name}**: " + "; ".join(f"seed {r['seed']}: I-AE λ = {r['lambda']:g} ({r['I-AE']}), fine-tuned "
                                         f"classifiers: {r['fine-tuned']}" for _, r in t.iterrows()))
    show(f"On the first seed, the attacks left out of the seeds' worst case change a robust accuracy at the verdict "
         f"budgets by at most {result.left_out:.0f} points.")
    for sentence in interval_cost(result, n_images):
        show(f"*What the seeds cost in the intervals.* {sentence}")


PER_SEED_COLUMNS = ["seed", "dataset", "short", "eps", "effect_text", "p_margin_holm", "n", "verdict"]
POOLED_COLUMNS = ["dataset", "short", "eps", "effect_text", "tau2", "rho", "p_margin_holm", "n", "power",
                  "agreeing_seeds", "seed_verdicts", "verdict"]


def per_seed_view(per_seed):
    """Each seed's verdict table as the page shows it (a pandas Styler)."""
    return per_seed[[c for c in PER_SEED_COLUMNS if c in per_seed]].style.format(
        {"p_margin_holm": "{:.3g}", "eps": "{:g}"}, na_rep="–").hide(axis="index")


def pooled_view(pooled):
    """The pooled verdict table as the page shows it (a pandas Styler; n: the seeds pooled)."""
    return pooled[[c for c in POOLED_COLUMNS if c in pooled]].rename(columns={"n": "seeds"}).style.format(
        {"p_margin_holm": "{:.3g}", "power": "{:.2f}", "tau2": "{:.3g}", "rho": "{:.2f}", "eps": "{:g}"},
        na_rep="–").hide(axis="index")
