"""The claims and the verdict rule, judged by simulation: under a true null every claim's test is
significant at most alpha of the time (plus Monte Carlo error), and a true effect is found.

The simulated world is the one "dimension alone" describes: a locally flat decision boundary at distance d
from each image, whose normal w is fixed and whose subspaces are uniformly random. An attack confined to a
subspace S needs d / ||P_S w|| (on) or d / ||P_{S-perp} w|| (off), and the share s = ||P_S w||^2 / ||w||^2 of
a random k-dimensional S is Beta(k/2, (n-k)/2) (checked against real random orthonormal subspaces below).
"The tangent space" is then a second random subspace: every discriminating claim is false by construction.
"""
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from lib import claims, records, stats

K, N_PIX = 16, 784
SIMS, N_IMG = 200, 1000
# Monte Carlo allowance: alpha plus 2.33 binomial standard errors (one-sided 99%) over SIMS data sets
FPR_MAX = 0.05 + 2.33 * np.sqrt(0.05 * 0.95 / SIMS)


def world(rng, n=N_IMG, *, gap=1.0, share_factor=1.0, cos_shift=0.0, off_factor=1.0, eps_on=np.inf,
          eps_off=np.inf, coordinate_fail=0.0, split="test", noise=0.03):
    """Records of one data set and split in the flat-boundary world; effects multiply the tangent space's."""
    d = np.exp(rng.normal(0.0, 0.3, n))
    rows = []

    def add(condition, subspace, norm, eps, share=np.nan, cos=np.nan):
        norm = norm * np.exp(rng.normal(0, noise, n))
        ok = norm <= eps
        rows.append(pd.DataFrame({"dataset": "sim", "split": split, "clip": True, "image_id": np.arange(n),
                                  "condition": condition, "subspace": subspace, "k": K if subspace != "none" else N_PIX,
                                  "n": N_PIX, "success": ok, "norm": np.where(ok, norm, np.minimum(eps, norm)),
                                  "subspace_share": 1.0, "grad_share": share,
                                  "class_cosine": np.where(ok, cos, np.nan)}))

    add("unconstrained", "none", d, np.inf)
    for sub in ("tangent", "random", "coordinate"):
        s = rng.beta(K / 2, (N_PIX - K) / 2, n)
        if sub == "tangent":
            s = np.minimum(s * share_factor, 0.999)
        cos = rng.normal(0.10, 0.05, n) + (cos_shift if sub == "tangent" else 0.0)
        on = d / np.sqrt(s) * (gap if sub == "tangent" else 1.0)
        eps = eps_on if sub != "coordinate" else np.inf
        if sub == "coordinate" and coordinate_fail:
            eps = np.quantile(on, 1 - coordinate_fail)
        add("on", sub, on, eps, s, cos)
        add("off", sub, d / np.sqrt(1 - s) * (off_factor if sub == "tangent" else 1.0), eps_off, s,
            rng.normal(0.10, 0.05, n))
    return pd.concat(rows, ignore_index=True)


def test_beta_share_is_what_a_real_random_subspace_captures():
    """The simulation's premise: the energy share of a fixed vector in a random orthonormal k-subspace is
    Beta(k/2, (n-k)/2), whose median lies below k/n (why "share < k/n" is the wrong null)."""
    from lib import subspaces

    rng = np.random.default_rng(0)
    w = rng.normal(size=N_PIX)
    shares = []
    for seed in range(300):
        q = subspaces.RandomSubspace(N_PIX, K, seed=seed).Q.numpy().astype(float)
        shares.append(np.sum((q.T @ w) ** 2) / np.sum(w ** 2))
    assert sps.kstest(shares, sps.beta(K / 2, (N_PIX - K) / 2).cdf).pvalue > 0.01
    assert stats.random_share_median(K, N_PIX) < K / N_PIX
    assert np.mean(stats.random_share_cdf(shares, K, N_PIX) < 0.5) == pytest.approx(0.5, abs=0.1)


def _rate(make_records, claim, sims=SIMS):
    """Share of simulated data sets where the claim's own (unadjusted) test is significant, and the verdicts."""
    rng = np.random.default_rng(1)
    p, verdicts = [], []
    for _ in range(sims):
        row = claim(make_records(rng))
        p.append(row["p"])
        verdicts.append(row)
    return float(np.mean(np.asarray(p) < 0.05)), verdicts


def _verdict(row, p=None):
    lo, hi = row["ci_low"], row["ci_high"]
    return claims.verdict(row["kind"], row["p"] if p is None else p, lo, hi, row["margin"], 0.05, row["predicted"],
                          row.get("null_verdict", "not supported"), row.get("testable", True),
                          row.get("robust_to_failures", True))


