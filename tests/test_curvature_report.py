"""lib.studies.curvature.curvature_report and lib.studies.curvature.curvature_runs: notebook 06's summary, its two-phase
reading of the training dynamics and its headline figures, against the same figures computed by hand."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from lib.studies.curvature import curvature_report

from lib.studies.curvature import curvature_runs


def _records():
    rng = np.random.default_rng(0)
    rows = []
    for split in ("test", "train"):
        for method in (curvature_runs.TWIN, curvature_runs.RELU):
            for i in range(5):
                rows.append({"dataset": "mnist", "split": split, "method": method, "image": i,
                             "distance": rng.random(), "mean_curvature": rng.normal(), "min_curvature": -rng.random(),
                             "max_curvature": rng.random()})
    return pd.DataFrame(rows)


def test_summary_is_over_the_twins_images_only():
    r = _records()
    s = curvature_report.summary_table(r)
    assert list(s["split"]) == ["test", "train"] and list(s["images"]) == [5, 5]
    twin = r[(r["method"] == curvature_runs.TWIN) & (r["split"] == "test")]
    row = s.iloc[0]
    assert row["median_distance"] == pytest.approx(twin["distance"].median())
    assert row["mean_curvature"] == pytest.approx(twin["mean_curvature"].mean())
    assert row["share_negative_mean"] == pytest.approx((twin["mean_curvature"] < 0).mean())
    assert curvature_report.summary_table(pd.DataFrame()).empty


@pytest.mark.parametrize("ratio, expected", [
    ([1.0, 0.5, 0.8], True),     # falls below 1 inside the run, ends above it by more than the margin
    ([1.0, 0.5, 0.52], False),   # the rise is within the margin
    ([0.5, 0.8, 0.9], False),    # lowest at the first checkpoint: no fall
    ([1.2, 1.1, 1.5], False),    # never below 1
    ([1.0, 0.9, 0.5], False),    # lowest at the end
])
def test_two_phases(ratio, expected):
    assert curvature_report.two_phases(ratio, 1.1) is expected
    t = pd.DataFrame({"epoch": [1, 2, 5], "tangent / random gradient share": ratio})
    assert ("the shape of two phases" in curvature_report.dynamics_sentence("mnist", t, 1.1)) is expected


def test_headlines_pick_each_figure_of_the_first_split():
    summary = pd.DataFrame({"dataset": ["mnist", "mnist"], "split": ["train", "test"], "mean_curvature": [-1.0, -2.0]})
    verdicts = pd.DataFrame({"claim_id": ["06a", "06a", "06b"], "dataset": "mnist", "split": ["train", "test", "test"],
                             "effect": [0.5, 0.7, 0.9], "verdict": ["supported", "not supported", "inconclusive"]})
    shares = pd.DataFrame({"dataset": "mnist", "perturbation": ["random", "adversarial"], "median share": [0.25, 0.6]})
    detection = pd.DataFrame({"dataset": "mnist", "perturbation": ["PGD", "DeepFool"], "AUC": [0.9, 0.4],
                              "CI low": [0.8, 0.3], "CI high": [1.0, 0.5], "label recovery (t = 0)": [0.1, 0.2]})
    heads = curvature_report.headlines(["mnist"], "test", summary, verdicts, shares, detection)
    assert [h["value"] for h in heads] == pytest.approx([-2.0, 0.7, 0.9, 0.6, 0.4, 0.2])
    assert "(median ratio; not supported)" in heads[1]["name"] and heads[4]["ci"] == pytest.approx([0.3, 0.5])
    assert "wrong way" in heads[4]["note"]
    assert (
        curvature_report.headlines(["mnist"], "test", pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
        == []
    )


def test_the_twin_agrees_with_the_mlp_as_its_labels_do():
    torch.manual_seed(0)
    relu = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3)).eval()
    ae = nn.Module()
    ae.latent_dim = 2
    x = torch.randn(200, 1, 4, 4)
    for beta in (1.0, 100.0):
        nets = curvature_runs.nets_for(relu, ae, beta, 0.1, x)
        with torch.no_grad():
            same = (nets.twin(x).argmax(1) == relu(x).argmax(1)).float().mean().item()
        assert nets.agree == pytest.approx(same) and nets.k == 2 and nets.h == 0.1
        assert not any(isinstance(m, nn.ReLU) for m in nets.twin.modules())
    assert nets.agree > 0.95  # beta = 100: close to the ReLU net


class _Data:
    """The little a section reads of a lib.learn.data.Data: test images and labels, n and an identity."""

    def __init__(self, x, y):
        self.test_x, self.test_y, self.n = x, y, x[0].numel()

    def identity(self):
        return "toy"


def test_a_section_is_measured_once_then_read_back_and_again_when_its_images_change(tmp_cache, monkeypatch):
    torch.manual_seed(0)
    relu = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3)).eval()
    ae = nn.Module()
    ae.latent_dim = 2
    x = torch.rand(40, 1, 4, 4)
    with torch.no_grad():
        d = _Data(x, relu(x).argmax(1))
    calls = []
    measure = curvature_runs._scale_sweep
    monkeypatch.setattr(curvature_runs, "_scale_sweep", lambda *a: calls.append(1) or measure(*a))
    nets = curvature_runs.nets_for(relu, ae, 10.0, 0.1, x, keys=("clf", "ae"))
    sweep = lambda nets, d: curvature_runs.scale_sweep("toy", nets, d, 3, [0.1], [10.0], 0, "cpu")  # noqa: E731
    first = sweep(nets, d)
    assert sweep(nets, d) == first and len(calls) == 1  # the second run reads the first's rows back
    assert (
        sweep(curvature_runs.nets_for(relu, ae, 10.0, 0.1, x, keys=("clf", "another ae")), d) == first
        and len(calls) == 2
    )
    x2 = x.clone()
    x2[0, 0, 0, 0] += 0.5
    sweep(nets, _Data(x2, d.test_y))
    assert len(calls) == 3  # other test images: measured again
    sweep(curvature_runs.nets_for(relu, ae, 10.0, 0.1, x), d)
    sweep(curvature_runs.nets_for(relu, ae, 10.0, 0.1, x), d)
    assert len(calls) == 5  # nets without keys (made in a test): never cached
