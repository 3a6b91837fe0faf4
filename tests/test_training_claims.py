"""Notebook 10's machinery against closed forms: targeted PGD on linear models, the on/off variants on a toy manifold
(a line in the plane), the relabelled sets (never a true label), and the claim rows on constructed answers."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from lib.studies.training import mislabeled
from lib.reporting import params
from lib.studies.training import training_claims
from lib.geometry.subspaces import BasisSubspace


class Affine(torch.nn.Module):
    """logits = W x + b on flattened images (float64)."""

    def __init__(self, W, b):
        super().__init__()
        self.W = torch.nn.Parameter(W, requires_grad=False)
        self.b = torch.nn.Parameter(b, requires_grad=False)

    def forward(self, x):
        return x.flatten(1) @ self.W.T + self.b


def two_class(n_pixels=64, seed=0):
    """Class 1 where w.x + c > 0 (logits [0, w.x + c]); images in the box's middle, both sides of the boundary."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n_pixels, generator=g, dtype=torch.float64)
    model = Affine(
        torch.stack([torch.zeros_like(w), w]), torch.tensor([0.0, -0.5 * w.sum().item()], dtype=torch.float64)
    )
    x = 0.4 + 0.2 * torch.rand(8, 1, 1, n_pixels, generator=g, dtype=torch.float64)
    return model, x, w


def test_targeted_pgd_reaches_its_target_at_the_analytic_distance():
    """Two classes: the target's region begins at |w.x + c| / ||w|| along a straight path; stop_at_target with
    bisection finds it to within alpha / 2^refine_steps, whatever alpha."""
    model, x, w = two_class()
    y = model(x).argmax(1)
    t = 1 - y
    margin = model(x)[:, 1]  # w.x + c
    distance = margin.abs() / w.norm()
    for alpha in (0.013, 0.037):
        r = mislabeled.targeted_pgd_l2(model, x, t, eps=50.0, alpha=alpha, steps=2000, clip=False, stop_at_target=True,
                               refine_steps=20)
        assert r.success.all()
        assert torch.allclose(r.norm, distance, atol=alpha * 2 ** -19 + 1e-9)
        assert (r.iterations == torch.ceil(distance / alpha)).all()


def test_targeted_pgd_runs_the_whole_budget_without_stopping():
    """Ilyas et al.'s mode: every step is run, so each perturbation ends on the eps sphere along the straight path;
    it reaches the target exactly where eps exceeds the distance."""
    model, x, w = two_class()
    t = 1 - model(x).argmax(1)
    distance = model(x)[:, 1].abs() / w.norm()
    eps = float(distance.sort().values[3:5].mean())  # between two images' distances: half reach, half do not
    r = mislabeled.targeted_pgd_l2(model, x, t, eps=eps, alpha=eps / 7, steps=20, clip=False)
    assert torch.allclose(r.norm, torch.full_like(r.norm, eps))
    assert torch.equal(r.success, distance < eps)


def line_world():
    """Data on the horizontal line x2 = 0.5 in the plane (the manifold; tangent e1, normal e2) and a linear classifier
    with boundary a x1 + b x2 = c, slanted to both."""
    a, b = 1.0, 3.0
    W = torch.tensor([[0.0, 0.0], [a, b]], dtype=torch.float64)
    model = Affine(W, torch.tensor([0.0, -(a * 0.5 + b * 0.5)], dtype=torch.float64))  # boundary through (0.5, 0.5)
    s = torch.tensor([0.1, 0.2, 0.3, 0.7, 0.8, 0.9], dtype=torch.float64)
    x = torch.stack([s, torch.full_like(s, 0.5)], 1).view(-1, 1, 1, 2)
    tangent = BasisSubspace(torch.tensor([[1.0], [0.0]], dtype=torch.float64), name="tangent")
    return model, x, a, b, tangent