@pytest.mark.parametrize("name, claim", [
    ("3 gap vs random", lambda r: claims.claim_gap(r, "random")),
    ("4 gradient share", claims.claim_gradient_share),
    ("5b class cosine vs random", lambda r: claims.claim_class_cosine(r, ("on", "random"))),
    ("1b on/off vs flat boundary", claims.claim_flat_boundary),
])
def test_false_positive_rate_under_a_true_null(name, claim):
    """The tangent space is a second random subspace: each discriminating claim's test (and claim 1b's, whose
    null is the flat boundary) is significant in at most alpha of the data sets; and it is never "supported"
    more often. The old share test (log(share/(k/n)) against 0) fails this: about 100% at N = 1000."""
    rate, rows = _rate(lambda rng: world(rng, eps_on=np.exp(2.2)), claim)
    supported = np.mean([_verdict(r) == "supported" for r in rows])
    assert rate <= FPR_MAX, f"{name}: false-positive rate {rate:.3f}"
    assert supported <= FPR_MAX


def test_equivalence_false_positive_rate_at_the_margin():
    """Off is exactly 1.1x unconstrained (on the margin): TOST declares equivalence at most alpha of the time."""
    rate, rows = _rate(lambda rng: world(rng, off_factor=1.1 / np.sqrt(1 / (1 - K / N_PIX)), noise=0.2, n=300),
                       claims.claim_off_unconstrained)
    assert rate <= FPR_MAX


def test_train_test_false_positive_rate():
    def both(rng):
        return pd.concat([world(rng, n=300, split="train", eps_on=np.exp(2.2)),
                          world(rng, n=300, split="test", eps_on=np.exp(2.2))])
    rate, _ = _rate(both, claims.claim_train_test)
    assert rate <= FPR_MAX


def test_on_off_false_positive_rate_when_on_and_off_are_alike():
    def alike(rng):
        r = world(rng, n=300)
        on = (r["condition"] == "on") & (r["subspace"] == "tangent")
        off = (r["condition"] == "off") & (r["subspace"] == "tangent")
        r.loc[on, "norm"] = r.loc[off, "norm"].to_numpy() * np.exp(rng.normal(0, 0.2, on.sum()))
        return r
    rate, _ = _rate(alike, claims.claim_on_off)
    assert rate <= FPR_MAX


@pytest.mark.parametrize("claim, effect, expected", [
    (lambda r: claims.claim_gap(r, "random"), dict(gap=1.5), "supported"),
    (claims.claim_gradient_share, dict(share_factor=0.5), "supported"),
    (lambda r: claims.claim_class_cosine(r, ("on", "random")), dict(cos_shift=0.15), "supported"),
    (claims.claim_gradient_share, dict(share_factor=4.0), "not supported"),
    (lambda r: claims.claim_gap(r, "random"), dict(gap=0.5), "not supported"),
    (lambda r: claims.claim_gap(r, "random"), dict(), "explained by dimension alone"),
])
def test_a_true_effect_is_found(claim, effect, expected):
    rows = [claim(world(np.random.default_rng(s), **effect)) for s in range(5)]
    assert [_verdict(r) for r in rows] == [expected] * 5


def test_significant_but_inside_the_margin_is_negligible_not_supported():
    """A 1.04x gap at N = 1000 with little noise: significant, CI well inside ±10%."""
    row = claims.claim_gap(world(np.random.default_rng(0), gap=1.04, n=4000), "random")
    assert row["p"] < 1e-6 and np.exp(row["ci_high"]) < 1.1
    assert _verdict(row) == "negligible"
    # the rule alone, on the example: 1.05x with CI [1.02, 1.08], p tiny
    assert claims.verdict("difference", 1e-9, np.log(1.02), np.log(1.08), np.log(1.1)) == "negligible"
    assert claims.verdict("difference", 1e-9, np.log(1.12), np.log(1.3), np.log(1.1)) == "supported"
    assert claims.verdict("difference", 1e-9, np.log(1.05), np.log(1.3), np.log(1.1)) == "inconclusive"
    assert claims.verdict("difference", 0.4, np.log(0.5), np.log(0.8), np.log(1.1)) == "not supported"
    assert claims.verdict("difference", 0.4, np.log(0.95), np.log(1.05), np.log(1.1),
                          null_verdict="explained by dimension alone") == "explained by dimension alone"
    assert claims.verdict("difference", 0.001, np.log(0.5), np.log(0.8), np.log(1.1), predicted="less") == "supported"


