"""Sharded attack conditions (lib.experiments.shards, lib.infra.distributed): the records do not depend on the shard
size or on where the shards ran, an interrupted run resumes with the missing shards only, a dead worker's shard is
rerun."""
import os
import shutil
import sys
from functools import partial
from pathlib import Path

import cloudpickle
import numpy as np
import pandas as pd
import pytest
import torch

from lib.experiments import experiment, shards
from lib.infra import distributed
from lib.learn import data, train

N_IMAGES = 7
SETTINGS = experiment.settings_from({"unconstrained": {"eps": 10.0, "alpha": 0.2, "steps": 25},
                                     "on": {"eps": 20.0, "alpha": 0.4, "steps": 25},
                                     "off": {"eps": 10.0, "alpha": 0.2, "steps": 25}})


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """MNIST with a smoke-size classifier and autoencoder, trained into a cache of this module's own."""
    cache_dir = tmp_path_factory.mktemp("shards") / "cache"
    saved = os.environ.get("DIMPLED_CACHE")
    os.environ["DIMPLED_CACHE"] = str(cache_dir)
    try:
        d = data.load("mnist")
        clf = train.get_classifier(train.classifier_config("mnist", epochs=1), d.subset(600, None, 0))
        ae = train.get_autoencoder(train.autoencoder_config("mnist", epochs=1, width=8), d.subset(300, None, 0))
        yield d, clf, ae, cache_dir
    finally:
        os.environ.pop("DIMPLED_CACHE") if saved is None else os.environ.__setitem__("DIMPLED_CACHE", saved)


