"""lib.studies.defence.checklist: each check of Carlini et al. 2019 passes on records built to satisfy it and fails on
records built to violate it beyond the binomial noise bound."""
import numpy as np
import pandas as pd
import pytest

from lib.studies.defence import checklist


def _records(acc_by_attack_eps, n=100, dataset="toy", defence="d"):
    """Budget records whose robust accuracy is exactly the given value: the first round(acc n) images robust."""
    rows = []
    for (attack, eps), acc in acc_by_attack_eps.items():
        k = int(round(acc * n))
        rows += [{"dataset": dataset, "defence": defence, "attack": attack, "eps": eps, "image": i, "broken": i >= k}
                 for i in range(n)]
    return pd.DataFrame(rows)


def test_noise_bound_is_the_binomial_bound_and_at_least_one_image():
    assert checklist.noise_bound(0.5, 100) == pytest.approx(1.96 * np.sqrt(2 * 0.25 / 100))
    assert checklist.noise_bound(0.0, 100) == pytest.approx(0.01)


def test_large_budget_passes_only_when_nothing_survives():
    ok = _records({("adaptive", 6.0): 0.0, ("transfer", 6.0): 0.3})
    assert checklist.large_budget(ok, 6.0)[0]["pass"]
    bad = _records({("adaptive", 6.0): 0.02, ("transfer", 6.0): 0.3})
    assert not checklist.large_budget(bad, 6.0)[0]["pass"]


def test_monotone_flags_a_rise_beyond_noise_only():
    within = _records({("adaptive", 1.0): 0.50, ("adaptive", 2.0): 0.55, ("adaptive", 3.0): 0.1})
    assert checklist.monotone(within, ["adaptive"])[0]["pass"]
    beyond = _records({("adaptive", 1.0): 0.30, ("adaptive", 2.0): 0.60})
    assert not checklist.monotone(beyond, ["adaptive"])[0]["pass"]


def test_attack_order_white_box_below_square_below_transfer():
    records = _records({("Square alone", 2.0): 0.5, ("transfer", 2.0): 0.7})
    suite = pd.DataFrame({"dataset": "toy", "defence": "d", "norm": "L2", "eps": 2.0, "image": range(100),
                          "broken_by": ["APGD-CE"] * 70 + [""] * 30})
    assert checklist.attack_order(records, suite, 2.0)[0]["pass"]
    masked = suite.assign(broken_by=["APGD-CE"] * 20 + ["Square"] * 30 + [""] * 50)  # Square finds what gradients miss
    assert not checklist.attack_order(records, masked, 2.0)[0]["pass"]
    weak = _records({("Square alone", 2.0): 0.9, ("transfer", 2.0): 0.7})  # black-box weaker than transfer beyond noise
    assert not checklist.attack_order(weak, suite, 2.0)[0]["pass"]
    # without a defence there is no transfer check and Square alone is not run: the suite's Square settles the rest
    none = suite.assign(defence="none")
    only_transfer = _records({("transfer", 2.0): 0.3}, defence="none")
    assert checklist.attack_order(only_transfer, none, 2.0)[0]["pass"]
    assert not checklist.attack_order(only_transfer, masked.assign(defence="none"), 2.0)[0]["pass"]


def test_converged_and_pgd_vs_autoattack():
    records = _records({("adaptive", 1.5): 0.40, ("adaptive (long)", 1.5): 0.38})
    assert checklist.converged(records, 1.5)[0]["pass"]
    assert not checklist.converged(_records({("adaptive", 1.5): 0.6, ("adaptive (long)", 1.5): 0.3}), 1.5)[0]["pass"]
    stronger_aa = _records({("adaptive", 1.0): 0.6, ("AutoAttack", 1.0): 0.4})
    assert checklist.pgd_vs_autoattack(stronger_aa, [1.0])[0]["pass"]
    weaker_aa = _records({("adaptive", 1.0): 0.2, ("AutoAttack", 1.0): 0.6})
    row = checklist.pgd_vs_autoattack(weaker_aa, [1.0])[0]
    assert not row["pass"] and "broken only by PGD 40" in row["result"]


def test_worst_case_breaks_an_image_if_any_attack_did():
    r = _records({("a", 1.0): 0.8, ("b", 1.0): 0.5})
    w = checklist.worst(r)
    assert (~w["broken"]).mean() == pytest.approx(0.5)
    table = checklist.checklist(r.assign(attack=r["attack"].map({"a": "adaptive", "b": "AutoAttack"})),
                                pd.DataFrame(columns=["dataset", "defence", "norm", "eps", "image", "broken_by"]),
                                large_eps=1.0, order_eps=1.0, converge_eps=1.0, verdict_eps=[1.0])
    assert list(table.columns) == checklist.COLUMNS and len(table) >= 2