def test_on_and_off_move_along_and_across_the_line_as_the_geometry_dictates():
    """On the line the target is |f| / |a| away (only x1 moves), across it |f| / |b| (only x2 moves), unconstrained
    |f| / sqrt(a^2 + b^2); a perturbation confined to a space leaves the other coordinate where it was."""
    model, x, a, b, tangent = line_world()
    t = 1 - model(x).argmax(1)
    f = model(x)[:, 1].abs()
    run = lambda project: mislabeled.targeted_pgd_l2(model, x, t, eps=5.0, alpha=0.01, steps=1000, project=project,
                                             clip=False, stop_at_target=True, refine_steps=20)
    on, off, free = run(tangent.on), run(tangent.off), run(None)
    tol = 0.01 * 2 ** -19 + 1e-9
    assert torch.allclose(on.norm, f / a, atol=tol) and torch.allclose(off.norm, f / b, atol=tol)
    assert torch.allclose(free.norm, f / math.hypot(a, b), atol=tol)
    assert torch.equal((on.adv - x)[..., 1], torch.zeros_like(x[..., 1]))   # on: along the line only
    assert torch.equal((off.adv - x)[..., 0], torch.zeros_like(x[..., 0]))  # off: across it only
    assert (off.norm < on.norm).all()  # this boundary is steeper across the line than along it


def test_off_cannot_cross_a_boundary_that_is_perpendicular_to_the_line():
    """b = 0: the classifier reads x1 only, the gradient lies in the tangent space, P_off g = 0: "off" never moves
    and fails; "on" reaches the target at |f| / a."""
    model, x, a, _, tangent = line_world()
    model.W[1, 1] = 0.0
    model.b[1] = -a * 0.5
    t = 1 - model(x).argmax(1)
    off = mislabeled.targeted_pgd_l2(model, x, t, eps=5.0, alpha=0.01, steps=200, project=tangent.off, clip=False)
    on = mislabeled.targeted_pgd_l2(model, x, t, eps=5.0, alpha=0.01, steps=200, project=tangent.on, clip=False,
                            stop_at_target=True, refine_steps=20)
    assert not off.success.any() and torch.equal(off.norm, torch.zeros_like(off.norm))
    assert on.success.all() and torch.allclose(on.norm, model(x)[:, 1].abs() / a, atol=1e-6)


def test_targets_are_never_the_true_label():
    y = torch.arange(10).repeat(300)
    det = mislabeled.targets(y, "det", 10)
    assert torch.equal(det, (y + 1) % 10)
    rand = mislabeled.targets(y, "rand", 10, seed=3)
    assert (rand != y).all() and torch.equal(rand, mislabeled.targets(y, "rand", 10, seed=3))
    counts = torch.bincount((rand - y) % 10, minlength=10)  # the shift is uniform over 1..9
    assert counts[0] == 0 and counts[1:].min() > 0.8 * len(y) / 9
    with pytest.raises(ValueError, match="relabelling"):
        mislabeled.targets(y, "random", 10)


@pytest.mark.parametrize("variant", mislabeled.VARIANTS + mislabeled.CONTROL_SETS)
def test_a_relabelled_set_never_keeps_a_true_label(variant):
    """Every kept image carries its target t (never its y), comes from the image it names, and only successes are
    kept; the original control keeps y, the unperturbed one every image with t."""
    g = torch.Generator().manual_seed(1)
    W = torch.randn(10, 16, generator=g, dtype=torch.float64)
    model = Affine(W, torch.zeros(10, dtype=torch.float64))
    x = torch.rand(200, 1, 4, 4, generator=g, dtype=torch.float64)
    y = model(x).argmax(1)
    t = mislabeled.targets(y, "rand", 10, seed=0)
    space = BasisSubspace(torch.linalg.qr(torch.randn(16, 4, generator=g, dtype=torch.float64)).Q)
    s = mislabeled.relabel(model, x, y, variant, t, settings={"eps": 0.5, "alpha": 0.05, "steps": 20},
                   subspace_for=lambda xb, ib: space, batch_size=64)
    if variant == "original":
        assert torch.equal(s.label, y) and torch.equal(s.x, x)
        return
    assert torch.equal(s.label, t[s.source]) and (s.label != y[s.source]).all()
    if variant == "unperturbed":
        assert len(s.source) == len(x) and torch.equal(s.x, x)
        return
    assert 0 < len(s.source) < len(x)  # some attacks fail at this budget: they are dropped, not relabelled
    assert torch.equal(model(s.x).argmax(1), s.label)  # the source classifier calls every kept image its target
    assert (s.norm <= 0.5 + 1e-9).all()


