"""Notebook 10's first experiment: fresh classifiers trained on mislabelled adversarial sets
(lib.studies.training.mislabeled), swept over the perturbation budget, one cache entry per data set.

For one relabelling (D_rand or D_det) of ``n_relabel`` training images (a seeded random subset), every variant's set
is built by targeted PGD from the notebook-01 classifier at every budget of the sweep (``budget_settings``: a number
eps runs every one of its steps, as Ilyas et al. do; "minimal" stops each image at its first iterate classified t, the
smallest crossing along the attack's path), plus the two controls (the images labelled t without any perturbation;
the original images and labels), which no budget changes. The tangent bases and random subspaces of a batch serve
every budget, relabelling and variant.

With ``equal_size`` every fresh classifier trains on the same number of images, m = ceil(min_success x n_relabel)
(a seeded random subset of its set's successes), so that its accuracy moves with the budget and the subspace, not with
how many images an attack kept; a set that kept fewer than m is not trained at that budget (the rows that need it are
not testable there). A fresh classifier of the notebook-01 architecture and optimiser is trained on each set for
``fresh_epochs`` epochs, and its per-image correctness on the clean test set, with the true labels, is stored: one
classifier per set at every budget, ``n_seeds`` (training seeds seed, seed + 1, ...) at the budgets the verdicts read
(``judged_budgets``: the smallest fixed budget at which the unconstrained attack keeps at least ``min_success`` of
its images, and the largest).

Whether a set's images already look like their new labels (``visibility``): the share of its kept images that an
independent classifier (``judge``: notebook 01's architecture trained from another seed, which the attack never saw)
calls t, and the share whose nearest class mean (the training images' mean per class, in pixels) is t's.
"""
import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from lib.experiments import experiment
from lib.geometry import subspaces
from lib.inference import stats
from lib.infra import cache
from lib.learn import train
from lib.studies.training import mislabeled
from lib.infra.artifacts import Artifact
from lib.infra.names import BUDGET_NAMES, DATASET_NAMES
from lib.infra.runtime import progress

N_EXAMPLES = 2        # source images shown per relabelling at every budget (one row of the examples grid each)
MINIMAL = BUDGET_NAMES[0]  # "minimal": the budget that stops each image at its first crossing into t's region
STEP_RULE = 2.5       # step length = STEP_RULE x eps / steps (Madry et al. 2018's rule)


@dataclass(frozen=True)
class TargetedSettings:
    eps: float                   # L2 budget, [0, 1] pixel scale
    alpha: float                 # step length
    steps: int                   # steps (every one is run: Ilyas et al.)
    stop_at_target: bool = False  # True: stop at the first iterate classified t (the minimal crossing)


def check_budgets(budgets):
    """The sweep's budgets, validated: "minimal" and numbers > 0, at least one number, none twice."""
    eps = [b for b in budgets if b != MINIMAL]
    bad = [b for b in eps if isinstance(b, bool) or not isinstance(b, (int, float)) or not b > 0]
    if bad or not eps or len(set(map(str, budgets))) != len(budgets):
        raise ValueError(f"relabel_budgets: numbers > 0 (L2, [0, 1] pixels) and optionally {MINIMAL!r}, at least one "
                         f"number, none twice; got {budgets!r}")
    return list(budgets)


def budget_label(b):
    """A budget as the page writes it: "minimal crossing" or "ε = 2"."""
    return "minimal crossing" if b == MINIMAL else f"ε = {float(b):g}"


def budget_settings(budget, steps, largest):
    """TargetedSettings of one budget: eps = budget, every one of ``steps`` steps of length STEP_RULE x eps / steps;
    "minimal": within the ``largest`` budget, each image stopping at its first iterate classified t."""
    eps = float(largest if budget == MINIMAL else budget)
    return TargetedSettings(eps, STEP_RULE * eps / steps, int(steps), stop_at_target=budget == MINIMAL)


