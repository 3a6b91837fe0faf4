"""Properties of lib.stats on synthetic attack records with known effects."""
import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from lib import stats as st

K, N = 16, 784


def make_records(n=200, ratios=None, sd=0.3, seed=0, datasets=("mnist",), off_shift=1.0):
    """Per image: unconstrained ~ lognormal; off = unconstrained * off_shift * noise;
    on = off * ratio[subspace] * noise. All attacks succeed."""
    ratios = {"tangent": 3.0} if ratios is None else ratios
    rng = np.random.default_rng(seed)
    rows = []
    for ds in datasets:
        base = np.exp(rng.normal(np.log(0.5), 0.3, n))
        ids = np.arange(n)
        rows.append(pd.DataFrame(dict(image_id=ids, dataset=ds, condition="unconstrained",
                                      subspace="none", norm=base)))
        for sub, r in ratios.items():
            off = base * off_shift * np.exp(rng.normal(0, sd, n))
            on = off * r * np.exp(rng.normal(0, sd, n))
            rows.append(pd.DataFrame(dict(image_id=ids, dataset=ds, condition="off", subspace=sub, norm=off)))
            rows.append(pd.DataFrame(dict(image_id=ids, dataset=ds, condition="on", subspace=sub, norm=on)))
    df = pd.concat(rows, ignore_index=True)
    return df.assign(split="test", success=True, grad_share=np.nan, k=K, n=N)


ON, OFF, UNC = ("on", "tangent"), ("off", "tangent"), ("unconstrained", "none")


def test_paired_tests_find_known_effect():
    lr = st.paired_log_ratio(make_records(ratios={"tangent": 3.0}), ON, OFF)
    assert lr.label == "on/tangent vs off/tangent" and lr.n_fail == {"on/tangent": 0, "off/tangent": 0}
    for alt in ("greater", "two-sided"):
        r = st.paired_tests(lr, alt)
        assert r.n == 200 and r.p_wilcoxon < 0.01 and r.p_t < 0.01
        assert r.median_ratio_ci[0] < 3.0 < r.median_ratio_ci[1]
        assert r.mean_log_ci[0] < np.log(3.0) < r.mean_log_ci[1]
        assert r.power > 0.99 and r.n_needed < 10
    # the wrong direction finds nothing
    assert st.paired_tests(lr, "less").p_wilcoxon > 0.99


def test_false_positive_rate_near_alpha():
    hits_w, hits_t = 0, 0
    for seed in range(200):
        lr = st.paired_log_ratio(make_records(n=30, ratios={"tangent": 1.0}, seed=seed), ON, OFF)
        r = st.paired_tests(lr, "two-sided", n_boot=50)
        hits_w += r.p_wilcoxon < 0.05
        hits_t += r.p_t < 0.05
    assert 0.02 <= hits_w / 200 <= 0.09
    assert 0.02 <= hits_t / 200 <= 0.09


def test_tost_equivalence_and_shift():
    same = st.tost_paired(st.paired_log_ratio(make_records(n=2000), OFF, UNC))
    assert same.equivalent and same.p < 0.001
    assert 1 / 1.1 < same.ratio_ci90[0] < 1 < same.ratio_ci90[1] < 1.1
    shifted = st.tost_paired(st.paired_log_ratio(make_records(n=2000, off_shift=1.3), OFF, UNC))
    assert not shifted.equivalent and shifted.p > 0.5
    assert shifted.ratio_ci90[0] < 1.3 < shifted.ratio_ci90[1]


def test_holm_matches_statsmodels_and_is_monotone():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5, 0.2])
    adj = st.holm(p)
    np.testing.assert_allclose(adj, multipletests(p, method="holm")[1])
    order = np.argsort(p)
    assert np.all(np.diff(adj[order]) >= 0) and np.all(adj >= p) and np.all(adj <= 1)
    with_nan = st.holm(np.r_[p, np.nan])
    np.testing.assert_allclose(with_nan[:-1], adj)
    assert np.isnan(with_nan[-1])


def test_share_test_finds_less_than_k_over_n():
    rng = np.random.default_rng(1)
    low = K / N * 0.5 * np.exp(rng.normal(0, 0.5, 100))
    r = st.one_sample_share_test(np.r_[low, np.nan], K, N)
    assert r.less.n == 100 and r.expected_share == pytest.approx(K / N)
    assert r.less.p_wilcoxon < 0.01 and r.less.p_t < 0.01 and r.two_sided.p_wilcoxon < 0.01
    assert r.less.median_ratio_ci[0] < 0.5 < r.less.median_ratio_ci[1]
    high = st.one_sample_share_test(K / N * 2 * np.exp(rng.normal(0, 0.5, 100)), K, np.full(100, N))
    assert high.less.p_wilcoxon > 0.5 and high.two_sided.p_wilcoxon < 0.01
    with pytest.raises(ValueError):
        st.one_sample_share_test([1.5], K, N)


