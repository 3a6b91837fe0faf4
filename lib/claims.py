"""The claims of the Dimpled Manifold Model (DMM), one function each, the verdict rule, and the table.

Each ``claim_*`` function takes the records of one data set, split and clip setting (lib/records.py) and
returns one row: the test, the per-image effect with its interval, the p-value, power, and what the
verdict rule needs. ``evaluate`` runs them all, Holm-corrects the p-values over the whole table and
applies ``verdict``. Effects live on an additive scale (log ratios, or differences of cosines); the table
shows ratios as ratios.

The claims that separate DMM from "dimension alone" (confining an attack to ANY k-dimensional subspace
lengthens it; Shamir et al. 2021 compare with no such control) are the ones in DISCRIMINATING: the
tangent space's on/off gap against a random subspace of the same k (3), the gradient's energy share in
the tangent space against a random subspace (4), and target-class features on the manifold against a
random subspace (5b). The others are context: a flat boundary predicts them too, or DMM does not.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from lib import records as rec
from lib import stats

VERDICTS = ("supported", "not supported", "negligible", "explained by dimension alone", "not testable",
            "inconclusive")
KINDS = ("difference", "equivalence", "no difference")


def verdict(kind: str, p: float, lo: float, hi: float, margin: float, alpha: float = stats.ALPHA,
            predicted: str = "greater", null_verdict: str = "not supported", testable: bool = True,
            robust_to_failures: bool = True) -> str:
    """The verdict of one row: the single place where the report's vocabulary is defined.

    p is Holm-adjusted; [lo, hi] the effect's interval on the additive scale (log ratio or difference);
    the negligible band is [-margin, margin] (a ratio margin of 1.1 is log(1.1)). Rules, first match wins:

    | kind          | condition                                                | verdict                |
    |---------------|----------------------------------------------------------|------------------------|
    | any           | the arms cannot succeed at this budget (``testable``)    | not testable           |
    | any           | no p or no interval                                      | inconclusive           |
    | difference    | interval entirely on the wrong side of 0                 | not supported          |
    | difference    | p < alpha, interval beyond the margin on the right side  | supported              |
    | difference    | p < alpha, interval inside the band                      | negligible             |
    | difference    | p >= alpha, interval inside the band                     | ``null_verdict``       |
    | equivalence   | p < alpha (TOST) and failures cannot change it           | supported              |
    | equivalence   | interval entirely outside the band                       | not supported          |
    | no difference | interval inside the band                                 | supported              |
    | no difference | p < alpha, interval entirely outside the band            | not supported          |
    | any           | otherwise (too few images, or failures could change it)  | inconclusive           |

    "difference" claims predict a direction (``predicted``: "greater" or "less"); a significant effect
    whose interval does not clear the margin is a real but unimportant difference, which supports no
    claim of a *large* one. ``null_verdict`` names what a precise null means: "explained by dimension
    alone" where the control is a random subspace of the same k, "not supported" elsewhere."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; allowed: {KINDS}")
    if predicted not in ("greater", "less"):
        raise ValueError(f"predicted must be 'greater' or 'less'; got {predicted!r}")
    if null_verdict not in VERDICTS:
        raise ValueError(f"unknown verdict {null_verdict!r}; allowed: {VERDICTS}")
    if not testable:
        return "not testable"
    if any(np.isnan(v) for v in (p, lo, hi)):
        return "inconclusive"
    inside = -margin <= lo and hi <= margin
    significant = p < alpha
    if kind == "difference":
        s = 1 if predicted == "greater" else -1
        s_lo, s_hi = sorted((s * lo, s * hi))
        if s_hi < 0:
            return "not supported"
        if significant and s_lo > margin:
            return "supported"
        if inside:
            return "negligible" if significant else null_verdict
        return "inconclusive"
    if kind == "equivalence":
        if significant and robust_to_failures:
            return "supported"
        return "not supported" if (lo > margin or hi < -margin) else "inconclusive"
    if inside:
        return "supported"
    return "not supported" if significant and (lo > margin or hi < -margin) else "inconclusive"


# ---------------------------------------------------------------- the claims