def build_sets(clf, ae, data, relabellings, variants, budgets, n_relabel, seed=0, batch_size=1000):
    """({budget: {relabelling: {name: Relabelled}}} for every variant at every budget (``budgets``: {budget:
    TargetedSettings}) and both controls, the attacked images, their true labels, {relabelling: targets}). The images
    are attacked a batch at a time, and each batch's tangent bases (QR of the decoder's Jacobian: the batched route of
    notebook 03) and random subspaces (seeded by the image's index) serve every budget, relabelling and variant: one
    batch's subspaces in memory at a time."""
    sub = data.subset(n_relabel, None, seed)
    x, y = sub.train_x, sub.train_y
    targets = {r: mislabeled.targets(y, r, data.num_classes, seed) for r in relabellings}
    parts = {(b, r, v): [] for b in budgets for r in relabellings for v in variants}
    k = ae.model.latent_dim
    for i in progress(range(0, len(x), batch_size), desc="relabelled sets", unit="batch", leave=False):
        xb, ib = x[i:i + batch_size], torch.arange(i, min(i + batch_size, len(x)))
        spaces = {
            kind: subspaces.make_subspace(kind, k, xb.to(next(clf.model.parameters()).device),
                                          ae=ae.model if kind == "tangent" else None, seed=seed, ids=ib.tolist())
            for kind in {mislabeled.SUBSPACE_OF[v] for v in variants} - {None}
        }
        for (b, r, v), got in progress(parts.items(), desc="budgets x sets", leave=False):
            kind = mislabeled.SUBSPACE_OF[v]
            s = mislabeled.relabel(clf.model, xb, y[i:i + batch_size], v, targets[r][i:i + batch_size],
                                   settings=asdict(budgets[b]),
                                   subspace_for=(lambda *_, kind=kind: spaces[kind]) if kind else None,
                                   batch_size=batch_size)
            got.append(replace(s, source=s.source + i))
    sets = {b: {r: {v: mislabeled.concat(parts[b, r, v]) for v in variants} for r in relabellings} for b in budgets}
    controls = {r: {c: mislabeled.relabel(clf.model, x, y, c, targets[r]) for c in mislabeled.CONTROL_SETS}
                for r in relabellings}
    return sets, controls, x, y, targets


def _shown(sets, n, seed):
    """N_EXAMPLES source images to show, the ones the most (budget, relabelling, variant) sets kept (ties in a seeded
    random order): the examples grid then has the fewest blanks."""
    count = torch.zeros(n)
    for per_r in sets.values():
        for per_v in per_r.values():
            for s in per_v.values():
                count[s.source] += 1
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    best = order[torch.argsort(-count[order], stable=True)][:N_EXAMPLES]
    return best.sort().values


def _fresh(cfg, x, label, num_classes, device="cpu"):
    model, _ = train.fit(train.build_classifier(cfg, num_classes), x, label, F.cross_entropy, cfg, device,
                         "fresh classifier")
    return model


def nearest_mean(x, means):
    """The class whose mean image is nearest to each image (L2, pixels; ``means``: experiment.class_means)."""
    return torch.cdist(x.flatten(1).double(), means.double()).argmin(1) if len(x) else \
        torch.zeros(0, dtype=torch.long)


def visibility(x, target, judge, means, device="cpu"):
    """{"judge": images the independent classifier calls t, "means": images whose nearest class mean is t's}, counts
    over the set x labelled ``target``."""
    return {"judge": int((train.predict(judge, x, device) == target).sum()),
            "means": int((nearest_mean(x, means) == target).sum())}


def train_size(n_relabel, min_success, equal_size=True):
    """The images every fresh classifier trains on with ``equal_size`` (None: each set all its kept images)."""
    return max(1, math.ceil(min_success * n_relabel)) if equal_size else None


def judged_budgets(rates, budgets, min_success):
    """The budgets the verdicts read, in sweep order: the smallest number at which the unconstrained success rate
    (``rates``: {budget: rate}) reaches ``min_success``, and the largest number (one budget where they coincide;
    only the largest where none reaches it)."""
    numbers = sorted((b for b in budgets if b != MINIMAL), key=float)
    small = next((b for b in numbers if rates.get(b, 0.0) >= min_success), None)
    return [b for b in budgets if b in {small, numbers[-1]}]


