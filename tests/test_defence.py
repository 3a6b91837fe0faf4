"""lib.defence: the fixed-budget PGD against lib.attacks.pgd_l2, the projections, and the strength of the
adaptive attack (robust accuracy 0 at a large budget)."""
import pytest
import torch
from torch import nn

from lib import defence
from lib.attacks import pgd_l2


def _toy(seed=0, n=40):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g) * 0.6 + 0.2
    clf = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with torch.no_grad():
        clf[1].weight.copy_(torch.randn(10, 784, generator=g) * 0.05)
        clf[1].bias.zero_()
    return clf.eval(), x


def test_pgd_budget_breaks_the_images_that_greedy_pgd_breaks():
    """From x, one restart, no refinement: the same update as lib.attacks.pgd_l2, so the same images fall."""
    clf, x = _toy()
    y = clf(x).argmax(1)
    ours = defence.pgd_budget(clf, x, y, eps=0.05, steps=20, alpha=0.005)
    theirs = pgd_l2(clf, x, y, eps=0.05, alpha=0.005, steps=20, refine_steps=0)
    assert 0 < ours.broken.sum() < len(x)
    assert torch.equal(ours.broken, theirs.success)
    assert torch.equal(ours.first_step[ours.broken], theirs.iterations[theirs.success])
    assert ((ours.adv - x).flatten(1).norm(dim=1) <= 0.05 + 1e-5).all()


def test_pca_projection_is_an_orthogonal_projection():
    g = torch.Generator().manual_seed(1)
    train = torch.rand(200, 1, 28, 28, generator=g)
    P = defence.PCAProjection(train, 16)
    x = torch.rand(5, 1, 28, 28, generator=g)
    assert torch.allclose(P(P(x)), P(x), atol=1e-5)
    residual = (x - P(x)).flatten(1)
    assert torch.allclose(residual @ P.Q, torch.zeros(5, 16), atol=1e-4)
    with pytest.raises(ValueError, match="k must be"):
        defence.PCAProjection(train, 784)


def test_adaptive_attack_breaks_every_defence_at_a_large_budget():
    """Through a projection defence, end to end: robust accuracy 1 at a tiny budget, 0 at a large one; the
    transferred attack is weaker than the adaptive one against the projection."""
    clf, x = _toy(2)
    train = torch.rand(300, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    defended = defence.Projected(clf, defence.PCAProjection(train, 16))
    y = defended(x).argmax(1)
    records = defence.attack_defences({"none": defence.Projected(clf), "pca": defended}, clf, x, y,
                                      eps_grid=[1e-3, 8.0], steps=40)
    table = defence.robust_accuracy(records).set_index(["defence", "attack", "eps"])["robust accuracy"]
    for d in ("none", "pca"):
        assert table[d, "adaptive", 1e-3] == 1.0
        assert table[d, "adaptive", 8.0] == 0.0
    row = defence.compare_defences(records, "pca", "none", "adaptive", 8.0)
    assert row["effect"] == 0.0 and row["p"] == 1.0
