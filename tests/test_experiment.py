import numpy as np
import pandas as pd
import pytest
import torch

from lib.experiments import experiment
from lib.inference import stats
from lib.learn import data, train

N_PIX = 784


class Linear2(torch.nn.Module):
    """logits [0, w.x + b]: the decision boundary is the hyperplane w.x + b = 0."""

    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = torch.nn.Parameter(w), torch.nn.Parameter(torch.tensor(b))

    def forward(self, x):
        s = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(s), s], 1)


@pytest.fixture
def linear_setup(tmp_cache):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(N_PIX, generator=g)
    x = 0.25 + 0.5 * torch.rand(64, 1, 28, 28, generator=g)
    b = -(x.flatten(1) @ w).median().item()
    clf = Linear2(w, b).eval()
    y = (clf(x).argmax(1)).long()
    d = data.Data("mnist", x, y, x, y, ["0", "1"], "synthetic")
    t = train.Trained(clf, {}, True, key="linear-test")
    loose = experiment.AttackSettings(eps=100.0, alpha=0.05, steps=2000, clip=False)
    settings = {c: loose for c in experiment.CONDITIONS}
    return t, d, settings, w, b


def test_unconstrained_norm_is_the_distance_to_the_hyperplane(linear_setup):
    clf, d, settings, w, b = linear_setup
    exp = experiment.AttackExperiment(clf, d, "test", 20, settings)
    rec = exp.run("unconstrained", progress=False).records
    dist = ((exp.x.flatten(1) @ w + b).abs() / w.norm()).numpy()
    assert rec["success"].all()
    assert np.allclose(rec["norm"], dist, rtol=1e-3)
    assert set(rec.columns) >= {"dataset", "split", "image_id", "condition", "subspace", "k", "n", "success", "norm",
                                "iterations", "label", "pred", "subspace_share", "grad_share", "proj_residual",
                                "proj_iterations", "proj_converged"}
    assert rec["proj_residual"].isna().all() and rec["proj_converged"].all()  # no projection: nothing to converge


def test_random_subspace_ratio_is_what_confinement_alone_predicts(linear_setup):
    """The critique in numbers: for a flat boundary, a random k-subspace gives on/off ~ sqrt((n-k)/k)."""
    clf, d, settings, _, _ = linear_setup
    exp = experiment.AttackExperiment(clf, d, "test", 64, settings)
    spec = experiment.control_spec("random", 16, seed=1)
    on, off = (exp.run(c, spec, progress=False).records for c in ("on", "off"))
    assert on["success"].all() and off["success"].all()
    ratio = np.median(on["norm"] / off["norm"])
    assert ratio == pytest.approx(stats.flat_boundary_median(16, N_PIX, "on / off"), rel=0.2)
    # no clipping: the attack stays inside (up to float32 cancellation in adv - x for tiny deltas)
    assert on["subspace_share"].min() > 0.99 and on["subspace_share"].median() == pytest.approx(1, abs=1e-5)
    assert on["grad_share"].mean() == pytest.approx(16 / N_PIX, rel=0.3)  # a random subspace holds ~k/n
    assert np.allclose(on["grad_share"], off["grad_share"])           # the share IN the subspace, both rows


def test_conditions_are_cached_and_checked(linear_setup, tmp_cache):
    clf, d, settings, _, _ = linear_setup
    exp = experiment.AttackExperiment(clf, d, "test", 8, settings)
    first = exp.run("unconstrained", progress=False)
    files = list((tmp_cache / "attacks").glob("*.pt"))
    again = experiment.AttackExperiment(clf, d, "test", 8, settings).run("unconstrained", progress=False)
    assert list((tmp_cache / "attacks").glob("*.pt")) == files
    pd.testing.assert_frame_equal(first.records, again.records)
    clipped = {c: experiment.AttackSettings(**{**vars(s), "clip": True}) for c, s in settings.items()}
    with_clip = experiment.AttackExperiment(clf, d, "test", 8, clipped).run("unconstrained", progress=False).records
    assert with_clip["clip"].all() and not first.records["clip"].any()  # records say how they were attacked
    with pytest.raises(ValueError, match="subspace spec"):
        exp.run("on")
    with pytest.raises(ValueError, match="condition must be one of"):
        exp.run("sideways")
    with pytest.raises(ValueError, match="split must be"):
        experiment.AttackExperiment(clf, d, "val", 8, settings)
    with pytest.raises(ValueError, match="per condition"):
        experiment.settings_from({"of": {"eps": 1.0, "alpha": 0.1, "steps": 3}})


def test_pick_correct_takes_only_correctly_classified_images():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x, y = torch.rand(50, 1, 2, 2), torch.randint(0, 3, (50,))
    ids = experiment.pick_correct(model, x, y, 10, seed=3)
    with torch.no_grad():
        assert (model(x[ids]).argmax(1) == y[ids]).all()
    assert torch.equal(ids, experiment.pick_correct(model, x, y, 10, seed=3))
    with pytest.raises(ValueError, match="n_images"):
        experiment.pick_correct(model, x, y, 0)


def test_flat_boundary_references_are_beta_medians():
    """The three references are monotone transforms of the median share, a little off the mean-share values."""
    rng = np.random.default_rng(0)
    share = rng.beta(8, 384, 200_000)  # k = 16, n = 784
    for ratio, of in (("on / off", lambda s: np.sqrt((1 - s) / s)), ("on / unconstrained", lambda s: 1 / np.sqrt(s)),
                      ("off / unconstrained", lambda s: 1 / np.sqrt(1 - s))):
        assert stats.flat_boundary_median(16, 784, ratio) == pytest.approx(np.median(of(share)), rel=0.005)
    assert stats.flat_boundary_median(16, 784) == pytest.approx(np.sqrt(768 / 16), rel=0.03)
    with pytest.raises(ValueError, match="ratio"):
        stats.flat_boundary_median(2, 10, "up / down")


def test_class_cosine_is_one_along_the_class_mean_difference():
    x = torch.stack([torch.zeros(1, 2, 2), torch.ones(1, 2, 2) * 0.5, torch.eye(2)[None]])
    y = torch.tensor([0, 1, 2])
    means = experiment.class_means(x, y)
    delta = (means[2] - means[0]).view(1, 1, 2, 2) * 3
    cos = experiment.class_cosine(torch.cat([delta, -delta, delta]), torch.tensor([0, 0, 0]),
                                  torch.tensor([2, 2, 1]), torch.tensor([True, True, False]), means)
    assert cos[0] == pytest.approx(1) and cos[1] == pytest.approx(-1) and torch.isnan(cos[2])


def test_projection_check_names_every_condition_whose_projections_did_not_converge():
    import pandas as pd

    base = dict(dataset="imagenet", split="test", subspace="tangent")
    rows = [dict(base, condition="on", image_id=i, proj_converged=True, proj_residual=1e-6, proj_iterations=40)
            for i in range(3)]
    ok = pd.DataFrame(rows)
    assert experiment.unconverged(ok).empty
    assert experiment.projection_check(ok).startswith("Every projection converged")
    bad = pd.DataFrame(rows + [dict(base, condition="off", image_id=7, proj_converged=False, proj_residual=0.02,
                                    proj_iterations=100)])
    table = experiment.unconverged(bad)
    assert table[["condition", "images"]].values.tolist() == [["off", 1]]
    text = experiment.projection_check(bad)
    assert "did not converge" in text and "imagenet/test off tangent: 1 images, residual up to 0.02" in text