def run_study(clf, ae, data, judge, *, relabellings, variants, budgets, steps, n_relabel, fresh_epochs,
              min_success, n_seeds=3, equal_size=True, seed=0, device="cpu"):
    """The whole sweep of one data set (module docstring), from the cache when there: {"budgets": [...], "judged":
    {relabelling: [budgets]}, "m", "n_attacked", "results": {(budget, relabelling, set): {"kept", "n_train",
    "median_norm", "norm_q" (quartiles), "visible": {"judge", "means"} (counts over the kept images), "correct":
    {training seed: bool per test image} (empty where the set kept fewer than m)}}, "controls": {relabelling:
    {set: ...}} (budget-free: the same fields), "examples": {(budget, relabelling, set): (images, kept mask)},
    "shown": {relabelling: (y, t)}, "baseline": {"judge", "means"}: each detector's accuracy on the clean
    attacked images, "hit"}."""
    budgets = check_budgets(budgets)
    if not 0 < min_success <= 1:
        raise ValueError(f"min_success must lie in (0, 1]; got {min_success}")
    if int(n_seeds) != n_seeds or n_seeds < 1:
        raise ValueError(f"n_seeds must be an integer >= 1; got {n_seeds}")
    largest = max(float(b) for b in budgets if b != MINIMAL)
    settings = {b: budget_settings(b, steps, largest) for b in budgets}
    cfg = replace(train.config_from("classifier", clf.meta["config"]), epochs=fresh_epochs, seed=seed)
    m = train_size(n_relabel, min_success, equal_size)
    config = {"classifier": clf.key, "autoencoder": ae.key, "judge": judge.key, "data": data.identity(),
              "relabellings": list(relabellings), "variants": list(variants),
              "budgets": {str(b): asdict(s) for b, s in settings.items()}, "n_relabel": n_relabel,
              "fresh": asdict(cfg), "m": m, "min_success": min_success, "n_seeds": int(n_seeds), "seed": seed}

    def build():
        sets, controls, x, y, targets = build_sets(clf, ae, data, relabellings, variants, settings, n_relabel, seed)
        means = experiment.class_means(data.train_x.double(), data.train_y)
        n = len(y)
        shown = _shown(sets, n, seed)
        tensors, meta = {}, {"n_attacked": n, "m": m, "budgets": [str(b) for b in budgets], "judged": {}, "sets": {},
                             "shown": {r: (y[shown].tolist(), targets[r][shown].tolist()) for r in relabellings},
                             "baseline": {"judge": train.accuracy(judge.model, x, y, device),
                                          "means": float((nearest_mean(x, means) == y).float().mean())}}

        def one(key, s, seeds):
            if not key.endswith("/original") and (s.label == y[s.source]).any():
                raise RuntimeError(f"the {key} set keeps a true label: the relabelled set would leak it")
            pick = torch.randperm(len(s.source), generator=torch.Generator().manual_seed(seed))[:m] \
                if m is not None else torch.arange(len(s.source))
            trained = m is None or len(s.source) >= m
            for t in progress(seeds if trained else [], desc=f"fresh classifiers {key}", leave=False):
                model = _fresh(replace(cfg, seed=t), s.x[pick], s.label[pick], data.num_classes, device)
                tensors[f"{key}/correct/{t}"] = train.predict(model, data.test_x, device) == data.test_y
            norms = s.norm.double()
            meta["sets"][key] = {"kept": len(s.source), "n_train": len(pick) if trained else 0,
                                 "median_norm": float(norms.median()) if len(norms) else float("nan"),
                                 "norm_q": torch.quantile(norms, torch.tensor([0.25, 0.75], dtype=torch.double))
                                 .tolist() if len(norms) else [float("nan")] * 2,
                                 "visible": visibility(s.x, s.label, judge.model, means, device),
                                 "seeds": list(seeds) if trained else []}
            where = {int(j): i for i, j in enumerate(s.source.tolist())}
            kept = torch.tensor([int(j) in where for j in shown.tolist()], dtype=torch.bool)
            tensors[f"{key}/examples"] = torch.stack([s.x[where[int(j)]] if int(j) in where else torch.zeros_like(x[0])
                                                      for j in shown.tolist()]) if len(shown) else x[:0]
            tensors[f"{key}/shown_kept"] = kept

        for r in relabellings:
            for c, s in controls[r].items():
                one(f"control/{r}/{c}", s, [seed])
            rates = {b: sets[b][r]["unconstrained"].success_rate for b in budgets} if "unconstrained" in variants \
                else {}
            judged = judged_budgets(rates, budgets, min_success) if rates else []
            meta["judged"][r] = [str(b) for b in judged]
            for b in budgets:
                for v, s in sets[b][r].items():
                    seeds = [seed + i for i in range(int(n_seeds))] if b in judged else [seed]
                    one(f"{b}/{r}/{v}", s, seeds)
        return tensors, meta

    key = STUDY.key(config)
    entry, hit = cache.cached(STUDY.kind, key, build)
    return _unpack(entry, hit)


