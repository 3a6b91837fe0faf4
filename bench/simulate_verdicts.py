"""The verdict rule's error rates and power on simulated records (the worlds of tests/test_claims.py): the
family-wise rate of a false "supported" among the discriminating claims where every effect sits exactly at its
margin and where dimension alone holds; how often each discriminating claim is "supported" in a DMM-true world
whose on-manifold attacks partly fail; claim 6 "supported" when censoring differs between the splits.

Usage: python bench/simulate_verdicts.py [--sims N]  (prints one line per world and N; a few minutes)."""
import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_claims import dimpled, world  # noqa: E402  (the tests' worlds: one definition)

from lib.studies import claims  # noqa: E402


def tables(make, sims, seed=2):
    rng = np.random.default_rng(seed)
    return [claims.evaluate(make(rng))[0] for _ in range(sims)]


def main(sims):
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
    ap.add_argument("--sims", type=int, default=100)
    main(ap.parse_args().sims)