def test_subspace_variants_need_a_subspace():
    x, y = torch.rand(4, 1, 2, 2), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="subspace_for"):
        mislabeled.relabel(
            Affine(torch.randn(10, 4), torch.zeros(10)), x, y, "on", y + 1, settings={"eps": 1, "alpha": 1, "steps": 1}
        )


def test_params_names_are_the_libs():
    assert (
        params.RELABELLINGS is mislabeled.RELABELLINGS and params.VARIANTS is mislabeled.VARIANTS
    )  # one definition each


# ---------------------------------------------------------------- the claim rows on constructed answers

def test_accuracy_claims_follow_constructed_correctness():
    """off = unconstrained exactly (B: equivalent), on 30 points worse (C supported), random as bad as on (D: a
    precise null, explained by dimension alone); 80% right, so A is supported."""
    rng = np.random.default_rng(0)
    n = 1000
    unc = rng.random(n) < 0.8
    on = unc & (rng.random(n) < 0.62)
    correct = {("rand", "unconstrained"): unc, ("rand", "off"): unc.copy(), ("rand", "on"): on,
               ("rand", "random"): on.copy()}
    table = training_claims.judge(training_claims.mislabeled_rows(correct, "toy", 0.05))
    v = dict(zip(table["claim_id"], table["verdict"]))
    assert v == {"A": "supported", "B": "supported", "C": "supported", "D": "explained by dimension alone"}
    rows = training_claims.mislabeled_rows(correct, "toy", 0.05, min_success=0.5, success={("rand", "on"): 0.2})
    assert not {r.claim_id: r.testable for r in rows}["C"]  # "on" kept too few images: the budget decided


def records_before_after(off_growth, on_growth, frac_before, frac_after, n=40, seed=0):
    """Attack records of n images before and after: unconstrained / on / off tangent (norms log-normal around 1, 3,
    1.1), the after norms grown by the given factors; grad_share = fraction^2."""
    rng = np.random.default_rng(seed)
    base = {("unconstrained", "none"): 1.0, ("on", "tangent"): 3.0, ("off", "tangent"): 1.1}
    grow = {("unconstrained", "none"): off_growth, ("on", "tangent"): on_growth, ("off", "tangent"): off_growth}
    rows = []
    for i in range(n):
        jitter = np.exp(rng.normal(0, 0.1))
        for model, frac in (("before", frac_before), ("after", frac_after)):
            for (c, s), norm in base.items():
                g = grow[c, s] * np.exp(rng.normal(0, 0.05)) if model == "after" else 1.0
                rows.append({"dataset": "toy", "split": model, "clip": True, "image_id": i, "condition": c,
                             "subspace": s, "k": 16 if s != "none" else 784, "n": 784, "success": True,
                             "norm": norm * jitter * g, "grad_share": frac ** 2 if s != "none" else np.nan})
    return pd.DataFrame(rows)


def test_depth_and_alignment_rows_see_the_constructed_changes():
    dimples = records_before_after(off_growth=2.0, on_growth=1.0, frac_before=0.3, frac_after=0.3)
    aligned = records_before_after(off_growth=1.5, on_growth=1.5, frac_before=0.3, frac_after=0.6)
    e, f = training_claims.depth_row(dimples, "toy", 1.1), training_claims.alignment_row(dimples, "toy", 1.1)
    assert abs(math.exp(e.effect) - 2.0) < 0.1 and abs(f.effect) < 1e-12
    e2, f2 = training_claims.depth_row(aligned, "toy", 1.1), training_claims.alignment_row(aligned, "toy", 1.1)
    assert abs(e2.effect) < 0.05 and abs(f2.effect - math.log(2)) < 1e-9
    v = dict(zip(training_claims.judge([e, f2])["claim_id"], training_claims.judge([e, f2])["verdict"]))
    assert v == {"E": "supported", "F": "supported"}
    on, off = training_claims.growth_pairs(dimples)
    assert len(on) == 40 and np.allclose(np.median(off / on), 2.0, rtol=0.05)


