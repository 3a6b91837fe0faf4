"""Notebook 07's attacks of the defended models beyond lib.studies.defence.defence.attack_defences, and what it reports:
its parameter checks, robust accuracy per data set (`robust_table`), the convergence check of the adaptive attack
(`convergence`), the on- and off-manifold attacks of each defence (`manifold_attacks`), the verdict table
(lib.studies.defence.defence_claims' rows, judged), the answer in sentences, the headline figures and the caveats."""
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from lib.boundary import attacks
from lib.geometry import manifold, subspaces
from lib.inference import verdicts
from lib.infra import cache, memo
from lib.infra.artifacts import Artifact
from lib.infra.runtime import show
from lib.reporting import report
from lib.studies.defence import defence
from lib.studies.defence import defence_claims
from lib.studies.defence import defence_setup
from lib.studies.defence.defence_claims import FAMILY
from lib.reporting.tables import lookup, stack

RECORD_COLUMNS = ["defence", "attack", "eps", "image", "broken", "first_step", "dataset"]
ROBUST_COLUMNS = ["defence", "attack", "eps", "robust accuracy", "dataset"]
BASELINES = ("I-AE", "plain AE", "pca", "none")  # the defences, in the order the headline figures name them


def check_params(lambdas, recon_tolerance, eps_grid, finetune_threshold, seed_images=None, n_images=None):
    """ValueError unless recon_tolerance > 0, lambdas a non-empty list of values >= 0, finetune_threshold in [0, 1),
    eps_grid a non-empty list of budgets > 0 and (where given) seed_images at most n_images."""
    if seed_images is not None and n_images is not None and seed_images > n_images:
        raise ValueError(f"seed_images must be at most n_images ({n_images}): the seeds attack a subset of the "
                         f"attacked images; got {seed_images}")
    if not 0 < recon_tolerance or not lambdas or min(lambdas) < 0:
        raise ValueError("recon_tolerance must be > 0 and lambdas a non-empty list of values >= 0")
    if not 0 <= finetune_threshold < 1 or not eps_grid or min(eps_grid) <= 0:
        raise ValueError("finetune_threshold must be in [0, 1) and eps_grid a non-empty list of budgets > 0")


def robust_table(records, names):
    """lib.studies.defence.defence.robust_accuracy of the per-image records of each data set in `names`, stacked with a
    dataset column."""
    return stack([defence.robust_accuracy(records[records["dataset"] == n]).assign(dataset=n) for n in names]
                 or [pd.DataFrame(columns=ROBUST_COLUMNS)])


def _cached(section, keys, x, y, settings, build):
    """build()'s value, cached (lib.infra.memo) under `section`, its `settings`, the identities of the defended models
    (`keys`, {defence: identity}: their classifiers' and projections' cache keys), the attacked images and labels and
    ATTACKS' version: a second run with the same parameters reads what the first computed."""
    config = {"section": section, "models": keys, "images": cache.hash_tensor(x) + cache.hash_tensor(y),
              "settings": settings}
    return memo.cached_result(ATTACKS.kind, ATTACKS.key(config), build)[0]


class Defended(NamedTuple):
    """Notebook 07's defended models and their first attacks (`defend_and_attack`)."""

    setups: dict    # {data set: lib.studies.defence.defence_setup's setup (defences, keys, message)}
    defended: dict  # {data set: (defences {name: model}, attacked images, labels)}
    keys: dict      # {data set: {defence: its identity}}: the cache keys of what is computed with it
    records: object  # the transfer and adaptive PGD records of every data set (a DataFrame)


class Convergence(NamedTuple):
    """The longer adaptive attack beside the main one (`convergence`)."""

    curves: dict       # {data set: {defence: (iterations, robust accuracy after each)}}
    records: object    # per-image records of the long run (a DataFrame)
    table: object      # main run beside the long run, per defence (a DataFrame)
    unconverged: dict  # {data set: the defences whose long run lowered robust accuracy by more than half the margin}


