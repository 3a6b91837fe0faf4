"""The verdict rule's error rates and power on simulated records (the worlds of tests/test_claims.py and
tests/test_replication.py). First the false-"supported" rates at the margin, before and after issue 31, each with its
Wilson 95% interval, N and the number of worlds: a row's median at the margin with skewed per-image values (before:
Wilcoxon's signed-rank test beside the median; after: the sign test of the median); three seeds on the same images
with their pooled effect at the margin (before: a DerSimonian-Laird meta-analysis taking the seeds as independent;
HKSJ alone beside it; after: lib.inference.pooling.pool_shared_images); three independent seeds with between-seed
variance (before: DL's z; after: HKSJ's t). Then the family-wise rate of a false "supported" among the discriminating
claims where every effect sits exactly at its margin and where dimension alone holds; how often each discriminating
claim is "supported" in a DMM-true world whose on-manifold attacks partly fail; claim 6 "supported" when censoring
differs between the splits.

Usage: python bench/simulate_verdicts.py [--sims N] [--worlds W] [--margin-only]  (one line per world and N;
minutes)."""

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_claims import dimpled, skewed_cosine_world, skewed_share_world, world  # noqa: E402  (one definition)
from test_replication import M, shared_image_seeds  # noqa: E402
from scipy import stats as sps  # noqa: E402

from lib.experiments import records as rec  # noqa: E402
from lib.inference import pooling, stats  # noqa: E402
from lib.studies.manifold import claims  # noqa: E402


def rate(hits) -> str:
    k, n = int(np.sum(hits)), len(hits)
    lo, hi = stats.wilson_ci(k, n)
    return f"{k / n:6.1%} [{lo:.1%}, {hi:.1%}]"


def signed_rank_p_margin(values, predicted, margin):
    """The old rule's margin test: Wilcoxon's signed-rank test (about the pseudo-median) of values - margin."""
    s = 1 if predicted == "greater" else -1
    return sps.wilcoxon(values - s * margin, alternative=predicted, zero_method="wilcox").pvalue


def at_the_margin(worlds, worlds_seeds, worlds_dl):
    """Issue 31's rates at the margin, before and after."""
    print("False 'supported' at the margin (rate, Wilson 95% interval):")
    cases = {"4": (lambda rng, n: skewed_share_world(rng, n, -np.log(1.1)),
                   lambda r: claims.claim_gradient_share(r, claims_where()), "less", np.log(1.1),
                   lambda r: rec.share_log_ratio(r).low.to_numpy()),
             "5b": (lambda rng, n: skewed_cosine_world(rng, n, 0.05),
                    lambda r: claims.claim_class_cosine(r, claims_where(), ("on", "random")), "greater", 0.05,
                    lambda r: rec.difference(r, rec.ON_T, ("on", "random")).low.to_numpy())}
    for cid, (make, claim, predicted, margin, values) in cases.items():
        for n in (200, 1000):
            rng = np.random.default_rng(31)
            old, new = [], []
            for _ in range(worlds):
                r = make(rng, n)
                old.append(signed_rank_p_margin(values(r), predicted, margin) < 0.05)
                new.append(claim(r).p_margin < 0.05)
            print(
                f"  claim {cid:2s} median at the margin, skewed values, N={n:5d}, {worlds} worlds: before "
                f"(signed-rank) {rate(old)}, after (sign test) {rate(new)}"
            )
    rng = np.random.default_rng(32)
    dl, hk, new = [], [], []
    for _ in range(worlds_seeds):
        rows = shared_image_seeds(rng)
        ses = [pooling.se_from_ci(r.ci_low, r.ci_high) for r in rows]
        for out, hksj in ((dl, False), (hk, True)):
            out.append(pooling.pooled_tests(pooling.pool([r.effect for r in rows], ses, "dl", hksj), "greater", M)[1]
                       < 0.05)
        new.append(pooling.pooled_row(rows, "both").p_margin < 0.05)
    print(f"  3 seeds on the same 100 images, pooled effect at the margin, {worlds_seeds} worlds: before (DL z, seeds "
          f"as independent) {rate(dl)}, HKSJ as independent {rate(hk)}, after (shared images) {rate(new)}")
    rng = np.random.default_rng(33)
    se = np.full(3, 0.1)
    ys = M + rng.normal(0, 0.2, (worlds_dl, 3)) + rng.normal(0, se, (worlds_dl, 3))
    old = [pooling.pooled_tests(pooling.pool(y, se, "dl", hksj=False), "greater", M)[1] < 0.05 for y in ys]
    new = [pooling.pooled_tests(pooling.pool(y, se, "dl"), "greater", M)[1] < 0.05 for y in ys]
    print(f"  3 independent seeds, between-seed SD 2x the within SE, at the margin, {worlds_dl} worlds: before (DL z) "
          f"{rate(old)}, after (HKSJ t) {rate(new)}")


def claims_where():
    return {"dataset": "sim", "split": "test", "clip": True}


def tables(make, sims, seed=2):
    rng = np.random.default_rng(seed)
    return [claims.evaluate(make(rng))[0] for _ in range(sims)]


def main(sims, worlds):
    at_the_margin(worlds, worlds, 10 * worlds)
    for n in (200, 1000):
        margin = tables(lambda rng: world(rng, n=n, gap=np.sqrt(1.1), share_factor=1 / 1.1, cos_shift=0.05), sims)
        null = tables(lambda rng: world(rng, n=n, eps_on=np.exp(2.2)), sims)
        for name, ts in (("effects at the margin", margin), ("dimension alone", null)):
            fwe = np.mean([(t[t["discriminating"]]["verdict"] == "supported").any() for t in ts])
            print(f"N={n:5d} {name:24s} family-wise false 'supported': {fwe:.3f} ({sims} tables)")
        for fail, control_fail in ((0.1, 0.1), (0.3, 0.1), (0.3, 0.3), (0.6, 0.1)):
            ts = tables(lambda rng: dimpled(rng, n, fail, control_fail), sims)
            found = {cid: np.mean([(t.loc[t["claim_id"] == cid, "verdict"] == "supported").all() for t in ts])
                     for cid in claims.DISCRIMINATING}
            print(f"N={n:5d} dimpled, {fail:.0%} tangent / {control_fail:.0%} control 'on' failed: supported " +
                  ", ".join(f"claim {c} {v:.2f}" for c, v in found.items()))
    rng = np.random.default_rng(4)
    hits = []
    for _ in range(sims):
        train = world(rng, n=1000, split="train", gap=1.15)
        on_t = (train["condition"] == "on") & (train["subspace"] == "tangent")
        train.loc[on_t & (train["norm"] > np.quantile(train.loc[on_t, "norm"], 0.6)), "success"] = False
        t, _ = claims.evaluate(pd.concat([train, world(rng, n=1000, split="test")]))
        hits.append((t.loc[t["claim_id"] == "6", "verdict"] == "supported").any())
    print(f"N= 1000 claim 6, 1.15x apart, longest 40% of train censored: 'supported' in {np.mean(hits):.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--sims", type=int, default=100, help="tables per world of the family-wise part")
    ap.add_argument("--worlds", type=int, default=300, help="worlds per rate at the margin (10x for DL vs HKSJ)")
    ap.add_argument("--margin-only", action="store_true", help="only issue 31's rates at the margin")
    args = ap.parse_args()
    if args.margin_only:
        at_the_margin(args.worlds, args.worlds, 10 * args.worlds)
    else:
        main(args.sims, args.worlds)
