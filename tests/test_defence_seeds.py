"""Notebook 07's verdicts over training seeds (lib.studies.defence.defence_seeds): the pooling of paired robust
outcomes on images shared across seeds (lib.inference.pooling with statistic "mean"), by simulation, and the
bookkeeping of per-seed and pooled rows."""
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from lib.inference import pooling, verdicts
from lib.studies.defence import defence_claims, defence_seeds

MARGIN = 0.05
SIMS = 300
FPR_MAX = 0.05 + 2.33 * np.sqrt(0.05 * 0.95 / SIMS)  # alpha plus 2.33 binomial standard errors (one-sided 99%)
IMAGE_SD, NOISE_SD, OWN_SD = 1.5, 1.0, 1.0


def paired_seeds(rng, at=MARGIN, n=50, k=3, tau=0.3, fixed_b=False):
    """k seeds' 07d-like rows on the SAME n images: image i robust under defence a in seed s when
    b_i + c_i + gap + u_s + e_ais > 0, under b when b_i + e_bis > 0 (b_i ~ N(0, 1.5^2), an image's robustness shared
    by both defences and every seed; c_i ~ N(0, 1), how much easier the image is for a, the same in every seed, so
    the seeds' differences correlate; u_s ~ N(0, tau^2), the seed's own shift; e ~ N(0, 1), the seed-and-image noise;
    fixed_b: b's outcomes the same in every seed, as the undefended classifier's). gap puts the mean over seeds and
    images of P(robust under a) - P(robust under b) at ``at``: Phi(gap / sqrt(1 + 1.5^2 + 1 + tau^2)) - 1/2 = at."""
    gap = sps.norm.ppf(0.5 + at) * np.sqrt(NOISE_SD ** 2 + IMAGE_SD ** 2 + OWN_SD ** 2 + tau ** 2)
    base = rng.normal(0, IMAGE_SD, n)
    own = base + rng.normal(0, OWN_SD, n)
    ok_b0 = base + rng.normal(0, NOISE_SD, n) > 0
    rows = []
    for _ in range(k):
        ok_a = own + gap + rng.normal(0, tau) + rng.normal(0, NOISE_SD, n) > 0
        ok_b = ok_b0 if fixed_b else base + rng.normal(0, NOISE_SD, n) > 0
        rows.append(defence_claims.paired_row("07d/x", "07d", "a claim", "sim", ok_a, ok_b, MARGIN, eps=1.0))
    return rows


def test_paired_rows_keep_their_per_image_differences():
    ok_a, ok_b = np.array([1, 1, 0, 0, 1], bool), np.array([1, 0, 1, 0, 0], bool)
    r = defence_claims.paired_row("07d/x", "07d", "c", "sim", ok_a, ok_b, MARGIN, images=[4, 5, 6, 7, 8])
    low, high = r.per_image
    assert list(low.index) == [4, 5, 6, 7, 8] and list(low) == [0, 1, -1, 0, 1] and (low == high).all()
    assert low.mean() == pytest.approx(r.effect)  # the row's effect is the mean of its per-image differences


def test_shared_images_pool_each_seeds_mean_with_statistic_mean():
    rng = np.random.default_rng(0)
    x = rng.integers(-1, 2, (40, 3)).astype(float)
    p = pooling.pool_shared_images(x, statistic="mean")
    assert p["effect"] == pytest.approx(x.mean(0).mean())
    assert pooling.pool_shared_images(x)["effect"] == pytest.approx(np.median(x, 0).mean())
    with pytest.raises(ValueError, match="statistic"):
        pooling.pool_shared_images(x, statistic="mode")
    with pytest.raises(ValueError, match="vary"):  # every image the same in every seed: no standard error
        pooling.pool_shared_images(np.zeros((40, 3)), statistic="mean")


@pytest.mark.parametrize("fixed_b", [False, True])
def test_paired_outcomes_shared_across_seeds_at_the_margin_are_supported_at_most_alpha(fixed_b):
    """Three seeds on the same 50 images, binary robust outcomes per image, the mean robust-accuracy difference over
    seeds and images exactly at the margin (5 points), seeds differing by a random shift: the pooled test against
    the margin is significant at most alpha of the time. The premise holds: the seeds' means correlate (shared
    images). Far beyond the margin (25 points) the pooled row is found supported."""
    rng = np.random.default_rng(7)
    rows = [pooling.pooled_row(paired_seeds(rng, fixed_b=fixed_b), "seeds", statistic="mean") for _ in range(SIMS)]
    rate = np.mean([r.p_margin < 0.05 for r in rows])
    assert rate <= FPR_MAX, f"paired outcomes pooled over shared images at the margin: significant in {rate:.1%}"
    assert np.nanmedian([r.notes["rho"] for r in rows]) > 0.1
    found = [pooling.pooled_row(paired_seeds(rng, at=0.25, fixed_b=fixed_b), "seeds", statistic="mean")
             for _ in range(40)]
    assert np.mean([pooling.judge([r], "t")["verdict"].iloc[0] == "supported" for r in found]) >= 0.8