def defend_and_attack(models, found, threshold, finetune, n_images, *, eps_grid, steps, restarts, seed,
                      device) -> Defended:
    """Per data set: its defences (lib.studies.defence.defence_setup.defences_for, whose message is shown), the test
    images attacked, and the transfer and adaptive PGD records of attack_records: a Defended."""
    setups, defended, records = {}, {}, []
    for name, m in models.items():
        s = setups[name] = defence_setup.defences_for(name, found[name], m["clf"], m["ae"], m["iae"], threshold,
                                                      finetune, device)
        show(s.message)
        x, y = defence_setup.attacked_images(m["clf"].model, found[name], n_images, seed, device)
        defended[name] = (s.defences, x, y)
        records.append(attack_records(s.defences, s.keys, m["clf"].model, x, y, eps_grid=eps_grid, steps=steps,
                                      restarts=restarts, seed=seed).assign(dataset=name))
    return Defended(setups, defended, {name: s.keys for name, s in setups.items()}, stack(records, RECORD_COLUMNS))


def attack_records(defences, keys, source, x, y, *, eps_grid, steps, restarts, seed):
    """lib.studies.defence.defence.attack_defences (transfer from the bare classifier `source` and adaptive PGD) on
    `defences` ({defence: model}, identities `keys`), cached."""
    settings = {"eps_grid": [float(e) for e in eps_grid], "steps": steps, "restarts": restarts, "seed": seed}
    return _cached("attack_defences", keys, x, y, settings,
                   lambda: defence.attack_defences(defences, source, x, y, eps_grid, steps, restarts, seed))


def convergence(defended, robust, *, keys, eps, steps, restarts, attack_steps, margin, seed) -> Convergence:
    """The adaptive attack at `eps` again, `steps` per restart and `restarts` restarts (seed + 1), on every defence of
    `defended` ({data set: (defences, images, labels)}): its robust accuracy after each iteration, per-image records
    ("adaptive (long)", each defence's run cached under its identity in `keys`), a row beside the main run's value (from
    `robust`, the main run of `attack_steps` steps), and the defences whose longer run lowered robust accuracy by more
    than half the margin (lib.studies.defence.defence_claims.not_converged): a Convergence."""
    curves, frames, rows, unconverged = {}, [], [], {}
    for name, (defences, x, y) in defended.items():
        curves[name], main_acc, long_acc = {}, {}, {}
        for label, net in defences.items():
            def run(net=net):
                out = defence.pgd_budget(net, x, y, eps=eps, steps=steps, restarts=restarts, seed=seed + 1)
                return {"broken": out.broken.cpu(), "first_step": out.first_step.cpu()}
            out = _cached("convergence", {label: keys[name][label]}, x, y,
                          {"eps": float(eps), "steps": steps, "restarts": restarts, "seed": seed + 1}, run)
            iters = np.arange(0, steps * restarts + 1)
            curves[name][label] = (iters + 1, [(out["first_step"] > t).float().mean().item() for t in iters])
            frames.append(pd.DataFrame({"defence": label, "attack": "adaptive (long)", "eps": float(eps),
                                        "image": np.arange(len(x)), "broken": out["broken"].numpy(), "dataset": name}))
            main_acc[label] = lookup(robust, "robust accuracy", np.nan, dataset=name, defence=label, attack="adaptive",
                                     eps=eps)
            long_acc[label] = curves[name][label][1][-1]
            rows.append({"dataset": name, "defence": label, f"main run ({attack_steps} steps)": main_acc[label],
                         f"{steps} steps x {restarts} restarts": long_acc[label]})
        unconverged[name] = defence_claims.not_converged(main_acc, long_acc, margin)
    return Convergence(curves, stack(frames, RECORD_COLUMNS), pd.DataFrame(rows), unconverged)


