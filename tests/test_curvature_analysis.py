"""lib.studies.curvature.curvature_analysis: the statistics and constructions of notebook 06, each checked against an
independent answer."""

import numpy as np
import pytest
import torch
from torch import nn

from lib.boundary import curvature as cv
from lib.studies.curvature import curvature_analysis
from lib.inference import stats, verdicts
import pandas as pd


class _FixedOperator:
    """A stand-in for ShapeOperator: G is a fixed symmetric matrix per image (B, n, n)."""

    def __init__(self, G):
        self.G = G
        self.B = len(G)

    def restricted(self, Q):
        Q = Q.expand(self.B, *Q.shape[-2:]) if Q.dim() == 2 else Q
        return Q.transpose(1, 2) @ self.G @ Q


def test_tangent_vs_random_test_holds_its_level_when_both_arms_are_random():
    """The claim test compares a subspace with a random one of the same k through a one-sided Wilcoxon test on
    per-image log ratios. When the 'tangent' arm is itself a random subspace the arms are exchangeable and the
    test must reject at about alpha (here: at most 2 alpha over 200 simulated studies of 30 images)."""
    g = torch.Generator().manual_seed(0)
    n, k, B, rejections, studies = 40, 4, 30, 0, 200
    for _ in range(studies):
        A = torch.randn(B, n, n, generator=g, dtype=torch.float64)
        op = _FixedOperator((A + A.transpose(1, 2)) / 2 * torch.rand(B, 1, 1, generator=g, dtype=torch.float64))
        a = cv.subspace_curvature(op, cv.random_bases(B, n, k, g, torch.float64))["rms"]
        b = cv.subspace_curvature(op, cv.random_bases(B, n, k, g, torch.float64))["rms"]
        row = curvature_analysis.paired_log_ratio_row("06a", "d", "s", a.numpy(), b.numpy(), "less")
        rejections += row.p < 0.05
    assert rejections / studies <= 0.10


def test_tangent_vs_random_test_finds_a_flatter_subspace():
    """Power: a subspace inside G's null space (flat) against a random one: every image says 'flatter', supported."""
    g = torch.Generator().manual_seed(1)
    n, k, B = 30, 3, 20
    D = torch.diag(torch.cat([torch.zeros(k), torch.ones(n - k)])).double()
    op = _FixedOperator(D.expand(B, n, n) + 0)
    flat = torch.eye(n, dtype=torch.float64)[:, :k] + 1e-3 * torch.randn(n, k, generator=g, dtype=torch.float64)
    flat = torch.linalg.qr(flat).Q
    a = cv.subspace_curvature(op, flat)["rms"].numpy()
    b = cv.subspace_curvature(op, cv.random_bases(B, n, k, g, torch.float64))["rms"].numpy()
    table = verdicts.judge(
        [curvature_analysis.paired_log_ratio_row("06a", "d", "s", a, b, "less")], curvature_analysis.FAMILY
    )
    assert table["verdict"].iloc[0] == "supported" and table["p_margin_holm"].iloc[0] < 1e-4


def test_verdict_tables_holm_correct_within_each_family():
    """Both claims per data set in one family; the ReLU check in its own; a random-subspace-like tangent space
    (both arms exchangeable) is not "supported"."""
    rng = np.random.default_rng(0)
    rows = []
    for method in ("softplus twin", "finite differences"):
        for ds in ("a", "b"):
            rows.append(pd.DataFrame({"dataset": ds, "split": "test", "method": method,
                                      "tangent_rms": rng.lognormal(0, 0.3, 40), "random_rms": rng.lognormal(0, 0.3, 40),
                                      "tangent_normal_share": rng.lognormal(-1, 0.3, 40),
                                      "random_normal_share": rng.lognormal(0, 0.3, 40)}))
    main, check = curvature_analysis.verdict_tables(pd.concat(rows))
    assert len(main) == len(check) == 4 and (main["family"] == curvature_analysis.FAMILY).all()
    assert (check["family"] == curvature_analysis.FAMILY_CHECKS).all()
    np.testing.assert_allclose(main["p_margin_holm"], stats.holm(main["p_margin"]))
    assert set(main.loc[main["claim_id"] == "06b", "verdict"]) == {"supported"}  # share 1/e of random's
    assert "supported" not in set(main.loc[main["claim_id"] == "06a", "verdict"])


