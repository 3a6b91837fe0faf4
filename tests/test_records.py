"""lib.experiments.records: arms, pairing, censoring as intervals, and the summaries the notebooks show."""
import numpy as np
import pandas as pd
import pytest

from lib.experiments import records as rec

K, N = 16, 784


def make_records(n=40, ratios=None, seed=0, datasets=("mnist",), splits=("test",)):
    """unconstrained ~ lognormal; off = unconstrained * noise; on = off * ratio[subspace] * noise; all succeed."""
    ratios = {"tangent": 3.0} if ratios is None else ratios
    rng = np.random.default_rng(seed)
    rows = []
    for ds in datasets:
        for split in splits:
            base = np.exp(rng.normal(np.log(0.5), 0.3, n))
            common = dict(image_id=np.arange(n), dataset=ds, split=split)
            rows.append(pd.DataFrame(dict(common, condition="unconstrained", subspace="none", norm=base, k=N)))
            for sub, r in ratios.items():
                off = base * np.exp(rng.normal(0, 0.2, n))
                rows.append(pd.DataFrame(dict(common, condition="off", subspace=sub, norm=off, k=K)))
                rows.append(
                    pd.DataFrame(
                        dict(common, condition="on", subspace=sub, norm=off * r * np.exp(rng.normal(0, 0.2, n)), k=K)
                    )
                )
    df = pd.concat(rows, ignore_index=True)
    return df.assign(success=True, n=N, grad_share=K / N, subspace_share=1.0, class_cosine=0.1)


def test_log_ratio_is_an_interval_where_attacks_failed():
    r = make_records(n=4)
    on, off = (r["condition"] == "on"), (r["condition"] == "off")
    r.loc[on & r["image_id"].isin([1, 3]), "success"] = False
    r.loc[off & (r["subspace"] == "tangent") & r["image_id"].isin([2, 3]), "success"] = False
    e = rec.log_ratio(r, rec.ON_T, rec.OFF_T)
    norm = lambda c: r[(r["condition"] == c) & (r["subspace"] == "tangent")].set_index("image_id")["norm"]
    x = np.log(norm("on") / norm("off")).to_numpy()
    np.testing.assert_allclose(e.low.to_numpy(), [x[0], x[1], -np.inf, -np.inf])
    np.testing.assert_allclose(e.high.to_numpy(), [x[0], np.inf, x[2], np.inf])
    assert (
        e.failures == {"on/tangent": 2, "off/tangent": 2}
        and e.n_censored == 3
        and e.undecided(0.0) == 1 + (x[1] <= 0) + (x[2] >= 0)
    )
    np.testing.assert_allclose(e.complete, [x[0]])


def test_failures_with_zero_norm_are_bounds_not_errors():
    """A failed attack may end at norm 0 (clipping can hold every allowed pixel at 0): a (useless) lower bound."""
    r = make_records(n=5, ratios={"coordinate": 3.0})
    on = (r["condition"] == "on") & (r["image_id"] == 0)
    r.loc[on, ["success", "norm"]] = [False, 0.0]
    e = rec.log_ratio(r, ("on", "coordinate"), ("off", "coordinate"))
    assert e.low.iloc[0] == -np.inf and e.high.iloc[0] == np.inf and len(e.complete) == 4
    r.loc[(r["condition"] == "off") & (r["image_id"] == 1), "norm"] = 0.0
    with pytest.raises(ValueError, match="successful attacks must be > 0"):
        rec.log_ratio(r, ("on", "coordinate"), ("off", "coordinate"))


def test_arms_are_validated_and_missing_ones_are_a_lookup_error():
    r = make_records(n=5)
    with pytest.raises(ValueError, match="'unconstrained', 'on', 'off'"):
        rec.arm(r, ("sideways", "tangent"))
    with pytest.raises(ValueError, match="'tangent'"):
        rec.arm(r, ("on", "manifold"))
    with pytest.raises(ValueError, match="'none'"):
        rec.arm(r, ("on", "none"))
    with pytest.raises(LookupError, match="no records"):
        rec.arm(r, ("on", "pca"))
    with pytest.raises(ValueError, match="more than one row"):
        rec.arm(pd.concat([r, r]), rec.ON_T)


