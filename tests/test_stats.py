"""lib.inference.stats against independent references: worked examples by hand, exact distributions, simulations."""
import numpy as np
import pytest
from scipy import stats as sps

from lib.inference import power
from lib.inference import stats as st

K, N = 16, 784


def test_holm_worked_example():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    p = [0.01, 0.04, 0.03, 0.005, np.nan]
    np.testing.assert_allclose(st.holm(p)[:4], [0.03, 0.06, 0.06, 0.02])
    assert np.isnan(st.holm(p)[4])
    assert st.holm([0.6, 0.9])[1] == 1.0  # capped at 1


def test_sign_test_worked_example_and_intervals():
    x = np.r_[np.arange(1, 10), -1.0]  # 9 above, 1 below
    assert st.sign_test(x, "greater") == (9, 1, 0, pytest.approx(11 / 1024))
    # intervals: one containing 0 is undecided and counts against the claim (as if below)
    low, high = np.r_[np.arange(1, 10), -1.0, -np.inf], np.r_[np.arange(1, 10), -1.0, np.inf]
    up, down, undecided, p = st.sign_test(low, "greater", high)
    assert (up, down, undecided) == (9, 1, 1) and p == pytest.approx(sps.binom.sf(8, 11, 0.5))
    # a censored value whose bound excludes 0 is decided
    assert st.sign_test([1.0, 2.0, 3.0], "greater", [1.0, np.inf, 3.0])[:3] == (3, 0, 0)
    with pytest.raises(ValueError, match="low <= high"):
        st.sign_test([1.0], "greater", [0.0])


def test_sign_test_on_censored_data_keeps_alpha():
    """Null: median 0; a random third of the values is only bounded (right-censored at a random point)."""
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(400):
        x = rng.standard_t(3, 60)
        cut = rng.normal(0.5, 1, 60)
        cens = (rng.random(60) < 0.33) & (x > cut)
        low, high = np.where(cens, cut, x), np.where(cens, np.inf, x)
        hits += st.sign_test(low, "greater", high)[3] < 0.05
    assert hits / 400 <= 0.05 + 2.33 * np.sqrt(0.05 * 0.95 / 400)


def test_median_ci_order_statistics_and_coverage():
    # n = 10, 95%: P(Binom(10, 1/2) <= 1) = 11/1024 <= 0.025 < P(<= 2): the interval is [x_(2), x_(9)]
    x = np.arange(10.0)
    assert st.median_ci(x) == (4.5, 1.0, 8.0)
    assert np.isnan(st.median_ci(np.arange(5.0))[1])  # 5 values cannot give 95%
    rng = np.random.default_rng(1)
    true_median = np.log(2)  # of Exp(1)
    covered = covered_censored = 0
    for _ in range(500):
        x = rng.exponential(1.0, 40)
        _, lo, hi = st.median_ci(x)
        covered += lo <= true_median <= hi
        cut = rng.exponential(2.0, 40)   # censoring: only "x > cut" is known where x > cut
        low, high = np.where(x > cut, cut, x), np.where(x > cut, np.inf, x)
        _, lo, hi = st.median_ci(low, 0.95, high)
        covered_censored += lo <= true_median <= hi
    assert covered / 500 >= 0.93 and covered_censored / 500 >= 0.93


def test_tost_at_the_margin_and_inside():
    rng = np.random.default_rng(2)
    m = np.log(1.1)
    rate = np.mean([st.tost(rng.normal(m, 0.2, 50), m).p < 0.05 for _ in range(400)])
    assert rate <= 0.05 + 2.33 * np.sqrt(0.05 * 0.95 / 400)
    t = st.tost(rng.normal(0.0, 0.05, 100), m)
    assert t.p < 1e-6 and -m < t.ci90[0] < t.ci90[1] < m
    with pytest.raises(ValueError, match="margin"):
        st.tost([1.0, 2.0, 3.0], 0.0)


def test_mcnemar_and_fisher_by_hand():
    fa, fb = np.r_[np.ones(10, bool), np.zeros(90, bool)], np.zeros(100, bool)
    assert st.mcnemar_exact(fa, fb) == (10, 0, pytest.approx(2 * 0.5 ** 10))  # 10 discordant pairs, all one way
    assert st.mcnemar_exact(fb, fb)[2] == 1.0
    # Fisher: 3/3 vs 0/3, two-sided = 2 * (1 / C(6, 3)) = 0.1
    assert st.fisher_exact(3, 3, 0, 3) == pytest.approx(0.1)