def test_taking_the_seeds_as_independent_is_too_liberal_here():
    """The reason the shared-image pooling is used: the simulated seeds (against a defence whose outcomes are the same
    in every seed, as the undefended classifier's) pooled by a meta-analysis that takes them as independent (their
    rows' own standard errors, DerSimonian-Laird's z) are significant at the margin more
    often than alpha allows."""
    rng = np.random.default_rng(7)
    p = []
    for _ in range(SIMS):
        rows = paired_seeds(rng, fixed_b=True)
        ses = [pooling.se_from_ci(r.ci_low, r.ci_high) for r in rows]
        p.append(pooling.pooled_tests(pooling.pool([r.effect for r in rows], ses, hksj=False), "greater", MARGIN)[1])
    assert np.mean(np.array(p) < 0.05) > FPR_MAX


def _seed_rows(rng, seeds=(0, 1, 2), names=("mnist", "fashion_mnist")):
    rows = {}
    for name in names:
        for s in seeds:
            spread_plain, spread_iae = rng.gamma(2, 0.2, 30), rng.gamma(2, 0.1, 30)
            rs = [verdicts.Row(**{**r.__dict__, "notes": {**r.notes, "eps": np.nan}})
                  for r in defence_claims.isometry_rows(name, spread_plain, spread_iae)]
            for eps in (1.0, 2.0):
                at = 1.0 if eps == 1.0 else 0.0
                base = rng.normal(0, 1.5, 40)
                ok_a, ok_b = base + at * 4 + rng.normal(0, 1, 40) > 0, base + rng.normal(0, 1, 40) > 0
                rs.append(defence_claims.paired_row("07d/plain AE", "07d I-AE more robust than plain AE", "c", name,
                                                    ok_a, ok_b, MARGIN, eps=eps, other="plain AE"))
            rows[name, s] = rs
    return rows


def test_pool_rows_pools_each_row_over_the_seeds_and_counts_agreement():
    rows = _seed_rows(np.random.default_rng(1))
    per_seed, pooled = defence_seeds.pool_rows(rows, [0, 1, 2])
    # one pooled row per data set, claim and budget (the isometry rows, without a budget, are one row each)
    assert len(pooled) == 2 * 4 and set(pooled["family"]) == {defence_claims.FAMILY}
    assert (pooled["n"] == 3).all() and len(per_seed) == 2 * 3 * 4
    assert set(per_seed["family"]) == {"07 · seed 0", "07 · seed 1", "07 · seed 2"}
    for _, r in pooled.iterrows():
        same = per_seed[(per_seed["dataset"] == r["dataset"]) & (per_seed["claim_id"] == r["claim_id"])]
        if r["claim_id"].startswith("07d"):
            same = same[np.isclose(same["eps"].astype(float), r["eps"])]
            # the pooled effect is the mean of the seeds' robust-accuracy differences
            assert r["effect"] == pytest.approx(same["effect"].mean())
        assert r["agreeing_seeds"] == f"{int((same['verdict'] == r['verdict']).sum())} of 3"
    # a seed's row the convergence check made inconclusive makes the pooled row inconclusive (not supported)
    flagged = {k: [replace(r, robust_to_failures=False) if r.claim_id.startswith("07d") else r for r in rs]
               for k, rs in rows.items()}
    _, strict = defence_seeds.pool_rows(flagged, [0, 1, 2])
    assert (pooled["verdict"] == "supported").any()
    assert not (strict.loc[strict["claim_id"].str.startswith("07d"), "verdict"] == "supported").any()
    panels = defence_seeds.forest_panels(defence_seeds.Seeds([0, 1, 2], rows, per_seed, pooled, None, 40, 0.0),
                                         "mnist", MARGIN)
    assert len(panels) == 2 and all(len(p["entries"]) == 4 for p in panels.values())  # 3 seeds + pooled
    assert all(p["entries"][-1][5] and not any(e[5] for e in p["entries"][:-1]) for p in panels.values())


def test_seed_records_keep_the_attacks_every_seed_runs_and_left_out_measures_the_rest():
    """Every seed's worst case: transfer, adaptive and AutoAttack, and the I-AE's on/off PGD (07c); the baselines'
    confined PGD and Square alone are left out, and `left_out` is the largest change of a robust accuracy they make."""
    rows = []
    for d in ("I-AE", "plain AE"):
        for attack in ("transfer", "adaptive", "AutoAttack", "on-manifold", "off-manifold", "Square alone"):
            for i in range(10):
                # the plain AE: Square alone breaks images 0-2 that nothing else breaks (30 points)
                broken = (attack == "Square alone" and d == "plain AE" and i < 3) or (attack == "adaptive" and i > 7)
                rows.append({"dataset": "m", "defence": d, "attack": attack, "eps": 1.0, "image": i, "broken": broken})
    records = pd.DataFrame(rows)
    kept = defence_seeds.seed_records(records)
    assert set(kept["attack"]) == {"transfer", "adaptive", "AutoAttack", "on-manifold", "off-manifold"}
    assert set(kept.loc[kept["attack"].isin(["on-manifold", "off-manifold"]), "defence"]) == {"I-AE"}
    assert defence_seeds.left_out(records, [1.0]) == pytest.approx(30.0)
    assert defence_seeds.left_out(kept, [1.0]) == 0.0