def test_auc_matches_sklearn_and_the_interval_covers_it():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    neg, pos = rng.normal(0, 1, 50), rng.normal(0.8, 1, 40)
    pos[:5] = neg[:5]  # ties count one half
    a = curvature_analysis.auc(neg, pos)
    assert a == pytest.approx(roc_auc_score(np.r_[np.zeros(50), np.ones(40)], np.r_[neg, pos]))
    est, lo, hi = curvature_analysis.auc_ci(neg, pos, n_boot=500)
    assert lo < est < hi and est == a
    fpr, tpr = curvature_analysis.roc_curve(neg, pos)
    assert np.trapezoid(tpr, fpr) == pytest.approx(a)


def test_shared_subspace_recovers_directions_every_point_shares():
    """If every point's most curved directions are the same two axes, S is their span."""
    n, B = 12, 5
    g = torch.Generator().manual_seed(2)
    kappa, dirs = [], []
    for _ in range(B):
        rest = torch.linalg.qr(torch.randn(n - 2, n - 2, generator=g)).Q
        U = torch.block_diag(torch.eye(2), rest)  # axes 0, 1 first, the rest rotated at random
        kappa.append(torch.cat([torch.tensor([5.0, -4.0]), 0.1 * torch.rand(n - 2, generator=g)]))
        dirs.append(U)
    S = curvature_analysis.shared_subspace(torch.stack(kappa), torch.stack(dirs), per_point=2, dim=2)
    P = S @ S.T
    torch.testing.assert_close(P[:2, :2], torch.eye(2), atol=1e-5, rtol=0)
    assert P[2:, 2:].abs().max() < 1e-5
    v = torch.zeros(3, n)
    v[0, 0], v[1, 5], v[2, :2] = 1, 1, 1
    np.testing.assert_allclose(curvature_analysis.share_in(S, v), [1, 0, 1], atol=1e-5)


def test_noise_in_the_normal_direction_flips_a_linear_classifier_and_orthogonal_noise_never_does():
    n = 10
    lin = nn.Sequential(nn.Flatten(), nn.Linear(n, 2)).eval()
    with torch.no_grad():
        lin[1].weight.zero_()
        lin[1].bias.zero_()
        lin[1].weight[1, 0] = 1.0  # class 1 iff x_0 > 0
    x = torch.full((8, 1, 1, n), 0.0)
    x[..., 0] = -0.5
    S = torch.eye(n)[:, :1]
    t = curvature_analysis.noise_misclassification(lin, x, S, [0.1, 1.0], draws=20)
    rate = {(r.norm, r.subspace): r.rate for r in t.itertuples()}
    assert rate[0.1, "S"] == 0 and rate[0.1, "S-perp"] == 0 and rate[1.0, "S-perp"] == 0
    assert 0.3 < rate[1.0, "S"] < 0.7  # a random sign along e_0: half the draws cross


def test_detection_scores_match_the_trace_of_the_shape_operator():
    """With many random unit vectors, (1/T) sum v^T G v -> tr(G) / n (Hutchinson); G of a ball is I/r on n-1 dims."""
    n, r = 8, 2.0

    class Ball(nn.Module):
        def forward(self, x):  # three classes: 0 inside the ball, 1 and 2 constant outside levels
            q = (x.flatten(1) ** 2).sum(1)
            return torch.stack([r**2 - q, torch.zeros_like(q), torch.full_like(q, -5.0)], 1)

    x = torch.zeros(2, 1, 1, n, dtype=torch.float64)
    x[:, 0, 0, 0] = 1.0
    rho, s, k = curvature_analysis.detection_scores(Ball().double(), x, T=4000, seed=0)
    assert (k == 0).all() and np.isinf(s[:, 0]).all()
    # F_1 = f_1 - f_0 = ||x||^2 - r^2: ||grad|| = 2 ||x|| = 2, H = 2I: G = P / ||x|| -> tr/n = (n-1)/n / 1
    np.testing.assert_allclose(s[:, 1], (n - 1) / n, rtol=0.05)
    np.testing.assert_allclose(s[:, 2], (n - 1) / n, rtol=0.05)
    np.testing.assert_allclose(rho, 2 * (n - 1) / n / 3, rtol=0.05)