def show_unconverged(unconverged, margin):
    """A warning on the page for each data set of `unconverged` ({data set: defences}) whose adaptive attack had not
    converged for some defences."""
    for name, labels in unconverged.items():
        if labels:
            show(f"> **{name}: the adaptive attack had not converged** for {', '.join(sorted(labels))}: "
                 f"the longer run lowers robust accuracy by more than half the margin ({100 * margin / 2:g} points), "
                 "so verdicts that involve them are inconclusive.")


def manifold_attacks(defended, *, keys, eps_grid, alpha, steps, only=None):
    """Notebook 03's greedy PGD on every defence of `defended` ({data set: (defences, images, labels)}; `only`: on
    those defences alone) with its gradient confined to (on-manifold) or away from (off-manifold) the defence's own
    manifold: the I-AE's tangent space for the I-AE, the plain autoencoder's for the plain AE and for no defence, the
    principal subspace for PCA (each the projection of that defence); budget max(eps_grid); cached per data set under
    the attacked defences' identities `keys[data set]`. Returns (budget records at each eps of eps_grid, one summary
    row per data set, defence and attack)."""
    frames, rows = [], []
    for name, (defences, x, y) in defended.items():
        labels = tuple(d for d in defences if only is None or d in only)
        greedy = _cached(
            "manifold_attacks",
            {d: keys[name][d] for d in labels},
            x,
            y,
            {"eps": float(max(eps_grid)), "alpha": alpha, "steps": steps},
            lambda: _greedy(defences, x, y, max(eps_grid), alpha, steps, labels),
        )
        frames.append(defence.records_at(greedy, eps_grid).assign(dataset=name))
        for (label, attack), r in greedy.groupby(["defence", "attack"], sort=False):
            norms = np.where(r["success"], r["norm"], np.inf)
            rows.append({"dataset": name, "defence": label, "attack": attack,
                         f"broken within ε = {max(eps_grid):g}": float(r["success"].mean()),
                         "median ‖δ‖ (failures count as larger)": float(np.median(norms)),
                         "median share of ‖δ‖² in its subspace": float(r["subspace_share"].median())})
    return stack(frames, RECORD_COLUMNS), pd.DataFrame(rows)


def _greedy(defences, x, y, eps, alpha, steps, labels):
    """defence.subspace_attacks on the defences `labels`, each confined to its own manifold's tangent space."""
    own = {"none": "plain AE", "plain AE": "plain AE", "I-AE": "I-AE"}  # whose tangent space; pca: its basis
    tangents = {own[d]: subspaces.tangent_subspace(defences[own[d]].project, x) for d in labels if d in own}
    subs = {d: tangents[own[d]] if d in own else subspaces.BasisSubspace(defences[d].project.Q, "pca") for d in labels}
    return defence.subspace_attacks({d: defences[d] for d in labels}, subs, x, y, eps=eps, alpha=alpha, steps=steps)


# What defines the attack results cached here (lib.infra.artifacts): the attacks, and the subspaces they are confined
# to.
ATTACKS = Artifact("defence_attacks", 1, (defence.pgd_budget, defence.attack_defences, defence.misclassified,
                                          defence.subspace_attacks, attacks.pgd_l2, subspaces.tangent_subspace,
                                          manifold.tangent_basis, _greedy))


def verdict_table(spread, every_attack, verdict_eps, margin, unconverged):
    """Notebook 07's verdicts (lib.studies.defence.defence_claims, one Holm family): per data set of `spread` ({data
    set: {"plain AE", "I-AE": per-image spread}}) the isometry rows 07a, 07b and the defence rows 07c, 07d on the
    per-image records of every attack run (`every_attack`), defences in `unconverged[data set]` inconclusive."""
    rows = []
    for name, sp in spread.items():
        rows += defence_claims.isometry_rows(name, sp["plain AE"], sp["I-AE"])
        rows += defence_claims.defence_rows(name, every_attack[every_attack["dataset"] == name], verdict_eps, margin,
                                            unconverged.get(name, set()))
    return verdicts.judge(rows, FAMILY)


def rules_markdown(margin):
    """The verdict rule of notebook 07's family (lib.inference.verdicts) with its negligible bands."""
    return verdicts.rules_markdown(FAMILY, f"Negligible band: ± {100 * margin:g} points of robust "
                                           "accuracy; log 1.1 of isometry spread.")


