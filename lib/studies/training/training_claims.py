"""Notebook 10's verdicts: DMM's two claims about training, as lib.inference.verdicts Rows judged in one Holm family.

Mislabelled adversarial training (lib.studies.training.mislabeled_study), from the fresh classifiers' per-image
correctness on the clean test set (paired: the same test images for every set):
  A  the unconstrained set's classifier labels most test images correctly (accuracy > 1/2: DMM's abstract);
  B  "off" generalises like "unconstrained" (equivalence of accuracies within +-margin);
  C  "on" generalises worse than "off";
  D  "on" generalises worse than a random subspace of the same k (what the tangent space adds to the dimension).
Adversarial training (lib.studies.training.advtrain), from per-image attack records of the same test images before and
after:
  E  the off-manifold minimal norm grows more than the on-manifold one ("just deepens the dimples");
  F  the loss gradient's fraction in the tangent space, ||P_T g|| / ||g||, grows (the alignment view).
"""
from dataclasses import replace

import numpy as np
import pandas as pd
from scipy import stats as sps

from lib.experiments import records as rec
from lib.inference import pooling, stats, verdicts
from lib.reporting import report
from lib.reporting.tables import stack
from lib.studies.manifold.replication import with_agreement
from lib.studies.training import mislabeled_study as ms
from lib.inference.rules import Verdict
from lib.infra.names import DATASET_NAMES

FAMILY = "10 · training claims"
DIMENSION = Verdict.DIMENSION
CLAIMS = {
    "A": ("A most test images right (D_{r})", "A classifier trained only on the mislabelled adversarial set D_{r} "
                                              "labels most clean test images correctly (accuracy above 1/2)"),
    "B": ("B off ≈ unconstrained (D_{r})", "A perturbation confined to the autoencoder's normal space teaches as much "
                                           "as an unconstrained one (test accuracies equal within the margin)"),
    "C": ("C on < off (D_{r})", "A perturbation confined to the tangent space teaches less than one confined to its "
                                "normal space (lower test accuracy)"),
    "D": ("D on < random (D_{r})", "A perturbation confined to the tangent space teaches less than one confined to a "
                                   "random subspace of the same k"),
    "E": ("E off grows more than on", "Adversarial training lengthens off-manifold attacks more than on-manifold "
                                      "ones (per image: growth of the off norm over growth of the on norm)"),
    "F": ("F gradient moves into the tangent space", "After adversarial training a larger fraction of the loss "
                                                     "gradient lies in the tangent space (||P_T g|| / ||g||)"),
}
DISCRIMINATING = ("D", "E", "F")


def _text(cid, relabelling=""):
    short, claim = CLAIMS[cid]
    return short.format(r=relabelling), claim.format(r=relabelling)


def _paired(cid, relabelling, dataset, better, worse, margin, kind="difference", null_verdict=Verdict.PRECISE_NULL,
            label=None):
    """A Row on the difference of two paired accuracies, mean(better) - mean(worse): Agresti-Min interval and
    Tango's score tests (lib.inference.stats). difference: one-sided tests of no effect and of the margin; equivalence:
    the 90% interval and the larger of the two one-sided tests of -margin and +margin (TOST). The per-image
    differences (-1, 0, 1; their mean is the effect) stay on the row (Row.per_image) for pooling over training seeds.
    ``label``: how the row names its relabelling (default ``relabelling``; "det, ε = 2" puts the budget in it)."""
    short, claim = _text(cid, label or relabelling)
    level = 0.95 if kind == "difference" else 0.90
    d, lo, hi = stats.paired_difference_ci(better, worse, level)
    n10, n01 = int((better & ~worse).sum()), int((~better & worse).sum())
    if kind == "difference":
        p, p_margin = stats.paired_proportion_score_test(better, worse)[1], \
            stats.paired_proportion_score_test(better, worse, margin)[1]
        statistic = f"Tango score test, one-sided; discordant images {n10} vs {n01}"
    else:
        p = np.nan
        p_margin = max(stats.paired_proportion_score_test(better, worse, -margin)[1],
                       stats.paired_proportion_score_test(worse, better, -margin)[1])
        statistic = f"two one-sided Tango score tests (TOST) at ±{100 * margin:.3g} points; discordant {n10} vs {n01}"
    per_image = pd.Series(better.astype(float) - worse.astype(float), index=np.arange(len(better)))
    return verdicts.Row(cid, short, claim, dataset, f"D_{relabelling}", kind=kind, scale="points", margin=margin,
                        effect=d, ci_low=lo, ci_high=hi, ci_level=level, p=p, p_margin=p_margin, n=len(better),
                        statistic=statistic, null_verdict=null_verdict, discriminating=cid in DISCRIMINATING,
                        per_image=(per_image, per_image))