CONTROL_WORDS = {"random": "random orthonormal", "coordinate": "random coordinate (pixel)"}
CLAIMS = {  # id: (short label, the claim in words)
    "1": ("1 on > off", "On-manifold attacks need larger perturbations than off-manifold ones"),
    "1b": ("1b on/off > flat boundary", "The on/off ratio in the tangent space exceeds what a locally flat boundary "
                                        "predicts for a random subspace of the same k"),
    "2": ("2 off ≈ unconstrained", "Off-manifold perturbations are as small as unconstrained ones (within the margin)"),
    "3": ("3 gap: tangent > {control}", "The on/off gap is larger for the learned manifold than for a {words} "
                                        "subspace of the same k"),
    "3pca": ("3 learned vs linear: tangent > pca", "The on/off gap is larger for the learned manifold than for the "
                                                   "linear one (PCA of the training images) of the same k"),
    "4": ("4 gradient share: tangent < random", "The loss gradient holds less energy in the tangent space than in a "
                                                "random subspace of the same k (it is more perpendicular to the manifold)"),
    "5a": ("5a class cosine: on > off", "On-manifold perturbations point more toward the target class than "
                                        "off-manifold ones (cosine with the class-mean difference)"),
    "5b": ("5b class cosine: tangent > random", "On-manifold perturbations point more toward the target class than "
                                                "perturbations in a random subspace of the same k"),
    "5c": ("5c class cosine: tangent > pca", "On-manifold perturbations point more toward the target class than "
                                             "perturbations in the PCA subspace of the same k (image-like directions too)"),
    "6": ("6 on/off: train = test", "The on/off ratio is the same for training and test images (within the margin)"),
}
DISCRIMINATING = ("3 gap: tangent > random", "4 gradient share: tangent < random", "5b class cosine: tangent > random")


def _location_row(effect: rec.Effect, predicted: str, margin: float, *, test: str = "sign",
                  shift: float = 0.0) -> dict:
    """A "difference" row: one-sided test of the per-image values (minus ``shift``) toward ``predicted``,
    their median with a distribution-free 95% CI, power of the paired t at the observed effect.

    test "sign": exact sign test, valid for censored intervals (undecided images count against the claim);
    "wilcoxon": signed-rank test of exact values (for effects without censoring: more power)."""
    e = effect.shifted(shift)
    if test == "wilcoxon":
        if e.n_censored:
            raise ValueError(f"{e.label}: censored values need the sign test")
        w, p = stats.wilcoxon(e.complete, predicted)
        statistic = f"Wilcoxon signed-rank W={w:.4g}, one-sided ({predicted})"
    else:
        up, down, undecided, p = stats.sign_test(e.low, predicted, e.high)
        statistic = (f"sign test, one-sided ({predicted}): {up} above, {down} below"
                     + (f", {undecided} undecided (failed attacks; counted against the claim)" if undecided else ""))
    med, lo, hi = stats.median_ci(e.low, 0.95, e.high)
    pw = stats.power_paired(e.complete, predicted)
    return {"kind": "difference", "predicted": predicted, "statistic": statistic, "p": p, "effect": med,
            "ci_low": lo, "ci_high": hi, "ci_level": 0.95, "n": e.n, "n_censored": e.n_censored,
            "n_undecided": e.undecided(0.0), "margin": margin, "power": pw.power, "n_needed": pw.n_needed,
            "failures": ", ".join(f"{k} {v}" for k, v in e.failures.items())}


def claim_on_off(r, margin=np.log(1.1), subspace="tangent") -> dict:
    """1: log(on / off) > 0 in the tangent space (any subspace of k << n predicts it too: context)."""
    return _location_row(rec.log_ratio(r, ("on", subspace), ("off", subspace)), "greater", margin)


def claim_flat_boundary(r, margin=np.log(1.1)) -> dict:
    """1b: the tangent on/off ratio against a flat boundary's median for a random subspace of the same k.
    A sign test (the null fixes a median, not a symmetric distribution)."""
    k, n = rec.dimensions(r, "tangent")
    flat = stats.flat_boundary_median(k, n)
    row = _location_row(rec.log_ratio(r, rec.ON_T, rec.OFF_T), "greater", margin, shift=np.log(flat))
    return {**row, "reference": flat}


