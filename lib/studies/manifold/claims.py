"""The claims of the Dimpled Manifold Model (DMM) tested on notebook 03 and 04's attack records, one function
each, and notebook 05's verdict table.

Each ``claim_*`` function takes the records of one data set, split and clip setting (lib/experiments/records.py) and
returns one lib.inference.verdicts.Row; ``evaluate`` builds them all and judges them as one Holm family
(lib.inference.verdicts.judge, the report's one rule). Effects live on an additive scale (log ratios, or differences
of cosines); the table shows ratios as ratios.

The claims that separate DMM from "dimension alone" (confining an attack to ANY k-dimensional subspace
lengthens it; Shamir et al. 2021 compare with no such control) are the ones in DISCRIMINATING: the
tangent space's on/off gap against a random subspace of the same k (3), the gradient's energy share in
the tangent space against a random subspace (4), and target-class features on the manifold against the
better of a random and the PCA subspace (5). The others are context: a flat boundary predicts them too,
or DMM does not.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from lib.experiments import records as rec
from lib.inference import power, stats, verdicts
from lib.inference.rules import Verdict
from lib.infra import names

FAMILY = "05 · attacks (notebooks 03 and 04)"
CONTROL_WORDS = {"random": "random orthonormal", "coordinate": "random coordinate (pixel)", "pca": "PCA"}
DIMENSION = Verdict.DIMENSION  # a precise null against a random subspace of the same k
CLAIMS = {  # id: (short label, the claim in words)
    "1": ("1 on > off", "On-manifold attacks need larger perturbations than off-manifold ones"),
    "1b": (
        "1b on/off > flat boundary",
        "The on/off ratio in the tangent space exceeds what a locally flat boundary "
        "predicts for a random subspace of the same k (judged without clipping, "
        "where that prediction holds)",
    ),
    "2": ("2 off ≈ unconstrained", "Off-manifold perturbations are as small as unconstrained ones (within the margin)"),
    "3": (
        "3 gap: tangent > random",
        "The on/off gap is larger for the learned manifold than for a random orthonormal subspace of the same k",
    ),
    "3c": (
        "3c gap: tangent > coordinate",
        "The on/off gap is larger for the learned manifold than for a random coordinate (pixel) subspace of the same k",
    ),
    "3pca": (
        "3pca learned vs linear: tangent > pca",
        "The on/off gap is larger for the learned manifold than for the "
        "linear one (PCA of the training images) of the same k",
    ),
    "4": (
        "4 gradient share: tangent < random",
        "The loss gradient holds less energy in the tangent space than in a "
        "random subspace of the same k (it is more perpendicular to the manifold)",
    ),
    "5": (
        "5 class cosine: tangent > best control",
        "On-manifold perturbations point more toward the target class "
        "than perturbations in the better of a random and the PCA "
        "subspace of the same k (here: {control})",
    ),
    "5a": (
        "5a class cosine: on > off",
        "On-manifold perturbations point more toward the target class than "
        "off-manifold ones (cosine with the class-mean difference)",
    ),
    "5b": (
        "5b class cosine: tangent > random",
        "On-manifold perturbations point more toward the target class than "
        "perturbations in a random subspace of the same k",
    ),
    "5c": (
        "5c class cosine: tangent > pca",
        "On-manifold perturbations point more toward the target class than "
        "perturbations in the PCA subspace of the same k (image-like directions too)",
    ),
    "6": ("6 on/off: train = test", "The on/off ratio is the same for training and test images (within the margin)"),
}
# the claims that separate DMM from "dimension alone": the headline
DISCRIMINATING = ("3", "4", "5")


def dmm_effect(cid: str, margin: float, k: int | None = None, n: int | None = None) -> float | None:
    """The effect (additive scale) DMM predicts for claims 3 and 4, at which the table shows each row's power: the
    effect at twice the turning steepness of notebook 08's world 1 (gradient g = U w + s v; the turning point s_t is
    where the claim's effect sits at the margin). Claim 3's effect is s / R (R the random subspace's on/off ratio), so
    twice s_t gives twice the margin; claim 4's is 1 / ((1 + s^2) m) (m the random share's median), so 1 + s_t^2 =
    margin / m and twice s_t gives 1 / (m (1 + 4 (margin / m - 1))). ``margin``: the log of the ratio margin. Other
    claims have no such mapping: None (lib.inference.verdicts then takes twice the margin)."""
    if cid in ("3", "3c", "3pca"):
        return float(np.log(2 * np.exp(margin)))
    if cid == "4":
        m = stats.random_share_median(k, n)
        return float(-np.log(m * (1 + 4 * (np.exp(margin) / m - 1))))
    return None


def _row(cid, where, low, high=None, control=None, **kw) -> verdicts.Row:
    short, text = CLAIMS[cid]
    return verdicts.location_row(cid, short, text.format(control=CONTROL_WORDS.get(control, control)),
                                 where["dataset"], where["split"], low, high, clip=where["clip"],
                                 discriminating=cid in DISCRIMINATING, **kw)


def _failures(e: rec.Effect) -> str:
    return ", ".join(f"{k} {v}" for k, v in e.failures.items())


def claim_on_off(r, where, margin=np.log(1.1)) -> verdicts.Row:
    """1: log(on / off) > 0 in the tangent space (any subspace of k << n predicts it too: context)."""
    e = rec.log_ratio(r, rec.ON_T, rec.OFF_T)
    return _row("1", where, e.low, e.high, margin=margin, notes={"failures": _failures(e)})


def claim_flat_boundary(r, where, margin=np.log(1.1)) -> verdicts.Row:
    """1b: the tangent on/off ratio against a flat boundary's median for a random subspace of the same k
    (stats.flat_boundary_median), by sign tests (the null fixes a median). Only without clipping: clipping
    pulls a random subspace's ratio below that reference (it is no longer the null's value)."""
    if where["clip"]:
        raise ValueError("claim 1b is judged on unclipped attacks only")
    k, n = rec.dimensions(r, "tangent")
    flat = stats.flat_boundary_median(k, n)
    e = rec.log_ratio(r, rec.ON_T, rec.OFF_T).shifted(np.log(flat))
    return _row("1b", where, e.low, e.high, margin=margin, notes={"reference": flat, "failures": _failures(e)})


def claim_off_unconstrained(r, where, margin=np.log(1.1), alpha=stats.ALPHA) -> verdicts.Row:
    """2: off ≈ unconstrained. TOST on the images where both attacks succeeded. Failures could change it unless
    the (1 - 2 alpha) interval of the median ratio, every failure bounded as far as it may reach
    (stats.median_ci on intervals), lies inside the margin too; McNemar's test of the failure rates is shown,
    not used (a failure to find a difference is no evidence of none)."""
    e = rec.log_ratio(r, rec.OFF_T, rec.UNC)
    t = stats.tost(e.complete, margin, alpha)
    a, b = rec.arm(r, rec.OFF_T)["failed"].align(rec.arm(r, rec.UNC)["failed"], join="inner")
    only_a, only_b, p_fail = stats.mcnemar_exact(a, b)
    robust = True
    if int((a | b).sum()):
        _, worst_lo, worst_hi = stats.median_ci(e.low, 1 - 2 * alpha, e.high)
        robust = bool(-margin <= worst_lo and worst_hi <= margin)
    short, text = CLAIMS["2"]
    return verdicts.Row(
        "2", short, text, where["dataset"], where["split"], kind="equivalence", scale="ratio", margin=margin,
        effect=t.mean, ci_low=t.ci90[0], ci_high=t.ci90[1], ci_level=1 - 2 * alpha, p=np.nan, p_margin=t.p, n=t.n,
        statistic=f"TOST (paired t on logs, images where both succeeded), margin ×{np.exp(margin):.3g}; "
                  f"McNemar on failures {only_a} vs {only_b}, p={p_fail:.2g}",
        clip=where["clip"], n_censored=e.n_censored, robust_to_failures=robust, notes={"failures": _failures(e)},
        power_at=lambda a_: power.power_tost(e.complete, margin, a_))


def claim_gap(r, where, control="random", margin=np.log(1.1), max_failure_rate=0.5) -> verdicts.Row:
    """3: log(on/off) in the tangent space minus log(on/off) in a control subspace of the same k, > 0.

    A failed tangent "on" attack is a lower bound that counts for the claim where it clears the margin. Not
    testable where over ``max_failure_rate`` of the control's "on" attacks failed (then the budget, not the
    boundary, decides: k coordinate pixels clipped to [0, 1] allow at most ||delta|| = sqrt(k)) or of the
    images are undecided. Leakage: the median share of the final perturbation's energy inside its subspace."""
    e = rec.gap(r, "tangent", control)
    rates = {s: rec.failure_rate(r, ("on", s)) for s in ("tangent", control)}
    leak = {s: float(rec.arm(r, ("on", s))["subspace_share"].median()) for s in ("tangent", control)}
    cid = {"random": "3", "coordinate": "3c", "pca": "3pca"}[control]
    return _row(cid, where, e.low, e.high, control, margin=margin, max_undecided=max_failure_rate,
                dmm_effect=dmm_effect(cid, margin),
                testable=rates[control] <= max_failure_rate,
                null_verdict=Verdict.PRECISE_NULL if control == "pca" else DIMENSION,
                notes={"control": control, "failures": _failures(e),
                       "on_failure_rate": ", ".join(f"{s} {v:.0%}" for s, v in rates.items()),
                       "leakage": ", ".join(f"{s} {v:.2f}" for s, v in leak.items())})