def test_compare_gap_tangent_vs_random():
    recs = make_records(n=200, ratios={"tangent": 6.0, "random": 3.0}, seed=2)
    r = st.compare_gap(recs, "tangent", "random", alternative="greater")
    assert r.p_wilcoxon < 0.01 and r.p_t < 0.01
    assert r.median_ratio_ci[0] < 2.0 < r.median_ratio_ci[1]
    assert set(r.n_fail) == {"on/tangent", "off/tangent", "on/random", "off/random"}
    null = st.compare_gap(make_records(n=200, ratios={"tangent": 3.0, "random": 3.0}, seed=3))
    assert null.p_wilcoxon > 0.05
    assert null.median_ratio_ci[0] < 1.0 < null.median_ratio_ci[1]


def censored_records(seed=4, frac=0.3):
    """on = 1.5 x off; the largest `frac` true on-norms exhaust the budget and record the cap."""
    recs = make_records(n=200, ratios={"tangent": 1.5}, sd=0.5, seed=seed)
    on = (recs["condition"] == "on")
    cap = recs.loc[on, "norm"].quantile(1 - frac)
    fail = on & (recs["norm"] > cap)
    recs.loc[fail, "norm"] = cap
    recs.loc[fail, "success"] = False
    return recs, int(fail.sum())


def test_failure_policy_rank_top_vs_drop():
    recs, n_failed = censored_records()
    top = st.paired_log_ratio(recs, ON, OFF, failure_policy="rank_top")
    drop = st.paired_log_ratio(recs, ON, OFF, failure_policy="drop")
    assert top.n_fail["on/tangent"] == drop.n_fail["on/tangent"] == n_failed == 60
    assert len(top.values) == 200 and len(drop.values) == 200 - n_failed
    # failures are ranked above every success/success pair
    failed = top.pairs["failed_a"].to_numpy()
    assert top.values[failed].min() > np.abs(top.values[~failed]).max()
    rt, rd = st.paired_tests(top, "greater"), st.paired_tests(drop, "greater")
    assert rt.median_ratio > rd.median_ratio and rt.p_wilcoxon < rd.p_wilcoxon
    # a failure in the denominator arm ranks at the bottom, not the top
    swapped = st.paired_log_ratio(recs, OFF, ON, failure_policy="rank_top")
    assert swapped.values[failed].max() < -np.abs(swapped.values[~failed]).max()
    sens = st.policy_sensitivity(lambda pol: st.paired_tests(st.paired_log_ratio(recs, ON, OFF, pol), "greater"))
    assert list(sens["policy"]) == ["rank_top", "drop"] and sens["agree"].all()


def test_failure_counts():
    recs, n_failed = censored_records()
    fc = st.failure_counts(recs).set_index(["condition", "subspace"])
    assert fc.loc[("on", "tangent"), "n_fail"] == n_failed
    assert fc.loc[("on", "tangent"), "success_rate"] == pytest.approx(1 - n_failed / 200)
    assert fc.loc[("off", "tangent"), "n_fail"] == 0


def test_mixed_model_recovers_on_effect():
    recs = make_records(n=80, ratios={"tangent": 3.0}, datasets=("mnist", "cifar10"), seed=5)
    m = st.mixed_model(recs)
    assert m.formula == "log_norm ~ arm * dataset" and m.n_groups == 160 and m.n_obs == 480
    row = m.table.set_index("term").loc["arm[T.on_tangent]"]
    assert row["ci_low"] < np.log(3.0) < row["ci_high"] and row["p"] < 0.01
    assert "Group Var" not in set(m.table["term"]) and m.image_var > 0 and m.resid_var > 0
    assert st.mixed_model(recs, failure_policy="rank_top").n_obs == 480


def test_power_paired():
    x = np.random.default_rng(6).normal(0.3, 1.0, 40)
    p = st.power_paired(x)
    d = x.mean() / x.std(ddof=1)
    assert p.power == pytest.approx(TTestPower().power(abs(d), 40, 0.05))
    tp = TTestPower()
    assert tp.power(abs(d), p.n_needed, 0.05) >= 0.8 > tp.power(abs(d), p.n_needed - 1, 0.05)
    assert st.power_paired(x, alternative="less").n_needed == np.inf
    assert st.power_paired(x, alternative="greater").power > p.power