def _most(relabelling, dataset, ok, margin, label=None):
    """A: accuracy - 1/2 > margin, exact binomial tests; Wilson 95% interval, shifted by 1/2."""
    short, claim = _text("A", label or relabelling)
    k, n = int(ok.sum()), len(ok)
    lo, hi = stats.wilson_ci(k, n)
    p = sps.binomtest(k, n, 0.5, alternative="greater").pvalue
    p_margin = sps.binomtest(k, n, min(0.5 + margin, 1.0), alternative="greater").pvalue
    per_image = pd.Series(ok.astype(float) - 0.5, index=np.arange(n))
    return verdicts.Row("A", short, claim, dataset, f"D_{relabelling}", kind="difference",
                        scale="points", margin=margin, effect=k / n - 0.5, ci_low=lo - 0.5, ci_high=hi - 0.5,
                        p=float(p), p_margin=float(p_margin), n=n,
                        statistic=f"exact binomial test, one-sided: {k} of {n} right", notes={"accuracy": k / n},
                        per_image=(per_image, per_image))


def mislabeled_rows(correct, dataset, margin, min_success=0.5, success=None, label=None):
    """Rows A-D per relabelling from {(relabelling, set): bool per test image}
    (lib.studies.training.mislabeled_study.correctness). A row whose confined variant kept fewer than ``min_success`` of
    its attacked images (``success``: {(relabelling, set): rate}) is not testable: its set then says more about the
    budget than the subspace."""
    rows = []
    success = success or {}
    for r in sorted({k[0] for k in correct}):
        got = {s: v for (rr, s), v in correct.items() if rr == r}
        ok = lambda *names: all(success.get((r, s), 1.0) >= min_success for s in names)
        if "unconstrained" in got:
            rows.append(_most(r, dataset, got["unconstrained"], margin, label))
        if {"off", "unconstrained"} <= set(got):
            rows.append(_paired("B", r, dataset, got["off"], got["unconstrained"], margin, "equivalence", label=label))
        for cid, control, null in (("C", "off", Verdict.PRECISE_NULL), ("D", "random", DIMENSION)):
            if {"on", control} <= set(got):
                row = _paired(cid, r, dataset, got[control], got["on"], margin, null_verdict=null, label=label)
                rows.append(row if ok("on", control) else _untestable(row))
    return rows


def _untestable(row):
    return replace(row, testable=False)


def _missing_row(cid, relabelling, label, dataset, margin, why):
    """An untestable row of a claim whose sets were not trained (an attack kept fewer images than the training
    size)."""
    short, claim = _text(cid, label)
    kind = "equivalence" if cid == "B" else "difference"
    return verdicts.Row(cid, short, claim, dataset, f"D_{relabelling}", kind=kind, scale="points",
                        margin=margin, effect=np.nan, ci_low=np.nan, ci_high=np.nan, p=np.nan, p_margin=np.nan, n=0,
                        statistic=why, testable=False, discriminating=cid in DISCRIMINATING)


NEEDS = {"A": ("unconstrained",), "B": ("off", "unconstrained"), "C": ("on", "off"), "D": ("on", "random")}