def test_both_arms_failed_is_undecided_not_ranked():
    """Images where both "on" attacks failed say nothing about which gap is larger: counted as undecided, and
    nothing about them enters the test. (Ranked, they gave log(off_random / off_tangent), a number from the
    off arms alone, which decided the old test.)"""
    def rows(off_factor):
        r = world(np.random.default_rng(0), n=200)
        both = r["image_id"] < 50
        r.loc[(r["condition"] == "on") & both & r["subspace"].isin(["tangent", "random"]), "success"] = False
        r.loc[(r["condition"] == "off") & (r["subspace"] == "tangent") & both, "norm"] *= off_factor
        return claims.claim_gap(r, "random")
    plain, skewed = rows(1.0), rows(5.0)
    assert plain["n_undecided"] == 50 and plain["n"] == 200
    assert plain["p"] == skewed["p"] and plain["ci_low"] == skewed["ci_low"] and plain["ci_high"] == skewed["ci_high"]
    assert "50 undecided" in plain["statistic"]
    # with a quarter of the images unknown, a precise null cannot be claimed either
    assert _verdict(plain) == "inconclusive"


def test_censoring_logic_of_a_gap():
    """Interval arithmetic: a failure on one side bounds the gap on one side; both "on" attacks failed: nothing."""
    r = world(np.random.default_rng(0), n=4)
    fail = {("on", "tangent"): [0, 1], ("on", "random"): [1, 2]}
    for (c, s), ids in fail.items():
        r.loc[(r["condition"] == c) & (r["subspace"] == s) & r["image_id"].isin(ids), "success"] = False
    e = records.gap(r, "tangent", "random")
    lo, hi = e.low.to_numpy(), e.high.to_numpy()
    assert np.isfinite(lo[0]) and hi[0] == np.inf
    assert lo[1] == -np.inf and hi[1] == np.inf
    assert lo[2] == -np.inf and np.isfinite(hi[2])
    assert lo[3] == hi[3] and np.isfinite(lo[3])
    assert e.n_censored == 3 and len(e.complete) == 1


def test_tost_with_failures_is_not_decided_by_placeholders():
    """A true equivalence (off = unconstrained) with some failed off attacks: the TOST runs on complete pairs
    (its interval stays near 1, not pushed out by placeholder norms); a few failures leave it supported, many
    (a significant McNemar) make it inconclusive rather than "not supported"."""
    def with_failures(m):
        r = world(np.random.default_rng(3), n=200, off_factor=1 / np.sqrt(1 / (1 - K / N_PIX)), noise=0.03)
        off = (r["condition"] == "off") & (r["subspace"] == "tangent") & (r["image_id"] < m)
        r.loc[off, "success"] = False
        return claims.claim_off_unconstrained(r)
    few, many = with_failures(2), with_failures(12)
    for row in (few, many):
        assert row["n"] == 200 - (2 if row is few else 12)
        assert np.log(1 / 1.05) < row["ci_low"] < row["ci_high"] < np.log(1.05)
    assert _verdict(few) == "supported"
    assert not many["robust_to_failures"] and _verdict(many) == "inconclusive"


def test_a_control_that_cannot_succeed_is_not_testable():
    r = world(np.random.default_rng(0), n=300, coordinate_fail=0.9)
    row = claims.claim_gap(r, "coordinate")
    assert not row["testable"] and _verdict(row) == "not testable"
    assert claims.claim_gap(world(np.random.default_rng(0), n=300, coordinate_fail=0.3), "coordinate")["testable"]


def test_evaluate_table_holm_headline_and_answer():
    rng = np.random.default_rng(0)
    r = pd.concat([world(rng, n=300, split="test", gap=1.6, share_factor=0.5, cos_shift=0.2, eps_on=np.exp(3.5)),
                   world(rng, n=300, split="train", gap=1.6, share_factor=0.5, cos_shift=0.2, eps_on=np.exp(3.5))])
    t, skipped = claims.evaluate(r, controls=("random", "coordinate", "pca"))
    assert any("pca" in s for s in skipped)  # no PCA records: said, not silently dropped
    assert set(t["claim_id"]) == {"1", "1b", "2", "3", "4", "5a", "5b", "6"}  # no PCA records: no 3pca, no 5c
    assert (t["p_holm"] >= t["p"]).all()
    disc = t[t["discriminating"]]
    assert set(disc["short"]) == set(claims.DISCRIMINATING) and (disc["verdict"] == "supported").all()
    g = t[(t["short"] == "3 gap: tangent > random") & (t["split"] == "test")].iloc[0]
    # 1.6 from the gap, sqrt(2) from the halved share: on = d / sqrt(s)
    assert 2.0 < g["effect"] < 2.5 and g["ci_low"] < g["effect"] < g["ci_high"]
    text = claims.answer(t, r)
    assert len(text) == 1 and text[0].startswith("sim (300 test images)") and "gap is 2.2" in text[0]


def test_verdict_rejects_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        claims.verdict("bigger", 0.01, 0.2, 0.3, 0.1)
    with pytest.raises(ValueError, match="margin"):
        claims.evaluate(world(np.random.default_rng(0), n=10), margin=0.9)