@pytest.fixture
def cache_dir(setup, monkeypatch):
    """The module's cache, emptied of attacks: every test computes its shards."""
    monkeypatch.setenv("DIMPLED_CACHE", str(setup[3]))
    shutil.rmtree(setup[3] / "attacks", ignore_errors=True)
    return setup[3]


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes, one thread each, as CI can afford."""
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as c:
        yield c
    distributed.close()


def specs(d, ae):
    return [("unconstrained", None)] + [(c, experiment.tangent_spec(ae)) for c in ("on", "off")] + \
        [("on", experiment.control_spec(kind, 16, seed=2)) for kind in ("random", "coordinate")] + \
        [("on", experiment.control_spec("pca", 16, 0, experiment.training_images(d, 300, 0)))]


def records(exp, conditions):
    return pd.concat([exp.run(c, spec, progress=False).records for c, spec in conditions], ignore_index=True)


# How far two runs of the same attack may differ when only the batching differs. A matrix product's rounding
# depends on how many images are multiplied at once (in a shard, and among the running images of one PGD
# batch), and on the processor's kernel: float32 rounds each product's sum by up to about sqrt(n) * eps
# (n = 784 terms, a random walk of roundings), and the PGD steps compound it linearly while the path does not
# branch. A greedy attack's path can branch (a step that crosses the boundary in one rounding and not in the other),
# and a branch amplifies that difference: measured here with ATEN_CPU_CAPABILITY=default, one image of 42 moved
# its refined norm by 1.7e-4 relative, twice the linear bound. So the typical image (the median over images) must
# stay within ROUNDING, and every image within VERDICT_NEUTRAL: 1e-3 relative is 1% of the narrowest margin the
# verdicts use (ln 1.1 = 0.095 on the log-norm scale), so no verdict can move by it. Anything a bug would change (an
# image's order, its subspace, a failed attack) moves these values by orders more, and integers and booleans (the
# success of each attack, the image ids) must agree exactly.
EPS32 = torch.finfo(torch.float32).eps
STEPS = max(s.steps for s in SETTINGS.values())
ROUNDING = STEPS * np.sqrt(784) * EPS32          # 8.3e-5
VERDICT_NEUTRAL = 1e-3
BOUNDED = ("subspace_share", "grad_share", "class_cosine")  # in [-1, 1]: compared absolutely


def same_records(got, expected):
    """Equal records: integer and boolean columns exactly; each float column's median difference within ROUNDING
    and its largest within VERDICT_NEUTRAL (comment above), absolutely for the bounded columns (cosines, shares: a
    cosine near 0 has no relative precision), relatively for the others (norms, residuals)."""
    floats = got.select_dtypes("floating").columns
    pd.testing.assert_frame_equal(got.drop(columns=floats), expected.drop(columns=floats), check_exact=True)
    assert list(floats) == list(expected.select_dtypes("floating").columns)
    for col in floats:
        a, b = got[col].to_numpy(float), expected[col].to_numpy(float)
        assert np.array_equal(np.isnan(a), np.isnan(b)), col
        a, b = a[~np.isnan(a)], b[~np.isnan(b)]
        diff = np.abs(a - b) if col in BOUNDED else np.abs(a - b) / np.maximum(np.abs(b), np.finfo(float).tiny)
        if len(diff):
            assert np.median(diff) <= ROUNDING and diff.max() <= VERDICT_NEUTRAL, \
                f"{col}: median difference {np.median(diff):.2g}, largest {diff.max():.2g}"


def make(setup, **kwargs):
    d, clf, _, _ = setup
    return experiment.AttackExperiment(clf, d, "test", N_IMAGES, SETTINGS, **kwargs)


def test_records_do_not_depend_on_the_shard_size(setup, cache_dir):
    conditions = specs(setup[0], setup[2])
    whole = make(setup, shard_size=N_IMAGES)
    expected = records(whole, conditions)
    sharded = make(setup, shard_size=3)
    got = records(sharded, conditions)
    assert whole.shard_counts == {"cached": 0, "computed": len(conditions)}
    assert sharded.shard_counts == {"cached": 0, "computed": 3 * len(conditions)}  # 3 + 3 + 1 images: its own entries
    same_records(got, expected)
    assert len(got) == N_IMAGES * len(conditions) and got["success"].any()
    for condition, spec in conditions:  # the perturbations too (pixels lie in [0, 1]), with the same two bounds
        diff = (sharded.run(condition, spec).delta - whole.run(condition, spec).delta).abs().flatten(1).amax(1)
        assert diff.median() <= ROUNDING and diff.max() <= VERDICT_NEUTRAL, (condition, diff.tolist())


def test_an_interrupted_run_computes_only_the_missing_shards(setup, cache_dir):
    calls = []

    def fails_at_the_third(task, local=None):
        calls.append(task.image_ids)
        if len(calls) == 3:
            raise KeyboardInterrupt("interrupted")
        return shards.run_shard(task, local)

    first = make(setup, shard_size=2)  # 4 shards: 2 + 2 + 2 + 1 images
    first.shard_function = fails_at_the_third
    with pytest.raises(KeyboardInterrupt):
        first.run("unconstrained", progress=False)
    again = make(setup, shard_size=2)
    rec = again.run("unconstrained", progress=False).records
    assert again.shard_counts == {"cached": 2, "computed": 2}
    assert rec["image_id"].tolist() == again.ids.tolist() and rec["norm"].notna().all()
    reference = make(setup, shard_size=N_IMAGES)
    shutil.rmtree(cache_dir / "attacks")
    same_records(rec, reference.run("unconstrained", progress=False).records)


def test_a_local_cluster_gives_the_in_process_records(setup, cache_dir, cluster):
    conditions = specs(setup[0], setup[2])
    remote = make(setup, shard_size=3, scheduler=cluster.scheduler_address)
    got = records(remote, conditions)
    assert remote.shard_counts == {"cached": 0, "computed": 3 * len(conditions)}
    loaded = distributed.client(cluster.scheduler_address).run(lambda: sorted(str(s[0]) for s in shards._memo))
    assert any("classifier" in slots for slots in loaded.values())  # the workers loaded the models themselves
    shutil.rmtree(cache_dir / "attacks")
    local = make(setup, shard_size=3)
    same_records(got, records(local, conditions))
    assert local.shard_counts == {"cached": 0, "computed": 3 * len(conditions)}
    assert experiment.shard_summary([remote, local]) == (
        f"attack shards (3 images each): 0 from the cache, {6 * len(conditions)} computed in this process and "
        f"on the workers of the dask scheduler {cluster.scheduler_address}")


def dying_shard(task, marker, victim):
    """run_shard, but the worker process dies (os._exit) the first time it is given the shard `victim`."""
    if task.image_ids[0] == victim and not Path(marker).exists():
        Path(marker).touch()
        os._exit(1)
    return shards.run_shard(task)


def test_a_worker_that_dies_mid_shard_is_retried(setup, cache_dir, cluster, tmp_path):
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    try:
        exp = make(setup, shard_size=2, scheduler=cluster.scheduler_address)
        marker = tmp_path / "died"
        exp.shard_function = partial(dying_shard, marker=str(marker), victim=int(exp.ids[2]))
        rec = exp.run("unconstrained", progress=False).records
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert marker.exists()  # a worker did die
    assert exp.shard_counts == {"cached": 0, "computed": 4}
    assert rec["image_id"].tolist() == exp.ids.tolist() and rec["norm"].notna().all()
    shutil.rmtree(cache_dir / "attacks")
    same_records(rec, make(setup, shard_size=N_IMAGES).run("unconstrained", progress=False).records)


def test_a_worker_never_trains_and_refuses_other_data(setup, cache_dir, tmp_path):
    exp = make(setup, shard_size=N_IMAGES)
    task = exp.tasks("unconstrained", None)[0]
    shards._memo.clear()
    with pytest.raises(train.ModelNotCached, match="not in the cache"):
        shards.run_shard(shards.ShardTask(**{**vars(task), "cache_dir": str(tmp_path / "empty")}))
    with pytest.raises(RuntimeError, match="differ from the notebook's"):
        shards.run_shard(shards.ShardTask(**{**vars(task), "images_hash": "0" * 12}))
    tensors, hit = shards.run_shard(task)  # loaded by key from the cache, as on a worker
    assert not hit and len(tensors["norm"]) == N_IMAGES
    assert shards.run_shard(task)[1]
    shards._memo.clear()


def test_a_run_whose_shards_are_all_cached_needs_no_scheduler(setup, cache_dir):
    """Nothing to compute: the scheduler is never contacted, so a wrong address neither waits nor fails."""
    import time

    first = make(setup, shard_size=3).run("unconstrained", progress=False).records
    started = time.time()
    again = make(setup, shard_size=3, scheduler="tcp://127.0.0.1:9")  # nothing listens there
    rec = again.run("unconstrained", progress=False).records
    assert again.shard_counts == {"cached": 3, "computed": 0} and time.time() - started < 10
    pd.testing.assert_frame_equal(rec, first)
    assert "tcp://127.0.0.1:9" not in distributed._clients


def test_scheduler_parameter_wins_over_the_environment(monkeypatch):
    monkeypatch.delenv(distributed.ENV, raising=False)
    assert distributed.scheduler_address(None) is None
    monkeypatch.setenv(distributed.ENV, "tcp://env:8786")
    assert distributed.scheduler_address(None) == "tcp://env:8786"
    assert distributed.scheduler_address("tcp://param:8786") == "tcp://param:8786"
    with pytest.raises(ValueError, match="shard_size must be"):
        experiment.AttackExperiment(None, None, "test", 3, SETTINGS, shard_size=0)


def test_where_a_basis_does_not_fit_a_shard_projects_through_gram_matrices_a_group_at_a_time(setup, cache_dir,
                                                                                                monkeypatch):
    """As at ImageNet size: the tangent conditions go through GramTangentSubspace, as many images at once as
    MAX_GRAM_BYTES holds, and give the records of the dense bases."""
    from lib.geometry import subspaces
    conditions = [(c, experiment.tangent_spec(setup[2])) for c in ("on", "off")]
    expected = records(make(setup, shard_size=N_IMAGES), conditions)
    shutil.rmtree(cache_dir / "attacks")
    groups, Gram = [], subspaces.GramTangentSubspace

    def spy(ae, x, **kwargs):
        groups.append(len(x))
        return Gram(ae, x, **kwargs)
    monkeypatch.setattr(subspaces, "GramTangentSubspace", spy)
    monkeypatch.setattr(subspaces, "MAX_BASIS_BYTES", 0)
    monkeypatch.setattr(subspaces, "MAX_GRAM_BYTES", 2 * 16 * 16 * 8)  # two k = 16 Gram matrices
    got = records(make(setup, shard_size=N_IMAGES), conditions)
    assert groups == [2, 2, 2, 1] * 2
    assert (got["proj_converged"]).all() and (got["proj_residual"] < 1e-4).all()
    pd.testing.assert_series_equal(got["success"], expected["success"])
    torch.testing.assert_close(torch.tensor(got["norm"].values), torch.tensor(expected["norm"].values),
                               atol=1e-4, rtol=0)


def test_random_bases_too_big_for_one_batch_are_drawn_a_group_at_a_time(setup, cache_dir, monkeypatch):
    """Per-image random bases come from (seed, image id): drawn in groups, as at ImageNet size (15 GB each),
    they give the records of the whole shard at once."""
    from lib.geometry import subspaces
    conditions = [("on", experiment.control_spec("random", 16, seed=2))]
    expected = records(make(setup, shard_size=N_IMAGES), conditions)
    shutil.rmtree(cache_dir / "attacks")
    groups, Random = [], subspaces.RandomSubspace

    def spy(n, k, batch, **kwargs):
        groups.append(batch)
        return Random(n, k, batch=batch, **kwargs)
    monkeypatch.setattr(subspaces, "RandomSubspace", spy)
    monkeypatch.setattr(subspaces, "MAX_BASIS_BYTES", 3 * 784 * 16 * 4)  # three float32 MNIST bases
    got = records(make(setup, shard_size=N_IMAGES), conditions)
    assert groups == [3, 3, 1]
    same_records(got, expected)