def sweep_rows(study, dataset, margin, min_success, alpha=stats.ALPHA):
    """(rows A-D of every relabelling at each of its judged budgets, pooled over the fresh classifiers' training seeds
    (lib.inference.pooling.pooled_row: each seed's mean per-image outcome on the shared test images; a budget with
    one seed gives that seed's row), each seed's rows judged as one classifier's table, stacked with a seed column).
    The budget is in every row's label and in notes["eps"]; a claim whose sets were not trained at a budget is an
    untestable row that says why."""
    pooled, per_seed = [], []
    for r, judged in study["judged"].items():
        for b in judged:
            label = f"{r}, {ms.budget_label(b)}"
            by_seed = ms.correctness(study, b)
            rates = ms.success_rates(study, b)
            seeds_rows = {t: mislabeled_rows({k: v for k, v in got.items() if k[0] == r}, dataset, margin,
                                             min_success, rates, label=label) for t, got in by_seed.items()}
            for t, rs in seeds_rows.items():
                per_seed.append(verdicts.judge(rs, f"{FAMILY} · seed {t}", alpha).assign(seed=t, eps=str(b)))
            for cid, needs in NEEDS.items():
                rs = [x for t in seeds_rows for x in seeds_rows[t] if x.claim_id == cid]
                if not rs:
                    if all(v in {k[2] for k in study["results"] if k[0] == b and k[1] == r} for v in needs):
                        row = _missing_row(cid, r, label, dataset, margin, "a set this claim compares kept fewer than "
                                           f"the {study['m']:,} training images at this budget")
                        pooled.append(replace(row, notes={"eps": str(b)}))
                    continue
                row = rs[0] if len(rs) == 1 else pooling.pooled_row(rs, "training seeds", alpha=alpha,
                                                                      statistic="mean", unit="fresh classifiers")
                pooled.append(replace(row, notes={**row.notes, "eps": str(b)}))
    return pooled, stack(per_seed) if per_seed else pd.DataFrame()


# ---------------------------------------------------------------- adversarial training: before / after

def _arm(records, which):
    return rec.arm(records, which).droplevel("split")  # the split column holds the model: pair across it


def growth(records, which):
    """Per image log(norm after / norm before) of one arm as an interval (a failed attack bounds its norm from
    below, lib.experiments.records): (low, high) Series indexed by image."""
    a, b = _arm(records[records["split"] == "after"], which), _arm(records[records["split"] == "before"], which)
    return rec._log_ratio_bounds(a, b)


def growth_pairs(records):
    """(on growth, off growth) per image, after / before, of the images whose four attacks all succeeded."""
    (on_lo, on_hi), (off_lo, off_hi) = growth(records, rec.ON_T), growth(records, rec.OFF_T)
    on_lo, off_lo = on_lo.align(off_lo, join="inner")
    exact = (on_lo == on_hi[on_lo.index]) & (off_lo == off_hi[off_lo.index]) & np.isfinite(on_lo) & np.isfinite(off_lo)
    return np.exp(on_lo[exact].to_numpy(float)), np.exp(off_lo[exact].to_numpy(float))


def depth_row(records, dataset, margin):
    """E: log growth of the off-manifold norm minus that of the on-manifold norm, > log(margin)."""
    off_lo, off_hi = growth(records, rec.OFF_T)
    on_lo, on_hi = growth(records, rec.ON_T)
    idx = off_lo.index.intersection(on_lo.index)
    with np.errstate(invalid="ignore"):
        low, high = off_lo[idx] - on_hi[idx], off_hi[idx] - on_lo[idx]
    short, claim = CLAIMS["E"]
    return verdicts.location_row("E", short, claim, dataset, "test", low, high, margin=np.log(margin), clip=True,
                                 discriminating=True)


def fraction(records, model, subspace="tangent"):
    """Per image ||P g|| / ||g|| at the clean image (sqrt of the records' grad_share) of one model's records."""
    return np.sqrt(_arm(records[records["split"] == model], ("on", subspace))["grad_share"].astype(float))


def alignment_row(records, dataset, margin):
    """F: log(fraction after / fraction before) in the tangent space > log(margin), sign test of the median."""
    after, before = fraction(records, "after").align(fraction(records, "before"), join="inner")
    d = np.log(after / before)
    short, claim = CLAIMS["F"]
    return verdicts.location_row("F", short, claim, dataset, "test", d, margin=np.log(margin), clip=True,
                                 discriminating=True)


