"""lib.reporting.tables: the one lookup of a figure by its row's keys, against plain boolean indexing."""
import numpy as np
import pandas as pd

from lib.reporting import tables

T = pd.DataFrame({"dataset": ["mnist", "mnist", "fashion_mnist"], "attack": ["adaptive", "transfer", "adaptive"],
                  "eps": [1.0, 1.0, 0.1 + 0.2], "robust accuracy": [0.25, 0.5, 0.75], "CI low": [0.1, 0.2, 0.3],
                  "CI high": [0.4, 0.6, 0.9]})


def test_lookup_finds_the_row_that_boolean_indexing_finds():
    for _, row in T.iterrows():
        where = {"dataset": row["dataset"], "attack": row["attack"], "eps": row["eps"]}
        mask = (T["dataset"] == where["dataset"]) & (T["attack"] == where["attack"]) & (T["eps"] == where["eps"])
        assert tables.lookup(T, "robust accuracy", **where) == float(T[mask]["robust accuracy"].iloc[0])
        assert tables.lookup(T, **where).equals(T[mask].iloc[0])


def test_lookup_compares_floats_up_to_rounding_and_returns_tuples():
    assert tables.lookup(T, "robust accuracy", dataset="fashion_mnist", eps=0.3) == 0.75  # 0.1 + 0.2 != 0.3
    assert tables.lookup(T, ("CI low", "CI high"), dataset="mnist", attack="transfer") == (0.2, 0.6)


def test_lookup_gives_the_default_where_nothing_matches():
    assert tables.lookup(T, "robust accuracy", dataset="cifar10") is None
    assert np.isnan(tables.lookup(T, "robust accuracy", np.nan, dataset="cifar10"))
    assert tables.lookup(T, "robust accuracy", -1, split="test") == -1  # no such column
    assert tables.lookup(pd.DataFrame(), "robust accuracy", dataset="mnist") is None
    assert tables.lookup(T.iloc[:0], dataset="mnist") is None


def test_stack_and_save(tmp_reports):
    assert list(tables.stack([], ["a", "b"]).columns) == ["a", "b"]
    both = tables.stack([T.iloc[:1], T.iloc[2:]])
    assert list(both.index) == [0, 1] and list(both["dataset"]) == ["mnist", "fashion_mnist"]
    path = tables.save_csv(T, "smoke", "t.csv")
    assert path == tmp_reports / "smoke" / "results" / "t.csv"
    assert pd.read_csv(path).equals(T)