def test_mann_whitney_and_hodges_lehmann_by_hand():
    u, p = st.mann_whitney([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert u == 0 and p == pytest.approx(2 / 20)  # exact: 1 of C(6, 3) = 20 orderings at each extreme
    rng = np.random.default_rng(3)
    y = rng.normal(0, 1, 60)
    shift, lo, hi = st.hodges_lehmann(y + 2.0, y)
    assert shift == pytest.approx(2.0) and lo <= 2.0 <= hi


def test_tost_power_against_simulation():
    """TOST power: normal approximation against simulated TOSTs at the same mean and sd."""
    rng = np.random.default_rng(4)
    m, s = 0.02, 0.15
    pt = power.power_tost(rng.normal(m, s, 40), np.log(1.1))
    sims = np.mean([st.tost(rng.normal(pt.d * s, s, 40), np.log(1.1)).p < 0.05 for _ in range(1000)])
    assert pt.power == pytest.approx(sims, abs=0.06)
    assert np.isnan(power.power_tost(rng.normal(0.2, 0.05, 40), np.log(1.1)).power)  # mean outside the margin


def test_n_for_power_worked_example():
    assert power.n_for_power(lambda n: 1 - 1 / n, 0.8) == 5.0  # 1 - 1/5 = 0.8 is the first to reach 0.8
    assert power.n_for_power(lambda n: 0.9, 0.8) == 2.0
    assert power.n_for_power(lambda n: 0.0, 0.8, n_max=64) == np.inf


def test_random_share_distribution():
    """Beta(k/2, (n-k)/2): mean k/n, median below it; the flat-boundary median on/off ratio by simulation."""
    rng = np.random.default_rng(5)
    g = rng.normal(size=(20000, N))
    share = np.sum(g[:, :K] ** 2, 1) / np.sum(g ** 2, 1)  # a fixed k-subspace and random directions: the same law
    assert share.mean() == pytest.approx(K / N, rel=0.02)
    assert np.median(share) == pytest.approx(st.random_share_median(K, N), rel=0.02) and np.median(share) < K / N
    assert np.median(np.sqrt((1 - share) / share)) == pytest.approx(st.flat_boundary_median(K, N), rel=0.01)
    assert st.flat_boundary_median(K, N) > np.sqrt((N - K) / K)
    with pytest.raises(ValueError, match="k < n"):
        st.random_share_median(N, N)


def test_wilson_interval_worked_example():
    """8 of 10: center (0.8 + 1.96^2/20) / (1 + 1.96^2/10) = 0.7167, half 1.4160 * sqrt(0.016 + 0.0096) = 0.2266."""
    lo, hi = st.wilson_ci(8, 10)
    assert (lo, hi) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))
    from statsmodels.stats.proportion import proportion_confint
    assert (lo, hi) == pytest.approx(proportion_confint(8, 10, method="wilson"))
    assert st.wilson_ci(0, 20)[0] == 0.0 and st.wilson_ci(20, 20)[1] == 1.0


def test_paired_difference_interval():
    """10 pairs, 3 right only in a, 1 right only in b: difference 0.2; Agresti-Min: cells +1/2, m = 12,
    d = 2/12, se = sqrt((3.5 + 1.5 - 4/12) / 144) = 0.1800, interval d -+ 1.96 se."""
    a = np.array([1, 1, 1, 0, 1, 1, 0, 0, 1, 1], bool)
    b = np.array([0, 0, 0, 1, 1, 1, 0, 0, 1, 1], bool)
    diff, lo, hi = st.paired_difference_ci(a, b)
    se = np.sqrt((3.5 + 1.5 - 4 / 12) / 144)
    assert diff == pytest.approx(0.2)
    assert (lo, hi) == (pytest.approx(2 / 12 - 1.959964 * se), pytest.approx(2 / 12 + 1.959964 * se))


# ---------------------------------------------------------------- the tests and powers the verdicts apply