def test_clip_settings_are_never_paired_with_each_other():
    r = make_records(n=10)
    both = pd.concat([r.assign(clip=True), r.assign(clip=False, norm=r["norm"] * 2)], ignore_index=True)
    e = rec.log_ratio(both, rec.ON_T, rec.OFF_T)
    assert e.n == 20 and set(e.low.index.get_level_values("clip")) == {True, False}
    assert rec.with_clip(r)["clip"].all()  # records from before the column existed were clipped


def test_same_k_records_keeps_the_tangent_k_once():
    recs = make_records(n=20, ratios={"tangent": 3.0, "random": 2.0}, splits=("test", "train"))
    r03 = recs[recs["subspace"].isin(["none", "tangent"])]
    sweep = recs[recs["subspace"].isin(["random", "tangent"])].assign(k=8)  # a k sweep and a second autoencoder
    r04 = pd.concat([recs, sweep], ignore_index=True)
    out, notes = rec.same_k_records([r03, r04], {"mnist": K})
    assert notes == [] and len(out) == len(recs)
    assert set(out.loc[out["subspace"] != "none", "k"]) == {K}
    assert not out.duplicated(rec.RECORD_KEYS).any()
    changed = r04.copy()
    changed.loc[changed["subspace"] == "tangent", "norm"] *= 2
    out2, notes2 = rec.same_k_records([r03, changed], splits=["test"])
    assert len(notes2) == 1 and "different outcomes" in notes2[0]
    a = out2[out2["subspace"] == "tangent"].set_index(rec.RECORD_KEYS)["norm"]
    b = rec.with_clip(r03)[(r03["subspace"] == "tangent") & (r03["split"] == "test")].set_index(rec.RECORD_KEYS)["norm"]
    pd.testing.assert_series_equal(a.sort_index(), b.sort_index())
    empty, notes3 = rec.same_k_records([])
    assert empty.empty and notes3 == ["no records"]


def test_summaries_count_failures_as_infinite_norms():
    r = make_records(n=9)
    on = (r["condition"] == "on") & (r["subspace"] == "tangent")
    r.loc[on & (r["image_id"] < 5), "success"] = False  # over half failed: the median is infinite
    fc = rec.failure_counts(r).set_index(["condition", "subspace"])
    assert fc.loc[("on", "tangent"), "n_fail"] == 5 and fc.loc[("off", "tangent"), "success_rate"] == 1
    med = rec.median_norm(r).set_index(["condition", "subspace"])
    assert med.loc[("on", "tangent"), "median norm"] == np.inf
    s = rec.ratio_summary(r, rec.ON_T, rec.OFF_T)
    assert s["median ratio"] == np.inf and s["censored"] == 5 and s["N pairs"] == 9


def test_on_off_summary_recovers_the_ratio_and_the_flat_boundary():
    r = make_records(n=200, ratios={"tangent": 3.0, "random": 6.0})
    s = rec.on_off_summary(r, "test").set_index("subspace")
    assert list(s.index) == ["tangent", "random"]
    for sub, ratio in (("tangent", 3.0), ("random", 6.0)):
        assert s.loc[sub, "median ratio"] == pytest.approx(ratio, rel=0.1)
        assert s.loc[sub, "CI low"] < s.loc[sub, "median ratio"] < s.loc[sub, "CI high"]
    assert s["flat boundary"].iloc[0] == pytest.approx(7.0, abs=0.2)


def test_mixed_model_is_descriptive_and_recovers_an_effect():
    r = make_records(n=60, ratios={"tangent": 3.0}, datasets=("mnist", "cifar10"))
    formula, fixed, fit = rec.mixed_model(r)
    assert formula == "log_norm ~ arm + dataset"
    row = fixed.set_index("term").loc["arm[T.on_tangent]"]
    assert row["ci_low"] < np.log(3.0) < row["ci_high"]
    assert int(fit.nobs) == 360