def claim_off_unconstrained(r, margin=np.log(1.1), alpha=stats.ALPHA) -> dict:
    """2: off ≈ unconstrained. TOST on the images where both attacks succeeded; failure rates compared by an
    exact McNemar test; and, where attacks failed, the 90% interval of the median ratio with every failure
    bounded as far as it may reach (lib.stats.median_ci on intervals) must lie inside the margin too, or the
    failures could change the verdict."""
    e = rec.log_ratio(r, rec.OFF_T, rec.UNC)
    t = stats.tost(e.complete, margin, alpha)
    a, b = rec.arm(r, rec.OFF_T)["failed"].align(rec.arm(r, rec.UNC)["failed"], join="inner")
    only_a, only_b, p_fail = stats.mcnemar_exact(a, b)
    with_failures = int((a | b).sum())
    robust = True
    if with_failures:
        _, worst_lo, worst_hi = stats.median_ci(e.low, 1 - 2 * alpha, e.high)
        robust = bool(p_fail >= alpha and -margin <= worst_lo and worst_hi <= margin)
    pw = stats.power_tost(e.complete, margin, alpha)
    return {"kind": "equivalence", "predicted": "greater",
            "statistic": f"TOST (paired t on logs, images where both succeeded), margin ×{np.exp(margin):.3g}; "
                         f"McNemar on failures {only_a} vs {only_b}, p={p_fail:.2g}",
            "p": t.p, "effect": t.mean, "ci_low": t.ci90[0], "ci_high": t.ci90[1], "ci_level": 1 - 2 * alpha,
            "n": t.n, "n_censored": e.n_censored, "margin": margin, "power": pw.power, "n_needed": pw.n_needed,
            "failures": ", ".join(f"{k} {v}" for k, v in e.failures.items()), "robust_to_failures": robust}


def claim_gap(r, control="random", margin=np.log(1.1), max_failure_rate=0.5) -> dict:
    """3: log(on/off) in the tangent space minus log(on/off) in a control subspace of the same k, > 0.

    "Not testable" where over ``max_failure_rate`` of either arm's "on" attacks failed: then the budget, not
    the boundary, decides (k coordinate pixels clipped to [0, 1] allow at most ||delta|| = sqrt(k)).
    Leakage: the median share of the final perturbation's energy inside the intended subspace, per on arm."""
    e = rec.gap(r, "tangent", control)
    row = _location_row(e, "greater", margin)
    rates = {s: rec.failure_rate(r, ("on", s)) for s in ("tangent", control)}
    leak = {s: float(rec.arm(r, ("on", s))["subspace_share"].median()) for s in ("tangent", control)}
    return {**row, "testable": max(rates.values()) <= max_failure_rate,
            "null_verdict": "not supported" if control == "pca" else "explained by dimension alone",
            "control": control, "on_failure_rate": ", ".join(f"{s} {v:.0%}" for s, v in rates.items()),
            "leakage": ", ".join(f"{s} {v:.2f}" for s, v in leak.items())}


def claim_gradient_share(r, margin=np.log(1.1), control="random") -> dict:
    """4: log(share in the tangent space / share in a random subspace of the same k) < 0, per image.
    Beside it, the median of each tangent share's Beta CDF (0.5 for a random subspace)."""
    row = _location_row(rec.share_log_ratio(r, "tangent", control), "less", margin, test="wilcoxon")
    k, n = rec.dimensions(r, "tangent")
    u = stats.random_share_cdf(rec.arm(r, rec.ON_T)["grad_share"].astype(float), k, n)
    return {**row, "statistic": row["statistic"] + f"; median Beta CDF of the tangent share {np.median(u):.2f} "
                                                   "(random subspace: 0.5)"}


def claim_class_cosine(r, versus=rec.OFF_T, margin=0.05) -> dict:
    """5a/5b: cosine(delta, mu_target - mu_true) on the manifold minus in ``versus``, > 0."""
    return {**_location_row(rec.difference(r, rec.ON_T, versus), "greater", margin, test="wilcoxon"),
            "scale": "difference"}


def claim_train_test(rd, margin=np.log(1.1), alpha=stats.ALPHA) -> dict:
    """6: the tangent on/off log ratio has the same distribution for training and test images (different
    images: Mann-Whitney on exact values); effect: Hodges-Lehmann shift train - test with its Moses CI; power
    against a shift as large as the margin. Failures could change the verdict where the share of censored
    images differs between the splits (Fisher's exact test)."""
    e = {s: rec.log_ratio(rd[rd["split"] == s], rec.ON_T, rec.OFF_T) for s in ("train", "test")}
    x, y = e["train"].complete, e["test"].complete
    u, p = stats.mann_whitney(x, y)
    shift, lo, hi = stats.hodges_lehmann(x, y)
    pw = stats.power_two_sample(x, y, margin)
    p_fail = stats.fisher_exact(e["train"].n_censored, e["train"].n, e["test"].n_censored, e["test"].n)
    return {"kind": "no difference", "predicted": "greater",
            "statistic": f"Mann-Whitney U={u:.4g}, two-sided ({len(x)} train / {len(y)} test images where both attacks "
                         f"succeeded); censored {e['train'].n_censored} / {e['test'].n_censored}, Fisher p={p_fail:.2g}",
            "p": p, "effect": shift, "ci_low": lo, "ci_high": hi, "ci_level": 0.95, "n": len(x) + len(y),
            "n_censored": e["train"].n_censored + e["test"].n_censored, "margin": margin, "power": pw.power,
            "n_needed": pw.n_needed, "robust_to_failures": bool(p_fail >= alpha),
            "failures": "; ".join(f"{s}: " + ", ".join(f"{k} {v}" for k, v in x.failures.items()) for s, x in e.items())}