def test_verdict_table():
    big = make_records(n=400, ratios={"tangent": 3.0, "random": 3.0}, seed=7)
    small = make_records(n=8, ratios={"tangent": 1.1}, seed=8)
    rows = [
        st.verdict_row("on > off (tangent)", st.paired_tests(st.paired_log_ratio(big, ON, OFF), "greater")),
        st.verdict_row("off ~ unconstrained", st.tost_paired(st.paired_log_ratio(big, OFF, UNC)),
                       predicted="equivalent"),
        st.verdict_row("gap tangent > random", st.compare_gap(big, alternative="greater"),
                       null_means="explained by dimension alone"),
        st.verdict_row("on < off (wrong way)", st.paired_tests(st.paired_log_ratio(big, ON, OFF), "two-sided"),
                       predicted="less"),
        st.verdict_row("small sample", st.paired_tests(st.paired_log_ratio(small, ON, OFF), "greater")),
    ]
    t = st.verdict_table(rows)
    assert list(t.columns) == ["claim", "statistic", "effect_text", "effect", "ci_low", "ci_high",
                               "p_raw", "p_holm", "n", "power", "verdict"]
    np.testing.assert_allclose(t["p_holm"], st.holm(t["p_raw"]))
    assert list(t["verdict"]) == ["supported", "supported", "explained by dimension alone",
                                  "not supported", "inconclusive"]
    assert set(t["verdict"]) <= set(st.VERDICTS)


def test_bootstrap_median_ratio_is_seeded():
    x = np.random.default_rng(9).normal(np.log(2), 0.5, 100)
    a, b = st.bootstrap_median_ratio(x, seed=1), st.bootstrap_median_ratio(x, seed=1)
    assert a == b and a[1] < a[0] < a[2] and a[0] == pytest.approx(np.exp(np.median(x)))


def test_bad_parameters_name_allowed_values():
    recs = make_records(n=20)
    with pytest.raises(ValueError, match="'unconstrained', 'on', 'off'"):
        st.paired_log_ratio(recs, ("sideways", "tangent"), OFF)
    with pytest.raises(ValueError, match="'tangent'"):
        st.paired_log_ratio(recs, ("on", "manifold"), OFF)
    with pytest.raises(ValueError, match="'rank_top', 'drop'"):
        st.paired_log_ratio(recs, ON, OFF, failure_policy="ignore")
    with pytest.raises(ValueError, match="'rank_top', 'drop'"):
        st.compare_gap(recs, failure_policy="ignore")
    with pytest.raises(ValueError, match="'rank_top', 'drop'"):
        st.mixed_model(recs, failure_policy="ignore")
    with pytest.raises(ValueError, match="'two-sided', 'greater', 'less'"):
        st.paired_tests(np.ones(5), "bigger")
    with pytest.raises(ValueError, match="no records"):
        st.paired_log_ratio(recs, ("on", "pca"), OFF)
    with pytest.raises(ValueError, match="'none'"):
        st.paired_log_ratio(recs, ("on", "none"), OFF)


def test_failures_with_zero_norm_are_ranked_not_rejected():
    """A failed attack may end at norm 0 (clipping can hold every allowed pixel at 0): a censored value."""
    from lib import stats

    rows = []
    for i in range(30):
        rows.append({"dataset": "d", "split": "test", "image_id": i, "condition": "on", "subspace": "coordinate",
                     "success": i >= 3, "norm": 0.0 if i < 3 else 2.0 + 0.01 * i})
        rows.append({"dataset": "d", "split": "test", "image_id": i, "condition": "off", "subspace": "coordinate",
                     "success": True, "norm": 1.0 + 0.01 * i})
    recs = pd.DataFrame(rows)
    top = stats.paired_log_ratio(recs, ("on", "coordinate"), ("off", "coordinate"), "rank_top")
    assert np.isfinite(top.values).all() and (top.values[:3] > top.values[3:].max()).all()
    drop = stats.paired_log_ratio(recs, ("on", "coordinate"), ("off", "coordinate"), "drop")
    assert len(drop.values) == 27 and np.isfinite(drop.values).all()
    recs.loc[recs["success"] & (recs["condition"] == "off"), "norm"] = 0.0
    with pytest.raises(ValueError, match="successful attacks must be > 0"):
        stats.paired_log_ratio(recs, ("on", "coordinate"), ("off", "coordinate"))