def geometry_table(records):
    """Per data set, before and after: median norms of each attack (failures ranked at the top) with 95% CIs, the
    on/off ratio in the tangent space and in a random subspace, and the median gradient fraction in each."""
    rows = []
    for (ds, model), r in records.groupby(["dataset", "split"], sort=False) if len(records) else ():
        for _, m in rec.median_norm(r).iterrows():
            rows.append({"dataset": ds, "model": model,
                         "quantity": f"median norm: {rec.arm_label((m['condition'], m['subspace']))}",
                         "value": m["median norm"], "CI low": m["CI low"], "CI high": m["CI high"],
                         "success rate": m["success rate"]})
        for sub in ("tangent", "random"):
            s = rec.ratio_summary(r, ("on", sub), ("off", sub))
            rows.append({"dataset": ds, "model": model, "quantity": f"on/off ratio: {sub}", "value": s["median ratio"],
                         "CI low": s["CI low"], "CI high": s["CI high"], "success rate": np.nan})
            med, lo, hi = stats.median_ci(fraction(r, model, sub).to_numpy())
            rows.append({"dataset": ds, "model": model, "quantity": f"gradient fraction ||P g||/||g||: {sub}",
                         "value": med, "CI low": lo, "CI high": hi, "success rate": np.nan})
    return pd.DataFrame(rows)


def fractions(records):
    """{(subspace, model): per-image gradient fractions} for the figure."""
    return {(s, m): fraction(records, m, s).to_numpy() for s in ("tangent", "random") for m in ("before", "after")}


def _judged(sweep, judged):
    """The sweep's rows at the budgets the verdicts read ({dataset: {relabelling: [budgets]}})."""
    keep = [(ds, f"D_{r}", b) for ds, per in judged.items() for r, bs in per.items() for b in bs]
    return sweep[[(d, r, b) in keep for d, r, b in zip(sweep["dataset"], sweep["relabelling"], sweep["budget"])]] \
        if len(sweep) else sweep


def headlines(sweep, table, judged, published_acc, source):
    """The index's headline figures: the first fresh classifier's accuracies (unconstrained, on, off) at the budgets
    the verdicts read, beside Ilyas et al.'s (another data set), and rows E and F."""
    out = [report.proportion(f"{r['dataset']} {r['relabelling']} at {r['budget_text']}: test accuracy, {r['set']} set",
                             r["correct"], r["N"],
                             f"{published_acc[r['relabelling']]:.1%}, {source}, ε = 0.5" if r["set"] == "unconstrained"
                             else "")
           for _, r in _judged(sweep, judged).iterrows() if r["set"] in ("unconstrained", "on", "off") and r["N"]]
    out += [report.headline(f"{r['dataset']}: {r['short']} — {r['verdict']}", r["effect"], "x",
                            ci=(r["ci_low"], r["ci_high"])) for _, r in table.iterrows() if r["claim_id"] in ("E", "F")]
    return out or [report.headline("no data set available", 0, "")]


def _row_key(t):
    eps = t["eps"] if "eps" in t else pd.Series([np.nan] * len(t), index=t.index)
    return t.assign(row=[f"{c}@{s}@{e}" for c, s, e in zip(t["claim_id"], t["split"], eps)])


def judge(rows, alpha=stats.ALPHA, per_seed=None):
    """The family's verdict table (lib.inference.pooling.judge: a pooled row whose classifiers disagree in sign is not
    supported), with how many fresh classifiers' own verdicts agree where ``per_seed`` (sweep_rows') is given."""
    table = pooling.judge(rows, FAMILY, alpha)
    if per_seed is None or not len(per_seed) or not len(table):
        return table
    return with_agreement(_row_key(table), _row_key(per_seed), by=("dataset", "row")).drop(columns="row")


# ---------------------------------------------------------------- the answer in words