def claim_gradient_share(r, where, margin=np.log(1.1), control="random") -> verdicts.Row:
    """4: log(share in the tangent space / share in a random subspace of the same k) < 0, per image (sign test of the
    median).
    Beside it, the median of each tangent share's Beta CDF (0.5 for a random subspace)."""
    e = rec.share_log_ratio(r, "tangent", control)
    k, n = rec.dimensions(r, "tangent")
    u = stats.random_share_cdf(rec.arm(r, rec.ON_T)["grad_share"].astype(float), k, n)
    row = _row("4", where, e.low, e.high, margin=margin, predicted="less", dmm_effect=dmm_effect("4", margin, k, n),
               null_verdict=DIMENSION)
    return replace(row, statistic=row.statistic + f"; median Beta CDF of the tangent share {np.median(u):.2f} "
                                                   "(random subspace: 0.5)")


def claim_class_cosine(r, where, versus=rec.OFF_T, margin=0.05, cid=None) -> verdicts.Row:
    """5a/5b/5c: cosine(delta, mu_target - mu_true) on the manifold minus in ``versus``, > 0 (the sign test of the
    median; a failed attack's cosine is bounded by [-1, 1], so it may leave an image undecided)."""
    cid = cid or {rec.OFF_T: "5a", ("on", "random"): "5b", ("on", "pca"): "5c"}[tuple(versus)]
    e = rec.difference(r, rec.ON_T, versus)
    return _row(cid, where, e.low, e.high, versus[1], margin=margin, scale="difference",
                null_verdict=DIMENSION if versus[1] == "random" else Verdict.PRECISE_NULL,
                notes={"control": versus[1], "failures": _failures(e)})