def _unpack(entry, hit):
    meta, sd = entry["meta"], entry["state_dict"]
    parse = lambda b: b if b == MINIMAL else float(b)
    results, controls, examples = {}, {}, {}
    for key, s in meta["sets"].items():
        first, r, name = key.split("/")
        item = {**s, "correct": {t: sd[f"{key}/correct/{t}"] for t in s["seeds"]}}
        examples[(first if first == "control" else parse(first), r, name)] = (sd[f"{key}/examples"],
                                                                             sd[f"{key}/shown_kept"])
        if first == "control":
            controls.setdefault(r, {})[name] = item
        else:
            results[(parse(first), r, name)] = item
    return {"budgets": [parse(b) for b in meta["budgets"]], "judged": {r: [parse(b) for b in bs]
                                                                        for r, bs in meta["judged"].items()},
            "m": meta["m"], "n_attacked": meta["n_attacked"], "results": results, "controls": controls,
            "examples": examples, "shown": meta["shown"], "baseline": meta["baseline"], "hit": hit}


NAMES = {"unconstrained": "unconstrained", "on": "on (tangent space)", "off": "off (normal space)",
         "random": "random subspace (same k)", "unperturbed": "control: labels t, no perturbation",
         "original": "control: original images and labels"}


SETS_ORDER = ("unconstrained", "off", "on", "random")


def _order(b):
    return -1.0 if b == MINIMAL else float(b)


def sweep_table(study, dataset):
    """One row per budget, relabelling and set (the controls once, budget "none"): images attacked and kept (success
    rate, Wilson 95% CI), the kept perturbations' median norm and quartiles, the images trained on, the visibility
    check (share of the kept images the independent classifier calls t, share whose nearest class mean is t's; Wilson
    95% CIs), and the clean test accuracy with true labels: the first seed's with its Wilson 95% interval over the test
    images, the mean of the seeds where several were trained, and their spread."""
    rows = []
    n_att = study["n_attacked"]
    items = [("none", r, c, s) for r, cs in study["controls"].items() for c, s in cs.items()]
    items += [(b, r, v, s) for (b, r, v), s in sorted(study["results"].items(), key=lambda kv: (kv[0][1], _order(
        kv[0][0]), SETS_ORDER.index(kv[0][2]) if kv[0][2] in SETS_ORDER else 9))]
    for b, r, name, s in items:
        perturbed = name in mislabeled.VARIANTS
        rate_lo, rate_hi = stats.wilson_ci(s["kept"], n_att) if perturbed else (np.nan, np.nan)
        accs = [float(c.float().mean()) for c in s["correct"].values()]
        first = next(iter(s["correct"].values()), None)
        k, n = (int(first.sum()), len(first)) if first is not None else (0, 0)
        lo, hi = stats.wilson_ci(k, n) if n else (np.nan, np.nan)
        row = {"dataset": dataset, "relabelling": f"D_{r}", "budget": b, "budget_text": "none" if b == "none"
               else budget_label(b), "set": name, "training set": NAMES[name],
               "attacked": n_att if perturbed else np.nan, "kept": s["kept"],
               "success rate": s["kept"] / n_att if perturbed else np.nan, "success CI low": rate_lo,
               "success CI high": rate_hi, "median norm": s["median_norm"] if perturbed else np.nan,
               "norm q1": s["norm_q"][0] if perturbed else np.nan, "norm q3": s["norm_q"][1] if perturbed else np.nan,
               "trained on": s["n_train"], "seeds": len(accs),
               "test accuracy": k / n if n else np.nan, "CI low": lo, "CI high": hi, "correct": k, "N": n,
               "mean accuracy": float(np.mean(accs)) if accs else np.nan, "seed accuracies": accs,
               "seed spread": float(np.max(accs) - np.min(accs)) if len(accs) > 1 else np.nan}
        for what in ("judge", "means"):  # the original set keeps its true labels: no target to look like
            got = s["visible"][what]
            v_lo, v_hi = stats.wilson_ci(got, s["kept"]) if s["kept"] and name != "original" else (np.nan, np.nan)
            row.update({f"looks like t: {what}": got / s["kept"] if s["kept"] and name != "original" else np.nan,
                        f"looks like t: {what} CI low": v_lo, f"looks like t: {what} CI high": v_hi})
        rows.append(row)
    return pd.DataFrame(rows)