def change_words(sweep, judged):
    """Per relabelling with two verdict budgets, in words: what changes between them (each variant's mean accuracy,
    or why it was not trained, and the share of the unconstrained set's images nearest their new label's mean)."""
    out = []
    for r, bs in judged.items():
        if len(bs) < 2:
            continue
        t = sweep[sweep["relabelling"] == f"D_{r}"]
        at = {b: t[t["budget"] == b].set_index("set") for b in bs}
        first, last = at[bs[0]], at[bs[-1]]

        def acc(a, v):
            if v not in a.index:
                return "–"
            return f"{a.loc[v, 'mean accuracy']:.0%}" if a.loc[v, "trained on"] > 0 else \
                f"untrained ({a.loc[v, 'success rate']:.0%} kept)"
        parts = "; ".join(f"{v} {acc(first, v)} → {acc(last, v)}" for v in ms.SETS_ORDER if v in first.index)
        seen = " → ".join(f"{a.loc['unconstrained', 'looks like t: means']:.0%}" for a in (first, last)) \
            if "unconstrained" in first.index else "–"
        ds = t["dataset"].iloc[0]
        out.append(f"From {first['budget_text'].iloc[0]} to {last['budget_text'].iloc[0]} "
                   f"({DATASET_NAMES.get(ds, ds)}, D_{r}), the fresh classifiers' clean accuracy moves {parts}; the "
                   f"share of the unconstrained set's images nearest their new label's mean image {seen}.")
    return out


def answer(table, sweep, geometry, judged):
    """Sentences for the index, per data set: what the fresh classifiers learned at each budget the verdicts read
    (and whether its images already look like their new labels), and what adversarial training did."""
    out = []
    verdict = {(r["dataset"], r["claim_id"], r["split"], r["eps"] if isinstance(r.get("eps"), str) else None): r
               for r in table.to_dict("records")} if len(table) else {}

    def said(ds, cid, split, what, eps=None):
        row = verdict.get((ds, cid, split, eps))
        return f" {what}: {row['effect_text'].split(' (')[0]}, {row['verdict']}." if row else ""

    at = _judged(sweep, judged)
    for (ds, rl, b), a in at.groupby(["dataset", "relabelling", "budget"], sort=False) if len(at) else ():
        acc = a.set_index("set")["mean accuracy"]
        looks = a.set_index("set")["looks like t: means"]
        parts = ", ".join(f"{s} {acc[s]:.0%}" for s in ms.SETS_ORDER if pd.notna(acc.get(s)))
        seeds = int(a["seeds"].max())
        floor = sweep[(sweep["dataset"] == ds) & (sweep["relabelling"] == rl) & (sweep["set"] == "unperturbed")]
        floor_text = f"; labels alone {floor['mean accuracy'].iloc[0]:.0%}" if len(floor) else ""
        seen = looks.get("unconstrained", np.nan)
        eps = str(b)
        plural = "s" if seeds > 1 else ""
        out.append(f"At {a['budget_text'].iloc[0]} ({DATASET_NAMES.get(ds, ds)}, {rl}; {seeds} fresh "
                   f"classifier{plural} per set), a classifier trained only on the mislabelled set labels clean test "
                   f"images right at: {parts}{floor_text}. {seen:.0%} of the unconstrained set's images already "
                   "sit nearest the mean image of their new label."
                   + "".join(said(ds, c, rl, w, eps) for c, w in (("A", "most right"), ("B", "off ≈ unconstrained"),
                                                                   ("C", "on < off"), ("D", "on < random"))))
    for ds, t in sweep.groupby("dataset", sort=False) if len(sweep) else ():
        out += change_words(t, judged.get(ds, {})) + ms.visibility_words(t)
    for ds, g in geometry.groupby("dataset") if len(geometry) else ():
        v = g.set_index(["model", "quantity"])["value"]
        pair = lambda q: f"{v[('before', q)]:.2f} → {v[('after', q)]:.2f}"
        out.append(f"Adversarial training ({DATASET_NAMES.get(ds, ds)}) changed the median minimal norm off the "
                   f"manifold {pair('median norm: off/tangent')}, on it {pair('median norm: on/tangent')}, and the "
                   f"gradient's fraction in the tangent space {pair('gradient fraction ||P g||/||g||: tangent')} (in a "
                   f"random subspace {pair('gradient fraction ||P g||/||g||: random')}; Bordt et al. 2023: 0.31 → "
                   "0.675 on a known manifold)." + said(ds, "E", "test", "Off grows more than on")
                   + said(ds, "F", "test", "The gradient moves into the tangent space"))
    return out
