"""lib.studies.defence.defence: the fixed-budget PGD against lib.boundary.attacks.pgd_l2, the projections, and the
strength of the adaptive attack (robust accuracy 0 at a large budget)."""
import pytest
import torch
from torch import nn

from lib.studies.defence import defence_claims
from lib.studies.defence import defence
from lib.boundary.attacks import pgd_l2


def _toy(seed=0, n=40):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g) * 0.6 + 0.2
    clf = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with torch.no_grad():
        clf[1].weight.copy_(torch.randn(10, 784, generator=g) * 0.05)
        clf[1].bias.zero_()
    return clf.eval(), x


def test_pgd_budget_breaks_the_images_that_greedy_pgd_breaks():
    """From x, one restart, no refinement: the same update as lib.boundary.attacks.pgd_l2, so the same images fall."""
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
    worst = defence_claims.worst_case(records, 8.0)
    row = defence_claims.paired_row("07d/none", "s", "c", "toy", worst["pca"], worst["none"], 0.05)
    assert (
        row.effect == 0.0 and row.p == 1.0 and row.p_margin > 0.5
    )  # alike: no difference, nowhere near the margin  # alike: no difference, nowhere near the margin


def test_off_manifold_attack_cannot_pass_a_linear_projection_defence():
    """Against x -> clf(P x), P the orthogonal projection onto a PCA subspace, a perturbation confined to the
    subspace's normal space changes nothing (P n = 0): the off attack never succeeds, while the on attack,
    confined to the subspace, does at a large budget. records_at turns norms into robust accuracy per eps."""
    from lib.geometry.subspaces import BasisSubspace

    clf, x = _toy(4, n=12)
    train = torch.rand(300, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    pca = defence.PCAProjection(train, 16)
    defended = defence.Projected(clf, pca)
    y = defended(x).argmax(1)
    greedy = defence.subspace_attacks({"pca": defended}, {"pca": BasisSubspace(pca.Q, "pca")}, x, y,
                                      eps=20.0, alpha=0.5, steps=200)
    on, off = (greedy[greedy["attack"] == a] for a in ("on-manifold", "off-manifold"))
    assert not off["success"].any()
    assert on["success"].all()
    budget = defence.records_at(greedy, [1e-3, 20.0])
    table = defence.robust_accuracy(budget).set_index(["defence", "attack", "eps"])["robust accuracy"]
    assert table["pca", "on-manifold", 1e-3] == 1.0 and table["pca", "on-manifold", 20.0] == 0.0
    assert table["pca", "off-manifold", 20.0] == 1.0
    small = on["norm"].min()
    mid = defence.records_at(greedy, [small])
    assert mid[(mid["attack"] == "on-manifold")]["broken"].sum() >= 1


def test_finetuning_on_the_projection_recovers_clean_accuracy(tmp_path, monkeypatch):
    """A classifier trained on x and shown P(x) for a lossy projection loses accuracy; fine-tuned on P(x) of its
    own training images it recovers it; the second call comes from the cache with the same weights."""
    from lib.learn import train
    from lib.learn.data import Data

    monkeypatch.setenv("DIMPLED_CACHE", str(tmp_path))
    g = torch.Generator().manual_seed(0)
    means = torch.rand(4, 1, 28, 28, generator=g)
    y = torch.arange(400) % 4
    x = (means[y] + 0.3 * torch.randn(400, 1, 28, 28, generator=g)).clamp(0, 1)
    d = Data("toy", x[:300], y[:300], x[300:], y[300:], classes=list("abcd"), source="synthetic")
    cfg = train.ClassifierConfig("mnist", "mlp", 3, 50, 0.05, "sgd")
    clf = train.get_classifier(cfg, d)
    # a map the classifier has never seen (images inverted): a stand-in for a projection that shifts the inputs
    class Invert(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("one", torch.ones(()))

        def forward(self, v):
            return self.one - v

    project = Invert()
    acc = lambda model: (model(1 - d.test_x).argmax(1) == d.test_y).float().mean().item()
    before = acc(clf.model)
    tuned = defence.finetune_on_projection(clf, project, "inverted", defence.FinetuneConfig(5, 0.05))
    assert before < 0.7 and acc(tuned.model) > before + 0.2
    again = defence.finetune_on_projection(clf, project, "inverted", defence.FinetuneConfig(5, 0.05))
    assert again.cached and all(torch.equal(a, b) for a, b in zip(again.model.parameters(), tuned.model.parameters()))
    assert not tuned.cached
    # the base classifier is untouched
    assert acc(clf.model) == before