def test_a_failed_attack_after_training_bounds_the_growth_from_below():
    r = records_before_after(off_growth=2.0, on_growth=1.0, frac_before=0.3, frac_after=0.3, n=10)
    r.loc[(r["split"] == "after") & (r["subspace"] == "tangent") & (r["condition"] == "off") & (r["image_id"] == 0),
          "success"] = False
    low, high = training_claims.growth(r, ("off", "tangent"))
    assert np.isinf(high[("toy", True, 0)]) and np.isfinite(low[("toy", True, 0)])


# ---------------------------------------------------------------- the budget sweep

from lib.experiments import experiment  # noqa: E402
from lib.inference import pooling  # noqa: E402
from lib.studies.training import mislabeled_study  # noqa: E402


def test_budget_settings_follow_the_step_rule_and_the_minimal_budget_stops_at_the_crossing():
    s = mislabeled_study.budget_settings(2.0, 50, 10.0)
    assert (s.eps, s.alpha, s.steps, s.stop_at_target) == (2.0, 2.5 * 2.0 / 50, 50, False)
    m = mislabeled_study.budget_settings("minimal", 50, 10.0)
    assert (m.eps, m.alpha, m.stop_at_target) == (10.0, 0.5, True)
    for bad in (["minimal"], [0.0, 1.0], [1.0, 1.0], ["minimum", 2.0], [True, 2.0]):
        with pytest.raises(ValueError, match="relabel_budgets"):
            mislabeled_study.check_budgets(bad)


def test_judged_budgets_are_the_first_reaching_the_success_threshold_and_the_largest():
    budgets = ["minimal", 1.0, 2.0, 5.0, 10.0]
    rates = {"minimal": 1.0, 1.0: 0.1, 2.0: 0.55, 5.0: 0.9, 10.0: 1.0}
    assert mislabeled_study.judged_budgets(rates, budgets, 0.3) == [2.0, 10.0]
    assert mislabeled_study.judged_budgets(rates, budgets, 0.95) == [10.0]   # coincide: one budget
    assert mislabeled_study.judged_budgets({**rates, 10.0: 0.2}, budgets, 0.95) == [10.0]  # none reaches: the largest
    assert mislabeled_study.train_size(2000, 0.3) == 600 and mislabeled_study.train_size(2000, 0.3, False) is None


class NearestMean(torch.nn.Module):
    """A classifier whose logits are minus the squared distances to the class means: the nearest mean wins."""

    def __init__(self, means):
        super().__init__()
        self.means = torch.nn.Parameter(means.float(), requires_grad=False)

    def forward(self, x):
        return -torch.cdist(x.flatten(1).float(), self.means) ** 2


def test_visibility_calls_an_image_t_exactly_when_it_has_been_moved_past_half_way_to_ts_mean():
    """Positive control: two classes with well separated means; an image of class 0 moved a fraction lam of the way
    from its class mean to class 1's is nearer class 1's mean exactly when lam > 1/2, by both checks."""
    g = torch.Generator().manual_seed(0)
    means = torch.stack([torch.zeros(16), torch.ones(16)]).double()
    x0 = (means[0] + 0.01 * torch.randn(200, 16, generator=g, dtype=torch.float64)).view(200, 1, 4, 4)
    y = torch.zeros(200, dtype=torch.long)
    est = experiment.class_means(torch.cat([x0, x0 + 1]), torch.cat([y, y + 1]))
    judge = NearestMean(est)
    t = torch.ones(200, dtype=torch.long)
    for lam, expected in ((0.0, 0), (0.4, 0), (0.6, 200), (1.0, 200)):
        moved = x0 + lam * (means[1] - means[0]).view(1, 1, 4, 4)
        got = mislabeled_study.visibility(moved, t, judge, est)
        assert got == {"judge": expected, "means": expected}