# ---------------------------------------------------------------- notebook 05: claims, splits, verdicts

CONTROLS = ("coordinate", "random", "pca")


def full_records(n=300, tangent=6.0, control=3.0, share=0.3, cos_gain=0.1, seed=10, train_ratio=1.0, sd=0.3):
    """Both splits, the tangent space and three controls, with gradient shares and class cosines.
    DMM holds with the defaults (tangent gap 2x the controls', share 0.3 k/n, on-manifold cosines +0.1);
    with tangent=control, share=1, cos_gain=0 the manifold is just a subspace of dimension k."""
    rng = np.random.default_rng(seed)
    frames = []
    for split, s, r in (("test", seed, 1.0), ("train", seed + 1, train_ratio)):
        recs = make_records(n=n, ratios={"tangent": tangent * r, **{c: control for c in CONTROLS}}, sd=sd, seed=s)
        frames.append(recs.assign(split=split))
    recs = pd.concat(frames, ignore_index=True)
    sub = recs["subspace"]
    factor = np.where(sub == "tangent", share, 1.0)
    recs["grad_share"] = np.where(sub == "none", np.nan, K / N * factor * np.exp(rng.normal(0, 0.3, len(recs))))
    on_t = (recs["condition"] == "on") & (sub == "tangent")
    recs["class_cosine"] = 0.15 + cos_gain * on_t + rng.normal(0, 0.05, len(recs))
    return recs


def test_same_k_records_keeps_the_tangent_k_once():
    recs = full_records(n=20)
    r03 = recs[recs["subspace"].isin(["none", "tangent"])]
    sweep = recs[recs["subspace"].isin(["random", "tangent"])].assign(k=8)  # 04's k sweep and a second autoencoder
    r04 = pd.concat([recs, sweep], ignore_index=True)
    out, notes = st.same_k_records([r03, r04])
    assert notes == [] and len(out) == len(recs)
    assert set(out.loc[out["subspace"] != "none", "k"]) == {K}
    assert not out.duplicated(st.RECORD_KEYS).any()
    # a disagreeing duplicate is noted, and the first notebook's row is kept
    changed = r04.copy()
    changed.loc[changed["subspace"] == "tangent", "norm"] *= 2
    out2, notes2 = st.same_k_records([r03, changed], splits=["test"])
    assert len(notes2) == 1 and "different outcomes" in notes2[0]
    a = out2[out2["subspace"] == "tangent"].set_index(st.RECORD_KEYS)["norm"]
    b = r03[(r03["subspace"] == "tangent") & (r03["split"] == "test")].set_index(st.RECORD_KEYS)["norm"]
    pd.testing.assert_series_equal(a.sort_index(), b.sort_index())
    assert set(out2["split"]) == {"test"}
    empty, notes3 = st.same_k_records([])
    assert empty.empty and notes3 == ["no records"]


def test_split_difference_detects_a_shift_and_agrees_with_scipy():
    recs = full_records(n=300, tangent=6.0, train_ratio=2.0)  # train's on/off ratio twice test's
    r = st.split_difference(recs, st.ON_T, st.OFF_T, ("train", "test"), "drop")
    assert r.n == (300, 300) and r.p < 1e-6
    assert r.ratio_ci[0] < 2.0 < r.ratio_ci[1]
    x = {s: st.paired_log_ratio(recs[recs["split"] == s], st.ON_T, st.OFF_T).values for s in ("train", "test")}
    from scipy.stats import mannwhitneyu
    assert r.p == pytest.approx(mannwhitneyu(x["train"], x["test"]).pvalue)
    same = st.split_difference(full_records(n=300), st.ON_T, st.OFF_T)
    assert same.p > 0.01 and same.ratio_ci[0] < 1 < same.ratio_ci[1]
    assert 1 / 1.1 < same.ratio_ci[0] and same.ratio_ci[1] < 1.1  # tight enough for a precise null
    assert 0 < same.power <= 1 and same.n_needed > 2
    with pytest.raises(ValueError, match="split"):
        st.split_difference(recs[recs["split"] == "test"], st.ON_T, st.OFF_T)