def answer(names, worst, manifold_robust, table, verdict_eps, eps_grid):
    """A sentence per data set: robust accuracy of each defence under the worst case of every attack (ours and
    AutoAttack; `worst`, a robust table of attack "worst case") at the last verdict budget with the verdict of 07d
    (I-AE vs plain AE; `table`: the verdicts pooled over training seeds, lib.studies.defence.defence_seeds, whose
    row says how many seeds' own verdicts agree), and the I-AE's under on- and off-manifold PGD."""
    def acc(name, d, attack, eps, t=worst):
        return lookup(t, "robust accuracy", np.nan, dataset=name, defence=d, attack=attack, eps=eps)

    out = []
    for name in names:
        e = verdict_eps[-1] if verdict_eps else eps_grid[-1]
        v = lookup(table, dataset=name, claim_id="07d/plain AE", eps=e)
        said = "not tested" if v is None else (
            f"{v['verdict']} over {int(v['n'])} training seeds, {v['effect_text']}, "
            f"{v.get('agreeing_seeds', '?')} seeds' own verdicts agreeing" if "agreeing_seeds" in v else v["verdict"])
        out.append(
            f"{name}: against every attack run (our PGD and AutoAttack, worst case per image) at ε = {e:g}, the "
            f"I-AE defence keeps {acc(name, 'I-AE', 'worst case', e):.0%} of the images robust, the plain AE "
            f"{acc(name, 'plain AE', 'worst case', e):.0%}, PCA {acc(name, 'pca', 'worst case', e):.0%}, no defence "
            f"{acc(name, 'none', 'worst case', e):.0%} (I-AE better than the plain AE: "
            f"{said}). Confined to the I-AE's manifold, PGD leaves "
            f"{acc(name, 'I-AE', 'on-manifold', e, manifold_robust):.0%} robust at ε = {e:g}; confined to its "
            f"normal space, {acc(name, 'I-AE', 'off-manifold', e, manifold_robust):.0%}."
        )
    return out


def headlines(names, worst, spread, verdict_eps):
    """Robust accuracy of each defence under the worst case of every attack at the last verdict budget (`worst`, a
    robust table of attack "worst case"; Wilson interval), and the median
    spread mean|log σ| ({data set: {label: per-image spread}}) of the I-AE's and the plain autoencoder's decoders;
    one placeholder without data sets."""
    def where(name, label, e):
        return dict(dataset=name, defence=label, attack="worst case", eps=e)

    return [
        report.headline(
            f"{name}: robust accuracy under every attack (PGD and AutoAttack, worst case) at ε = {e:g}, "
            f"{label} (Wilson 95% interval)",
            lookup(worst, "robust accuracy", np.nan, **where(name, label, e)),
            "%",
            ci=lookup(worst, ("CI low", "CI high"), **where(name, label, e)),
        )
        for name in names
        for e in verdict_eps[-1:]
        for label in BASELINES
    ] + [
        report.headline(
            f"{name}: median spread of J_D singular values mean|log σ|, {label}", float(np.median(spread[name][label]))
        )
        for name in names
        for label in ("I-AE", "plain AE")
    ] or [report.headline("no data set available", 0)]


def caveats(iae_epochs, iae_train_subset, n_images, warm_start=True):
    """The caveats of scale the index repeats: how short the I-AE's training is, and that our PGD gives upper bounds."""
    start = "warm-started from the plain autoencoder" if warm_start else "from random weights"
    return [f"The I-AE is trained {iae_epochs} epochs on {iae_train_subset:,} images, {start}, "
            "and robust accuracies come from our own PGD and AutoAttack (worst case per image) on "
            f"{n_images} images per data set: upper bounds of what a stronger attack leaves."]