def _study(effects, budgets=(2.0, 10.0), seeds=(0, 1, 2), n=3000, untrained=(), seed=0):
    """A constructed sweep: per budget, every set's fresh classifiers right on each test image with a shared per-image
    probability plus the set's effect (images shared across seeds and sets, as in the report)."""
    rng = np.random.default_rng(seed)
    base = rng.beta(4, 2, n) * 0.6 + 0.1
    results = {}
    for b in budgets:
        for v, shift in effects.items():
            trained = (b, v) not in untrained
            correct = {t: torch.from_numpy(rng.random(n) < np.clip(base + shift + rng.normal(0, 0.005), 0, 1))
                       for t in (seeds if trained else [])}
            results[(b, "det", v)] = {"kept": 900, "n_train": 600 if trained else 0, "correct": correct}
    return {"budgets": list(budgets), "judged": {"det": list(budgets)}, "m": 600, "n_attacked": 1000,
            "results": results}


def test_sweep_rows_judge_each_budget_pooled_over_the_fresh_classifiers():
    """At both budgets: unconstrained = off (B equivalent), on 20 points below off and random (C, D supported), 0.6 +
    0.2 right (A supported); the budget is in every row's label; a set left untrained makes its rows untestable."""
    effects = {"unconstrained": 0.2, "off": 0.2, "on": 0.0, "random": 0.2}
    rows, per_seed = training_claims.sweep_rows(_study(effects), "toy", 0.05, 0.3)
    table = training_claims.judge(rows, 0.05, per_seed)
    assert len(table) == 8 and set(table["eps"]) == {"2.0", "10.0"}
    assert all("ε = " in s and "3 fresh classifiers pooled" in s for s in table["short"])
    assert set(table["verdict"]) == {"supported"}
    assert set(table["agreeing_seeds"]) == {"3 of 3"}
    rows, _ = training_claims.sweep_rows(_study(effects, untrained={(2.0, "on")}), "toy", 0.05, 0.3)
    testable = {(r.claim_id, r.notes.get("eps")): r.testable for r in rows}
    assert not testable["C", "2.0"] and not testable["D", "2.0"] and testable["C", "10.0"]


def _tost_rejections(delta, sims, n=1500, alpha=0.05, margin=0.05, tau=0.01):
    """How often the pooled TOST (three fresh classifiers, the same test images) declares B's equivalence where the
    true accuracy difference is ``delta`` and the seeds' effects vary by ``tau``."""
    hits = 0
    for s in range(sims):
        rng = np.random.default_rng(1000 + s)
        base = rng.beta(4, 2, n) * 0.7 + 0.1
        seed_rows = []
        for _ in range(3):
            u = rng.normal(0, tau)
            worse = rng.random(n) < base
            better = rng.random(n) < np.clip(base + delta + u, 0, 1)
            seed_rows.append(training_claims._paired("B", "det", "toy", better, worse, margin, "equivalence"))
        hits += pooling.pooled_row(seed_rows, "seeds", alpha=alpha, statistic="mean").p_margin < alpha
    return hits


def test_pooled_equivalence_keeps_its_level_at_the_margin_and_finds_a_true_equivalence():
    """Under a true null at the band's edge (difference = +margin) the pooled TOST declares equivalence at most at
    its level (the count stays below the 99.9% binomial quantile at alpha); with no difference, on half the report's
    10,000 test images, it is found at least 80% of the time."""
    from scipy import stats as sps
    sims = 120
    assert _tost_rejections(0.05, sims) <= sps.binom.ppf(0.999, sims, 0.05)
    assert _tost_rejections(0.0, 30, n=5000) >= 24