def test_tango_score_test_is_mcnemar_at_zero_and_holds_its_level_at_the_margin():
    rng = np.random.default_rng(0)
    a, b = rng.random(200) < 0.7, rng.random(200) < 0.6
    z, _ = st.paired_proportion_score_test(a, b, 0.0)
    n10, n01 = (a & ~b).sum(), (~a & b).sum()
    assert z == pytest.approx((n10 - n01) / np.sqrt(n10 + n01))  # McNemar's statistic
    # at the margin (true difference exactly 0.05), the one-sided test rejects at most alpha of the time
    cells = np.array([0.15, 0.10, 0.75])  # a only, b only, both or neither: difference 0.05
    rejections = []
    for _ in range(2000):
        c = rng.choice(3, size=300, p=cells)
        ok_a, ok_b = (c == 0) | (c == 2), (c == 1) | (c == 2)
        rejections.append(st.paired_proportion_score_test(ok_a, ok_b, 0.05)[1] < 0.05)
    assert np.mean(rejections) <= 0.05 + 2.33 * np.sqrt(0.05 * 0.95 / 2000)
    # and its power agrees with simulated tests at a difference beyond the margin
    cells = np.array([0.20, 0.05, 0.75])
    c = rng.choice(3, size=150, p=cells)
    pw = power.power_paired_proportions((c == 0) | (c == 2), (c == 1) | (c == 2), 0.05)
    sims = []
    shares = np.array([np.mean(c == 0), np.mean(c == 1), np.mean(c == 2)])
    for _ in range(1000):
        d = rng.choice(3, size=150, p=shares)
        sims.append(st.paired_proportion_score_test((d == 0) | (d == 2), (d == 1) | (d == 2), 0.05)[1] < 0.05)
    assert pw.power == pytest.approx(np.mean(sims), abs=0.05)


def test_power_of_the_sign_test_against_simulation():
    rng = np.random.default_rng(1)
    x = rng.normal(0.3, 1.0, 60)
    pw = power.power_sign(x, null=0.1)
    q = np.mean(x > 0.1)
    sims = np.mean([st.sign_test(np.where(rng.random(60) < q, 1.0, -1.0) + 0.1, "greater", null=0.1)[3] < 0.05
                    for _ in range(2000)])
    assert pw.power == pytest.approx(sims, abs=0.03) and pw.d == pytest.approx(q)
    assert np.isnan(power.power_sign(-x, null=0.1).n_needed)  # wrong side: no N would find it


def test_mann_whitney_equivalence():
    rng = np.random.default_rng(2)
    x, y = rng.normal(0, 1, 400), rng.normal(0, 1, 400)
    assert st.mann_whitney_equivalence(x, y, 0.3) < 0.01      # alike, a wide margin: equivalent
    assert st.mann_whitney_equivalence(x + 0.6, y, 0.3) > 0.5  # shifted beyond the margin: not
    with pytest.raises(ValueError, match="margin"):
        st.mann_whitney_equivalence(x, y, 0)


def test_few_discordant_pairs_take_mcnemars_exact_mid_p_and_hold_alpha():
    """n = 100 pairs, 6% discordant, no difference: the test of no difference is McNemar's exact mid-p and is
    significant at most alpha of the time (Tango's normal score test: about 1.3x alpha here)."""
    rng = np.random.default_rng(2)
    sims = 4000
    cells = rng.multinomial(100, [0.03, 0.03, 0.94], size=sims)
    hits = []
    for n10, n01, n11 in cells:
        a = np.r_[np.ones(n10, bool), np.zeros(n01, bool), np.ones(n11, bool)]
        b = np.r_[np.zeros(n10, bool), np.ones(n01, bool), np.ones(n11, bool)]
        _, p, name = st.paired_proportion_test(a, b)
        hits.append(p < 0.05)
    assert name == "McNemar exact mid-p"
    assert np.mean(hits) <= 0.05 + 2.33 * np.sqrt(0.05 * 0.95 / sims)
    # worked example: 7 of 8 discordant pairs favour a: P(X > 7) + P(X = 7) / 2 for X ~ Binom(8, 1/2)
    a, b = np.r_[np.ones(7, bool), False, np.ones(10, bool)], np.r_[np.zeros(7, bool), True, np.ones(10, bool)]
    assert st.paired_proportion_test(a, b)[1] == pytest.approx((1 + 8 / 2) / 256)