def autoattack(defended, keys, *, l2_eps, linf_eps, square_eps, cfg, transfer=None):
    """AutoAttack's standard suite (lib.boundary.autoattack, cfg: its iterations, targets and Square queries) on every
    defence of `defended` ({data set: (defences, images, labels)}; `keys`: {data set: {defence: identity}}, for the
    cache): in L2 at each budget of `l2_eps`, in L-inf at `linf_eps[data set]` where given, and Square alone (L2, the
    black-box check) at `square_eps` where the checks need it (`square_alone`; `transfer`: budget records of the
    transfer attack, with a dataset column). Defences run in the order given (the cheap ones first). Returns
    (per-image suite records with norm and broken_by, budget records of attacks "AutoAttack" and "Square alone" in L2,
    the table of robust accuracy after each attack of the suite)."""
    from lib.boundary import autoattack as aa

    suites, budget = [], []
    for name, (defences, x, y) in defended.items():
        runs = [("L2", l2_eps)] + ([("Linf", [linf_eps[name]])] if name in linf_eps else [])
        for norm, eps in runs:
            s = aa.suite_records(defences, keys[name], x, y, norm=norm, eps_list=eps, cfg=cfg, label=name)
            suites.append(s.assign(dataset=name))
        moved = (
            None if transfer is None else transfer[(transfer["dataset"] == name) & (transfer["attack"] == "transfer")]
        )
        budget.append(square_alone(defences, keys[name], x, y, suites[-len(runs)], square_eps, cfg, name, moved)
                      .assign(attack="Square alone", dataset=name))
    suite = stack(suites, ["defence", "norm", "eps", "image", "broken_by", "dataset"])
    budget.append(aa.as_budget_records(suite[suite["norm"] == "L2"]))
    return suite, stack(budget, ["defence", "attack", "eps", "image", "broken", "dataset"]), aa.cumulative_table(suite)


def square_alone(defences, keys, x, y, l2_suite, eps, cfg, label="", transfer=None):
    """Square Attack alone (L2, budget eps, cfg's queries) where the black-box check needs it, as budget records
    (defence, eps, image, broken). Check 3 (lib.studies.defence.checklist) asks that Square alone leave no more images
    robust than the transfer attack (beyond noise); that the white-box attacks leave no more than Square alone follows
    from the suite's own Square run, which is Square alone on the images they left. So: no run for "none" (no transfer
    check); for a projection defence, the suite's Square result on the images the white-box attacks left (`l2_suite`,
    per-image suite records), and Square alone on the images they broke that the transfer attack broke too
    (`transfer`: its budget records; None: every image they broke). Square's other breaks could only add to its count,
    so the records give an upper bound of its robust accuracy: the check is conservative. Without `eps` in the suite:
    Square on every image."""
    from lib.boundary import autoattack as aa

    at = l2_suite[np.isclose(l2_suite["eps"].astype(float), eps)]
    frames = []
    for d, net in defences.items():
        if d == "none":
            continue
        s = at[at["defence"] == d].sort_values("image")
        broken = np.zeros(len(x), bool)
        todo = np.arange(len(x))
        if len(s) == len(x):
            white = ~s["broken_by"].isin(["", "Square"]).to_numpy()
            broken[s["image"][s["broken_by"] == "Square"].to_numpy()] = True
            if transfer is not None:
                t = transfer[(transfer["defence"] == d) & np.isclose(transfer["eps"].astype(float), eps)]
                white &= np.isin(np.arange(len(x)), t["image"][t["broken"].astype(bool)].to_numpy())
            todo = np.flatnonzero(white)
        if len(todo):
            ids = torch.tensor(todo, device=x.device)
            r = aa.suite_records({d: net}, keys, x[ids], y[ids], norm="L2", eps_list=[eps], cfg=cfg,
                                 attacks=("Square",), label=f"{label} Square alone")
            broken[todo[r["broken_by"].to_numpy() != ""]] = True
        frames.append(pd.DataFrame({"defence": d, "eps": float(eps), "image": np.arange(len(x)), "broken": broken}))
    return stack(frames, ["defence", "eps", "image", "broken"])