def claim_class_cosine_best(r, where, margin=0.05) -> verdicts.Row:
    """5: the tangent space's class cosine against the better control, random or PCA (the one whose successful
    attacks have the larger median cosine; PCA directions are image-like too, so beating random alone is not
    enough). Choosing the stronger control on the same data can only make the claim harder to support."""
    medians = {}
    for c in ("random", "pca"):
        try:
            a = rec.arm(r, ("on", c))
        except LookupError:
            continue
        medians[c] = float(a.loc[~a["failed"], "class_cosine"].median())
    if not medians:
        raise LookupError("no records of a random or PCA subspace")
    best = max(medians, key=lambda c: (np.nan_to_num(medians[c], nan=-np.inf), c == "pca"))
    return claim_class_cosine(r, where, ("on", best), margin, cid="5")


def claim_train_test(rd, where, margin=np.log(1.1), alpha=stats.ALPHA) -> verdicts.Row:
    """6: the tangent on/off log ratio has the same distribution for training and test images, within the
    margin: two one-sided Mann-Whitney tests of the shift (different images; exact values); effect: the
    Hodges-Lehmann shift train - test with its Moses CI. Failures could change the verdict where the share of
    censored images differs between the splits (Fisher's exact test significant): then inconclusive."""
    e = {s: rec.log_ratio(rd[rd["split"] == s], rec.ON_T, rec.OFF_T) for s in ("train", "test")}
    x, y = e["train"].complete, e["test"].complete
    u, p = stats.mann_whitney(x, y)
    shift, lo, hi = stats.hodges_lehmann(x, y)
    p_fail = stats.fisher_exact(e["train"].n_censored, e["train"].n, e["test"].n_censored, e["test"].n)
    short, text = CLAIMS["6"]
    return verdicts.Row(
        "6", short, text, where["dataset"], where["split"], kind="equivalence", scale="ratio", margin=margin,
        effect=shift, ci_low=lo, ci_high=hi, p=p, p_margin=stats.mann_whitney_equivalence(x, y, margin),
        n=len(x) + len(y), clip=where["clip"],
        statistic=f"two one-sided Mann-Whitney tests of the shift within ×/÷{np.exp(margin):.3g} ({len(x)} train / "
                  f"{len(y)} test images where both attacks succeeded; U={u:.4g}); censored "
                  f"{e['train'].n_censored} / {e['test'].n_censored}, Fisher p={p_fail:.2g}",
        n_censored=e["train"].n_censored + e["test"].n_censored, robust_to_failures=bool(p_fail >= alpha),
        notes={"failures": "; ".join(f"{s}: " + _failures(v) for s, v in e.items())},
        power_at=lambda a: power.power_equivalence_two_sample(x, y, margin, a))