def test_split_difference_ranks_failures_at_the_top():
    recs = full_records(n=100)
    fail = (recs["split"] == "train") & (recs["condition"] == "on") & (recs["subspace"] == "tangent") \
        & (recs["image_id"] < 30)
    recs.loc[fail, "success"] = False
    top = st.split_difference(recs, failure_policy="rank_top")
    drop = st.split_difference(recs, failure_policy="drop")
    assert top.n == (100, 100) and drop.n == (70, 100) and top.n_fail == {"train": 30, "test": 0}
    assert top.ratio > drop.ratio and top.p < drop.p


def test_moses_interval_covers_the_shift():
    rng = np.random.default_rng(11)
    hits = 0
    for _ in range(300):
        x, y = rng.normal(0.5, 1, 25), rng.normal(0, 1, 30)
        _, lo, hi = st._moses_ci(x, y)
        hits += lo < 0.5 < hi
    assert 0.91 <= hits / 300 <= 0.99


def test_paired_difference_of_cosines():
    recs = full_records(n=50)
    recs.loc[(recs["condition"] == "on") & (recs["subspace"] == "tangent") & (recs["image_id"] < 5), "class_cosine"] = np.nan
    d = st.paired_difference(recs[recs["split"] == "test"], st.ON_T, st.OFF_T)
    assert len(d.values) == 45 and d.n_fail == {"on/tangent": 5, "off/tangent": 0}
    p = d.pairs[d.pairs["kept"]]
    np.testing.assert_allclose(d.values, p["a"] - p["b"])
    assert st.paired_tests(d, "greater").p_wilcoxon < 1e-6


@pytest.mark.filterwarnings("ignore::statsmodels.tools.sm_exceptions.ConvergenceWarning")
def test_n_for_power_matches_the_root_finder():
    tp = TTestPower()
    n = st.n_for_power(lambda n: tp.power(0.4, n, 0.05))
    assert n == np.ceil(tp.solve_power(0.4, None, 0.05, 0.8))
    assert st.n_for_power(lambda n: 0.1, n_max=1000) == np.inf
    # a large effect: power_paired's root finder gives up, n_needed_paired does not
    x = np.random.default_rng(12).normal(2.0, 0.3, 30)
    assert st.n_needed_paired(x, "greater") == 5 and st.n_needed_paired(x, "less") == np.inf


def test_power_tost_paired_against_simulation():
    mean, sd, n, margin = 0.03, 0.12, 40, np.log(1.1)
    rng = np.random.default_rng(13)
    sims = [st.tost_paired(rng.normal(mean, sd, n), margin).equivalent for _ in range(400)]
    x = rng.normal(0, 1, n)
    x = (x - x.mean()) / x.std(ddof=1) * sd + mean  # exactly the mean and sd simulated
    pw = st.power_tost_paired(x, margin)
    assert abs(pw.power - np.mean(sims)) < 0.07
    assert pw.n_needed > 3 and st.power_tost_paired(x + 1.0, margin).n_needed == np.inf


def test_arm_contrast_recovers_the_gap():
    recs = make_records(n=150, ratios={"tangent": 6.0, "random": 3.0}, seed=14)
    m = st.mixed_model(recs, st.pooled_formula(recs))
    assert m.formula == "log_norm ~ arm"
    gap = st.arm_contrast(m, ["on_tangent", "off_random"], ["off_tangent", "on_random"])
    assert gap["ci_low"] < 2.0 < gap["ci_high"] and gap["p"] < 1e-6
    one = st.arm_contrast(m, ["on_tangent"])
    row = m.table.set_index("term").loc["arm[T.on_tangent]"]
    assert one["log_estimate"] == pytest.approx(row["coef"]) and one["se"] == pytest.approx(row["se"])
    assert st.arm_contrast(m, ["unconstrained"])["log_estimate"] == 0
    with pytest.raises(ValueError, match="not in the model"):
        st.arm_contrast(m, ["on_pca"])
    two = make_records(n=30, ratios={"tangent": 3.0}, datasets=("mnist", "cifar10"))
    with pytest.raises(ValueError, match="interactions"):
        st.arm_contrast(st.mixed_model(two), ["on_tangent"])


def _verdict_of(table, cid, split="test", short=None):
    t = table[(table["claim_id"] == cid) & (table["split"] == split)]
    return list(t[t["short"].str.contains(short)]["verdict"] if short else t["verdict"])