# ---------------------------------------------------------------- the table

def _rows(records, controls, margin, cosine_margin, alpha, max_failure_rate):
    rows, skipped = [], []

    def add(cid, where, make, control=None):
        short, text = CLAIMS[cid]
        words = CONTROL_WORDS.get(control, control)
        try:
            row = make()
        except LookupError as err:  # records of an arm are missing (e.g. notebook 04 did not run a control)
            skipped.append(f"claim {short.format(control=control)} ({', '.join(map(str, where.values()))}): {err}")
            return
        rows.append({"claim_id": cid, "short": short.format(control=control), **where,
                     "claim": text.format(control=control, words=words), **row})

    records = rec.with_clip(records)
    for (ds, clip), rd in records.groupby(["dataset", "clip"], sort=True):
        clip = bool(clip)
        splits = [s for s in ("test", "train") if s in set(rd["split"])]
        for split in splits:
            r, where = rd[rd["split"] == split], {"dataset": ds, "split": split, "clip": clip}
            add("1", where, lambda: claim_on_off(r, np.log(margin)))
            add("1b", where, lambda: claim_flat_boundary(r, np.log(margin)))
            if clip:
                add("2", where, lambda: claim_off_unconstrained(r, np.log(margin), alpha))
            for c in controls:
                add("3pca" if c == "pca" else "3", where, lambda: claim_gap(r, c, np.log(margin), max_failure_rate), c)
            if clip:  # measured at the clean image: the same with or without clipping
                add("4", where, lambda: claim_gradient_share(r, np.log(margin)))
                add("5a", where, lambda: claim_class_cosine(r, rec.OFF_T, cosine_margin))
                add("5b", where, lambda: claim_class_cosine(r, ("on", "random"), cosine_margin))
                if "pca" in controls:
                    add("5c", where, lambda: claim_class_cosine(r, ("on", "pca"), cosine_margin))
        if clip and len(splits) == 2:
            add("6", {"dataset": ds, "split": "train vs test", "clip": clip},
                lambda: claim_train_test(rd, np.log(margin), alpha))
    return rows, skipped


COLUMNS = ["claim_id", "short", "claim", "dataset", "split", "clip", "statistic", "effect_text", "effect", "ci_low",
           "ci_high", "p", "p_holm", "n", "n_censored", "n_undecided", "power", "n_needed", "failures", "verdict", "discriminating"]


def evaluate(records, controls=("random", "coordinate", "pca"), margin: float = 1.1, cosine_margin: float = 0.05,
             alpha: float = stats.ALPHA, max_failure_rate: float = 0.5):
    """Every claim per data set, split and clip setting; Holm over every testable row (one family);
    verdicts by ``verdict``. margin: the ratio margin (1.1 = ±10%) of norm and share ratios;
    cosine_margin: of class-cosine differences. Returns (table, skipped): effects and intervals in the
    table are ratios (cosine rows: differences); ``skipped`` lists claims whose records are missing."""
    if margin <= 1:
        raise ValueError(f"margin must be a ratio > 1; got {margin}")
    if not 0 < cosine_margin < 2:
        raise ValueError(f"cosine_margin must lie in (0, 2); got {cosine_margin}")
    if not 0 < max_failure_rate <= 1:
        raise ValueError(f"max_failure_rate must lie in (0, 1]; got {max_failure_rate}")
    rows, skipped = _rows(records, list(controls), margin, cosine_margin, alpha, max_failure_rate)
    t = pd.DataFrame(rows)
    if t.empty:
        return pd.DataFrame(columns=COLUMNS), skipped
    for col, default in (("testable", True), ("robust_to_failures", True), ("null_verdict", "not supported"),
                         ("scale", "ratio"), ("reference", np.nan), ("leakage", ""), ("on_failure_rate", ""),
                         ("n_censored", 0), ("n_undecided", 0)):
        t[col] = t[col].fillna(default) if col in t else default
    t["p_holm"] = stats.holm(t["p"].where(t["testable"].astype(bool)))
    t["verdict"] = [verdict(r["kind"], r["p_holm"], r["ci_low"], r["ci_high"], r["margin"], alpha, r["predicted"],
                            r["null_verdict"], bool(r["testable"]), bool(r["robust_to_failures"]))
                    for r in t.to_dict("records")]
    ratio = t["scale"] == "ratio"
    for col in ("effect", "ci_low", "ci_high"):
        t.loc[ratio, col] = np.exp(t.loc[ratio, col].astype(float))
    t["effect_text"] = [_effect_text(r) for r in t.to_dict("records")]
    t["discriminating"] = t["short"].isin(DISCRIMINATING)
    return t[COLUMNS + [c for c in t.columns if c not in COLUMNS]], skipped