# ---------------------------------------------------------------- the table

def rows_of(records, controls=("random", "coordinate", "pca"), margin: float = 1.1, cosine_margin: float = 0.05,
            alpha: float = stats.ALPHA, max_failure_rate: float = 0.5):
    """Every claim per data set, split and clip setting, as Rows; and the claims skipped (records missing)."""
    rows, skipped = [], []
    lm = np.log(margin)

    def add(cid, where, make):
        try:
            rows.append(make())
        except LookupError as err:  # records of an arm are missing (e.g. notebook 04 did not run a control)
            skipped.append(f"claim {CLAIMS[cid][0]} ({', '.join(map(str, where.values()))}): {err}")

    records = rec.with_clip(records)
    for (ds, clip), rd in records.groupby(["dataset", "clip"], sort=True):
        clip = bool(clip)
        splits = [s for s in ("test", "train") if s in set(rd["split"])]
        for split in splits:
            r, where = rd[rd["split"] == split], {"dataset": ds, "split": split, "clip": clip}
            add("1", where, lambda: claim_on_off(r, where, lm))
            if not clip:
                add("1b", where, lambda: claim_flat_boundary(r, where, lm))
            if clip:
                add("2", where, lambda: claim_off_unconstrained(r, where, lm, alpha))
            for c in controls:
                add({"random": "3", "coordinate": "3c", "pca": "3pca"}[c], where,
                    lambda: claim_gap(r, where, c, lm, max_failure_rate))
            if clip:  # measured at the clean image (4) or on the clipped attacks of 03 (5)
                add("4", where, lambda: claim_gradient_share(r, where, lm))
                add("5", where, lambda: claim_class_cosine_best(r, where, cosine_margin))
                add("5a", where, lambda: claim_class_cosine(r, where, rec.OFF_T, cosine_margin))
                add("5b", where, lambda: claim_class_cosine(r, where, ("on", "random"), cosine_margin))
                if "pca" in controls:
                    add("5c", where, lambda: claim_class_cosine(r, where, ("on", "pca"), cosine_margin))
        if clip and len(splits) == 2:
            where = {"dataset": ds, "split": "train vs test", "clip": clip}
            add("6", where, lambda: claim_train_test(rd, where, lm, alpha))
    if not records["clip"].eq(False).any():
        skipped.append("claim 1b (every data set): no attacks without clipping; a flat boundary's reference holds "
                       "only there")
    return rows, skipped