def correctness(study, budget):
    """{seed: {(relabelling, set): bool numpy array per test image}} of the sets trained at ``budget``."""
    out = {}
    for (b, r, name), s in study["results"].items():
        if b == budget:
            for t, c in s["correct"].items():
                out.setdefault(t, {})[(r, name)] = c.numpy()
    return out


def success_rates(study, budget):
    """{(relabelling, variant): share of the attacked images kept} at ``budget``."""
    return {(r, name): s["kept"] / study["n_attacked"] for (b, r, name), s in study["results"].items() if b == budget}


def visibility_words(table, threshold=0.5):
    """Per relabelling, in words: at which budgets more than ``threshold`` of the unconstrained set's kept images
    already look like their new label, by the nearest class mean and by the independent classifier (which shares the
    attacked classifier's non-robust features, so it measures transfer as much as visibility)."""
    out = []
    u = table[(table["budget"] != "none") & (table["set"] == "unconstrained")]
    for (ds, rl), t in u.groupby(["dataset", "relabelling"], sort=False):
        def where(what):
            above = t[t[f"looks like t: {what}"] > threshold]["budget_text"].tolist()
            top = t.loc[t[f"looks like t: {what}"].idxmax()] if t[f"looks like t: {what}"].notna().any() else None
            if above:
                return "at " + ", ".join(above)
            return "at no budget of the sweep" + (f" (at most {top[f'looks like t: {what}']:.0%}, at "
                                                  f"{top['budget_text']})" if top is not None else "")
        out.append(f"{DATASET_NAMES.get(ds, ds)} {rl}: the unconstrained set's images sit nearest the mean image of "
                   f"their new label (more than {threshold:.0%} of them) {where('means')}; the independent classifier "
                   f"calls more than {threshold:.0%} of them t {where('judge')}, a measure of transfer as much as of "
                   "visibility.")
    return out


def cost_note(table, study):
    """In words: the training-set size, and what the test set costs in each accuracy's interval."""
    trained = table[table["trained on"] > 0]
    half = 100 * ((trained["CI high"] - trained["CI low"]) / 2).max()
    rule = (f"every fresh classifier trains on the same {study['m']:,} images (a seeded random subset of its set's "
            f"successes; a set that kept fewer is not trained at that budget)" if study["m"] is not None else
            "each fresh classifier trains on all its set's successes")
    return (f"Of {study['n_attacked']:,} attacked training images, {rule}; notebook 01's classifier trained on every "
            f"training image, so the original-data control is this profile's ceiling at this size. The "
            f"{int(trained['N'].iloc[0]):,} test images give each accuracy a 95% interval of at most ±{half:.1f} "
            "points.") if len(trained) else "No fresh classifier was trained."


# What defines the study's outcome (lib.infra.artifacts).
STUDY = Artifact("training_claims", 3, (mislabeled, TargetedSettings, budget_settings, build_sets, _fresh,
                                        train.predict, experiment.class_means, nearest_mean, visibility, train_size,
                                        judged_budgets, subspaces, train.fit, train.models, run_study))