def _effect_text(r) -> str:
    if r["scale"] == "ratio" and r["effect"] in (0.0, np.inf):  # the median is a censored (one-sided) value
        bound = f"[{r['ci_low']:.3g}, {r['ci_high']:.3g}]" if pd.notna(r["ci_high"]) else ""
        return (f"{'→ 0' if r['effect'] == 0 else '→ ∞'} {bound} (most images censored: the median is a bound)").replace("  ", " ")
    if any(pd.isna(r[c]) for c in ("effect", "ci_low", "ci_high")):
        est = "–" if pd.isna(r["effect"]) else (f"{r['effect']:+.3g}" if r["scale"] == "difference" else f"{r['effect']:.3g}×")
        return f"{est} (too few images for an interval)"
    lvl = f"{r['ci_level']:.0%} CI"
    if r["scale"] == "difference":
        return f"Δ {r['effect']:+.3g} [{r['ci_low']:+.3g}, {r['ci_high']:+.3g}] ({lvl})"
    return f"{r['effect']:.3g}× [{r['ci_low']:.3g}, {r['ci_high']:.3g}] ({lvl})"


# ---------------------------------------------------------------- the answer in words

DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "imagenet": "ImageNet"}


def answer(table: pd.DataFrame, records: pd.DataFrame, split: str = "test") -> list[str]:
    """Three plain sentences per data set from the table (clipped attacks, one split): the tangent space's on/off
    ratio beside a random subspace of the same k and the flat-boundary prediction, with the gap's verdict; the
    gradient's share; the class features against random and PCA directions."""
    out = []
    records = rec.with_clip(records)
    t = table[(table["split"] == split) & table["clip"].astype(bool)] if len(table) else table
    for ds in sorted(set(t["dataset"]) if len(t) else ()):
        r = records[(records["dataset"] == ds) & (records["split"] == split) & records["clip"]]
        rows = {short: x for short, x in zip(t.loc[t["dataset"] == ds, "short"], t[t["dataset"] == ds].to_dict("records"))}
        effect = lambda short: rows[short]["effect_text"].split(" (")[0]
        try:
            k, n = rec.dimensions(r, "tangent")
            on_off = {s: rec.ratio_summary(r, ("on", s), ("off", s)) for s in ("tangent", "random")}
        except LookupError:
            continue
        text = (f"{DATASET_NAMES.get(ds, ds)} ({on_off['tangent']['N pairs']} {split} images): confining an attack to the "
                f"autoencoder's tangent space (k = {k} of {n} pixels) lengthens it {_ratio(on_off['tangent'])} over its "
                f"complement, a random subspace of the same k {_ratio(on_off['random'])} (a flat boundary: "
                f"{stats.flat_boundary_median(k, n):.2f}×)")
        gap = rows.get("3 gap: tangent > random")
        text += (f"; the manifold's gap is {effect(gap['short'])} a random subspace's, where DMM predicts more than 1: "
                 f"{gap['verdict']}." if gap else ".")
        share = rows.get("4 gradient share: tangent < random")
        if share:
            text += (f" The loss gradient holds {effect(share['short'])} the energy in the tangent space that it holds in "
                     f"a random one, where DMM predicts less: {share['verdict']}.")
        c_rand, c_pca = rows.get("5b class cosine: tangent > random"), rows.get("5c class cosine: tangent > pca")
        if c_rand:
            text += (f" On-manifold perturbations point more toward the target class than random-subspace ones "
                     f"(cosine {effect(c_rand['short'])}: {c_rand['verdict']})"
                     + (f", but not more than PCA directions ({effect(c_pca['short'])}: {c_pca['verdict']})."
                        if c_pca and c_pca["verdict"] != "supported" else
                        f" and than PCA directions ({effect(c_pca['short'])}: {c_pca['verdict']})." if c_pca else "."))
        out.append(text)
    return out


def _ratio(s: dict) -> str:
    if not np.isfinite(s["median ratio"]):
        return "more than its budget allowed (most attacks failed)"
    if np.isfinite(s["CI low"]) and np.isfinite(s["CI high"]):
        return f"{s['median ratio']:.2f}× [{s['CI low']:.2f}, {s['CI high']:.2f}]"
    return f"{s['median ratio']:.2f}×"
