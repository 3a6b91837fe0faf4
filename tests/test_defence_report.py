"""lib.studies.defence.defence_setup and lib.studies.defence.defence_report: notebook 07's fine-tune policy, the
defences it builds, the convergence check and the lookups behind its answer, each against what the rule says in
words."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from lib.learn import models, train
from lib.studies.defence import defence
from lib.studies.defence import defence_report
from lib.studies.defence import defence_setup
from lib.learn.data import Data


def test_the_finetune_policy_fine_tunes_when_any_projection_costs_more_than_the_threshold():
    acc = {"none": 0.90, "pca": 0.89, "plain AE": 0.85, "I-AE": 0.90}
    tune, drop = defence_setup.needs_finetune(acc, 0.02)
    assert tune and drop == pytest.approx({"pca": 0.01, "plain AE": 0.05, "I-AE": 0.0})
    assert not defence_setup.needs_finetune(acc, 0.06)[0]
    assert not defence_setup.needs_finetune({"none": 0.5, "pca": 0.25}, 0.25)[0]  # more than the threshold, not as much


def test_build_defences_swaps_the_classifier_of_the_tuned_projections_only():
    clf, tuned_clf, p = nn.Linear(2, 2), nn.Linear(2, 2), nn.Identity()
    projections = {"pca": (p, "pca-id"), "I-AE": (nn.Identity(), "iae-id")}
    defs = defence_setup.build_defences(clf, projections, {"pca": SimpleNamespace(model=tuned_clf)})
    assert list(defs) == ["none", "pca", "I-AE"]
    assert defs["none"].classifier is clf and defs["none"].project is None
    assert defs["pca"].classifier is tuned_clf and defs["pca"].project is p
    assert defs["I-AE"].classifier is clf and defs["I-AE"].project is projections["I-AE"][0]


@pytest.fixture
def toy(tmp_cache):
    """A classifier trained on four noisy class means, and a random conv autoencoder that serves as both the plain
    autoencoder and the I-AE (its D(E(x)) is far from x: every projection but PCA costs clean accuracy)."""
    g = torch.Generator().manual_seed(0)
    means = torch.rand(4, 1, 28, 28, generator=g)
    y = torch.arange(400) % 4
    x = (means[y] + 0.3 * torch.randn(400, 1, 28, 28, generator=g)).clamp(0, 1)
    d = Data("toy", x[:300], y[:300], x[300:], y[300:], classes=list("abcd"), source="synthetic")
    cfg = train.ClassifierConfig("mnist", "mlp", 2, 50, 0.05, "sgd")
    clf = train.get_classifier(cfg, d)
    torch.manual_seed(0)
    ae = SimpleNamespace(model=models.ConvAutoencoder(1, 28, 4, 4).eval(), key="random-ae")
    return d, clf, ae


def test_defences_for_applies_the_policy_to_every_projection(toy):
    d, clf, ae = toy
    kept = defence_setup.defences_for(
        "toy", d, clf, ae, ae, 1.0, defence.FinetuneConfig(1, 0.05), "cpu"
    )  # no cost exceeds 1
    assert not kept.finetuned and "classifier of notebook 01" in kept.message
    assert all(net.classifier is clf.model for net in kept.defences.values())
    assert [r["defence"] for r in kept.clean_rows] == ["none", "pca", "plain AE", "I-AE"]
    wrong = defence.misclassified(kept.defences["plain AE"], d.test_x, d.test_y)
    assert kept.clean_rows[2]["clean accuracy"] == pytest.approx(1 - wrong.float().mean().item())

    tuned = defence_setup.defences_for("toy", d, clf, ae, ae, 0.02, defence.FinetuneConfig(1, 0.05), "cpu")
    assert set(tuned.finetuned) == {"pca", "plain AE", "I-AE"}  # every projection, not only the costly ones
    assert tuned.defences["none"].classifier is clf.model
    assert all(tuned.defences[k].classifier is not clf.model for k in tuned.finetuned)
    assert [(r["defence"], r["classifier"]) for r in tuned.clean_rows[4:]] == [
        (k, "fine-tuned on P(x)") for k in ("pca", "plain AE", "I-AE")]
    assert tuned.clean_rows[:4] == kept.clean_rows and "fine-tuned on P(x) (1 epochs" in tuned.message


def test_convergence_reads_the_main_run_from_the_robust_table_and_flags_a_drop_beyond_half_the_margin(tmp_cache):
    g = torch.Generator().manual_seed(0)
    clf = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with torch.no_grad():
        clf[1].weight.copy_(torch.randn(10, 784, generator=g) * 0.05)
    x = torch.rand(12, 1, 28, 28, generator=g) * 0.6 + 0.2
    y = clf(x).argmax(1)
    defended = {"toy": ({"none": defence.Projected(clf.eval())}, x, y)}
    robust = pd.DataFrame(
        [{"dataset": "toy", "defence": "none", "attack": "adaptive", "eps": 0.5, "robust accuracy": 1.0}]
    )
    args = dict(keys={"toy": {"none": "toy-clf"}}, eps=0.5, steps=10, restarts=2, attack_steps=5, margin=0.1, seed=0)
    curves, records, table, unconverged = defence_report.convergence(defended, robust, **args)
    again = defence_report.convergence(defended, robust, **args)  # from the cache: the same curves and records
    assert again[0]["toy"]["none"][1] == curves["toy"]["none"][1] and again[1].equals(records)
    iters, acc = curves["toy"]["none"]
    assert len(iters) == len(acc) == 21 and acc[0] == 1.0 and all(np.diff(acc) <= 0)
    assert len(records) == 12 and set(records["attack"]) == {"adaptive (long)"}
    assert acc[-1] == pytest.approx(1 - records["broken"].mean())
    assert table.iloc[0]["main run (5 steps)"] == 1.0 and table.iloc[0]["10 steps x 2 restarts"] == acc[-1]
    assert unconverged["toy"] == ({"none"} if acc[-1] < 0.95 else set())


def test_answer_and_headlines_name_the_right_figures():
    rows = [
        {
            "dataset": "m",
            "defence": d,
            "attack": a,
            "eps": e,
            "robust accuracy": v,
            "CI low": v - 0.1,
            "CI high": v + 0.1,
        }
        for (d, a, e, v) in [
            ("I-AE", "worst case", 1.0, 0.5),
            ("plain AE", "worst case", 1.0, 0.25),
            ("pca", "worst case", 1.0, 0.125),
            ("none", "worst case", 1.0, 0.0),
            ("I-AE", "adaptive", 1.0, 0.625),
            ("I-AE", "transfer", 1.0, 0.75),
        ]
    ]
    worst = pd.DataFrame(rows)
    manifold = pd.DataFrame([{"dataset": "m", "defence": "I-AE", "attack": a, "eps": 1.0, "robust accuracy": v}
                             for a, v in (("on-manifold", 0.375), ("off-manifold", 0.875))])
    verdict = pd.DataFrame([{"dataset": "m", "claim_id": "07d/plain AE", "eps": 1.0, "verdict": "inconclusive"}])
    (sentence,) = defence_report.answer(["m"], worst, manifold, verdict, [1.0], [1.0, 6.0])
    assert (
        "worst case per image) at ε = 1, the I-AE defence keeps 50% of the images robust, the plain AE 25%, PCA 12%, "
        "no defence 0% (I-AE better than the plain AE: inconclusive)"
    ) in sentence  # the worst case, not adaptive PGD's 62%
    assert "PGD leaves 38% robust at ε = 1; confined to its normal space, 88%." in sentence
    assert "not tested" in defence_report.answer(["m"], worst, manifold, verdict.iloc[:0], [1.0], [1.0, 6.0])[0]
    heads = defence_report.headlines(
        ["m"], worst, {"m": {"I-AE": np.array([0.1, 0.3]), "plain AE": np.array([1.0])}}, [1.0]
    )
    assert [h["value"] for h in heads] == pytest.approx([0.5, 0.25, 0.125, 0.0, 0.2, 1.0])
    assert heads[0]["ci"] == pytest.approx([0.4, 0.6])
    assert defence_report.headlines([], worst, {}, [1.0])[0]["name"] == "no data set available"


def test_check_params_names_the_bad_parameter():
    defence_report.check_params([10.0], 0.25, [1.0], 0.02)
    with pytest.raises(ValueError, match="recon_tolerance"):
        defence_report.check_params([], 0.25, [1.0], 0.02)
    with pytest.raises(ValueError, match="finetune_threshold"):
        defence_report.check_params([10.0], 0.25, [1.0], 1.0)
    with pytest.raises(ValueError, match="eps_grid"):
        defence_report.check_params([10.0], 0.25, [0.0], 0.02)


def test_data_sets_the_conv_iae_cannot_take_are_dropped_with_why():
    from types import SimpleNamespace

    from lib.studies.defence import defence_setup
    found = {"mnist": SimpleNamespace(shape=(1, 28, 28)), "cifar10": SimpleNamespace(shape=(3, 32, 32))}
    missing = {}
    dropped = defence_setup.drop_unsupported(found, missing)
    assert list(found) == ["mnist"] and set(dropped) == set(missing) == {"cifar10"}
    assert "28x28" in missing["cifar10"]


def test_square_alone_runs_only_where_the_transfer_check_needs_it(monkeypatch):
    """On the images the white-box attacks left, the suite's Square run is Square alone: it is reused; Square runs again
    only on the images the white-box attacks broke that the transfer attack broke too, and never for "none"."""
    from lib.boundary import autoattack as aa

    x, y = torch.rand(6, 1, 4, 4), torch.zeros(6, dtype=torch.long)
    suite = pd.DataFrame({"defence": ["none"] * 6 + ["d"] * 6, "norm": "L2", "eps": 2.0, "image": list(range(6)) * 2,
                          "broken_by": ["APGD-CE", "", "Square", "FAB-T", "", "APGD-T"] * 2})
    transfer = pd.DataFrame({"defence": "d", "attack": "transfer", "eps": 2.0, "image": range(6),
                             "broken": [True, True, False, True, False, True]})
    seen = []

    def fake(defences, keys, xs, ys, *, norm, eps_list, cfg, attacks, label=""):
        seen.append((list(defences), xs.clone(), attacks))
        # Square alone breaks the first image it is given and no other
        return pd.DataFrame({"defence": "d", "norm": norm, "eps": eps_list[0], "image": np.arange(len(xs)),
                             "broken_by": ["Square"] + [""] * (len(xs) - 1)})

    monkeypatch.setattr(aa, "suite_records", fake)
    nets = {"none": nn.Identity(), "d": nn.Identity()}
    out = defence_report.square_alone(
        nets, {"none": "c", "d": "id"}, x, y, suite, 2.0, aa.SuiteConfig(1, 1, 1), transfer=transfer
    )
    (names, xs, attacks), = seen
    assert names == ["d"] and attacks == ("Square",) and torch.equal(xs, x[[0, 3, 5]])  # white-box and transfer broke
    assert set(out["defence"]) == {"d"} and out["broken"].tolist() == [True, False, True, False, False, False]
    seen.clear()  # no transfer records: every image the white-box attacks broke; a budget the suite lacks: every image
    defence_report.square_alone(nets, {"none": "c", "d": "id"}, x, y, suite, 2.0, aa.SuiteConfig(1, 1, 1))
    defence_report.square_alone(nets, {"none": "c", "d": "id"}, x, y, suite, 1.0, aa.SuiteConfig(1, 1, 1))
    assert torch.equal(seen[0][1], x[[0, 3, 5]]) and torch.equal(seen[1][1], x)