def evaluate(records, controls=("random", "coordinate", "pca"), margin: float = 1.1, cosine_margin: float = 0.05,
             alpha: float = stats.ALPHA, max_failure_rate: float = 0.5):
    """The verdict table of notebook 05: every claim per data set, split and clip setting, judged as one Holm
    family (lib.inference.verdicts.judge). margin: the ratio margin (1.1 = ±10%) of norm and share ratios;
    cosine_margin: of class-cosine differences; max_failure_rate: the share of undecided images (or of a
    control's failed "on" attacks) beyond which a row is not testable. Returns (table, skipped)."""
    if margin <= 1:
        raise ValueError(f"margin must be a ratio > 1; got {margin}")
    if not 0 < cosine_margin < 2:
        raise ValueError(f"cosine_margin must lie in (0, 2); got {cosine_margin}")
    if not 0 < max_failure_rate <= 1:
        raise ValueError(f"max_failure_rate must lie in (0, 1]; got {max_failure_rate}")
    for c in controls:
        stats.check_choice(c, tuple(CONTROL_WORDS), "control")
    rows, skipped = rows_of(records, controls, margin, cosine_margin, alpha, max_failure_rate)
    return verdicts.judge(rows, FAMILY, alpha), skipped


# ---------------------------------------------------------------- the answer in words

DATASET_NAMES = names.DATASET_NAMES  # a data set as a reader writes it


PREDICTS = {"3": "more than 1", "4": "less than 1", "5": "above 0"}


def answer(table: pd.DataFrame, records: pd.DataFrame, split: str = "test") -> list[str]:
    """Plain sentences per data set from the table (clipped attacks, one split): the tangent space's on/off ratio
    beside a random subspace of the same k and the flat-boundary prediction; then each discriminating claim's
    effect and verdict, in words that follow the verdict."""
    out = []
    records = rec.with_clip(records)
    t = table[(table["split"] == split) & table["clip"].astype(bool)] if len(table) else table
    for ds in sorted(set(t["dataset"]) if len(t) else ()):
        r = records[(records["dataset"] == ds) & (records["split"] == split) & records["clip"]]
        rows = {x["claim_id"]: x for x in t[t["dataset"] == ds].to_dict("records")}
        try:
            k, n = rec.dimensions(r, "tangent")
            on_off = {s: rec.ratio_summary(r, ("on", s), ("off", s)) for s in ("tangent", "random")}
        except LookupError:
            continue
        text = (
            f"{DATASET_NAMES.get(ds, ds)} ({on_off['tangent']['N pairs']} {split} images): confining an attack to the "
            f"autoencoder's tangent space (k = {k} of {n} pixels) lengthens it {_ratio(on_off['tangent'])} over its "
            f"complement, a random subspace of the same k {_ratio(on_off['random'])} (a flat boundary: "
            f"{stats.flat_boundary_median(k, n):.2f}×)."
        )
        words = {
            "3": "the manifold's on/off gap is {e} a random subspace's",
            "4": "the loss gradient holds {e} the energy in the tangent space that it holds in a random one",
            "5": "on-manifold perturbations' cosine with the target class exceeds the better control's ({c}) by {e}",
        }
        for cid in DISCRIMINATING:
            row = rows.get(cid)
            if row is None:
                continue
            e = row["effect_text"].split(" (")[0]
            said = words[cid].format(e=e, c=row.get("control", ""))
            text += f" {said[0].upper() + said[1:]}, where DMM predicts {PREDICTS[cid]}: {_reading(row['verdict'])}."
        out.append(text)
    return out


def _reading(v: str) -> str:
    """A verdict in a sentence: what it means for DMM's prediction."""
    return {Verdict.SUPPORTED: "supported (beyond the margin, after Holm)",
            Verdict.CONTRADICTED: "contradicted (the effect points the other way: its whole interval lies on the "
                                  "wrong side)",
            Verdict.PRECISE_NULL: "a precise null (not significant, the whole interval inside the negligible band)",
            Verdict.NEGLIGIBLE: "negligible (real, but inside the margin)",
            Verdict.DIMENSION: "explained by dimension alone (a precise null against a random subspace)",
            Verdict.NOT_TESTABLE: "not testable at this budget",
            Verdict.INCONCLUSIVE: "inconclusive (the interval straddles the margin, or failed attacks could decide it)"
            }.get(v, v)


def _ratio(s: dict) -> str:
    if not np.isfinite(s["median ratio"]):
        return "more than its budget allowed (most attacks failed)"
    if np.isfinite(s["CI low"]) and np.isfinite(s["CI high"]):
        return f"{s['median ratio']:.2f}× [{s['CI low']:.2f}, {s['CI high']:.2f}]"
    return f"{s['median ratio']:.2f}×"