def test_evaluate_claims_when_dmm_holds():
    out = st.evaluate_claims(full_records(), n_boot=300)
    main = out["rank_top"]
    for col in ("claim", "dataset", "split", "statistic", "effect_text", "p_holm", "n", "power", "verdict",
                "n_needed", "verdict_drop", "agree"):
        assert col in main
    assert len(main) == 2 * 8 + 1 and out["skipped"] == [] and main["agree"].all()
    np.testing.assert_allclose(main["p_holm"], st.holm(main["p_raw"]))  # one Holm family over every row
    for split in ("test", "train"):
        assert _verdict_of(main, "1", split) == ["supported"]
        assert _verdict_of(main, "2", split) == ["supported"]
        assert _verdict_of(main, "3", split) == ["supported"] * 3
        assert _verdict_of(main, "4", split) == ["supported"]
        assert _verdict_of(main, "5a", split) == _verdict_of(main, "5b", split) == ["supported"]
    assert _verdict_of(main, "6", "train vs test") == ["supported"]
    gap = main[main["short"] == "3 gap: tangent > random"].iloc[0]
    assert gap["ci_low"] < 2.0 < gap["ci_high"] and "random orthonormal" in gap["claim"]
    cos = main[main["claim_id"] == "5a"].iloc[0]
    assert cos["ci_low"] < 0.1 < cos["ci_high"] and cos["effect_text"].startswith("Δ +0.")


def test_evaluate_claims_when_dimension_explains_it():
    out = st.evaluate_claims(full_records(tangent=3.0, share=1.0, cos_gain=0.0, seed=20, sd=0.15), n_boot=300)
    main = out["rank_top"]
    assert _verdict_of(main, "1") == ["supported"]  # a random subspace lengthens attacks too
    assert _verdict_of(main, "3") == ["explained by dimension alone"] * 3
    assert _verdict_of(main, "4") == ["not supported"]
    assert _verdict_of(main, "5a") == ["not supported"]
    # the gradient share significantly ABOVE k/n: a one-sided "less" p cannot see it, the interval can
    wrong = st.evaluate_claims(full_records(share=2.0, seed=21), n_boot=300)["rank_top"]
    assert _verdict_of(wrong, "4") == ["not supported"]
    assert wrong.loc[wrong["claim_id"] == "4", "p_raw"].iloc[0] > 0.5


def test_evaluate_claims_with_failures_and_missing_controls():
    recs = full_records(seed=30)
    on_t = (recs["condition"] == "on") & (recs["subspace"] == "tangent")
    worst = on_t & (recs["norm"] > recs.loc[on_t, "norm"].quantile(0.8))
    recs.loc[worst, "success"] = False
    recs.loc[worst, "class_cosine"] = np.nan
    out = st.evaluate_claims(recs[recs["subspace"] != "pca"], n_boot=300)
    assert len(out["skipped"]) == 2 and all("pca" in s for s in out["skipped"])
    main, drop = out["rank_top"], out["drop"]
    one = main[(main["claim_id"] == "1") & (main["split"] == "test")].iloc[0]
    one_drop = drop[(drop["claim_id"] == "1") & (drop["split"] == "test")].iloc[0]
    assert one["n"] == 300 and one_drop["n"] < 300 and "on/tangent" in one["failures"]
    assert one["effect"] > one_drop["effect"]  # failures ranked at the top push the ratio up
    assert set(out["agreement"].columns) >= {"verdict (rank_top)", "verdict (drop)", "agree"}
    assert len(out["agreement"]) == len(main) == len(drop)


def test_evaluate_claims_without_records():
    out = st.evaluate_claims(st.same_k_records([])[0])
    assert out["rank_top"].empty and out["agreement"].empty and out["skipped"] == []


def test_effect_is_flagged_as_a_bound_when_most_attacks_failed():
    recs = full_records(n=100, seed=40)
    hard = (recs["condition"] == "on") & (recs["subspace"] == "coordinate") & (recs["image_id"] < 60)
    recs.loc[hard, "success"] = False
    recs.loc[hard, "norm"] = 0.0  # a failed attack may record no norm at all
    out = st.evaluate_claims(recs, n_boot=200)
    for policy, expected in (("rank_top", True), ("drop", False)):
        t = out[policy].set_index(["short", "split"])
        assert t.loc[("3 gap: tangent > coordinate", "test"), "effect_bound"] == expected
        assert ("a bound" in t.loc[("3 gap: tangent > coordinate", "test"), "effect_text"]) == expected
        assert not t.loc[("3 gap: tangent > random", "test"), "effect_bound"]
    # failures of the control's on-attack make its gap at least as large: against the tangent space
    assert out["rank_top"].set_index(["short", "split"]).loc[("3 gap: tangent > coordinate", "test"), "effect"] < 1
