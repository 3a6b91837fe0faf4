"""What a notebook run needs before its first computation: seeds, the device, and a header that
states profile, device and versions (the report adds data sources and wall time after the run)."""
import os
import platform
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from lib.infra import profiles
from lib.infra.machine import cores, omp_cap
from lib.infra.names import JOBS_ENV
from lib.infra.profiles import PROFILES



def seed_everything(seed):
    """Seed Python, NumPy and torch; deterministic algorithms where torch has them."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def pick_device(device="auto"):
    """'auto' -> cuda if available, else cpu; or exactly 'cpu' / 'cuda' / 'cuda:N'."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device must be auto, cpu or cuda[:N]; got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device(device)


@dataclass
class Run:
    """One notebook run: its profile, seed and device, and when it started."""

    notebook: str
    profile: str
    seed: int
    device: torch.device
    started: float = field(default_factory=time.time)

    def header(self):
        dev = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else \
            f"CPU ({cores()} cores, {torch.get_num_threads()} torch threads)"
        return (f"**{self.notebook}** · profile **{self.profile}** · seed {self.seed} · device {dev} · "
                f"torch {torch.__version__} · Python {platform.python_version()} · "
                f"started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.started))}")

    def elapsed(self):
        return time.time() - self.started

    def shared(self, name, value):
        """A shared setting's value: the notebook's, or where it is None the profile's (lib.infra.profiles)."""
        return profiles.shared(self.profile, name, value, self.notebook)


def threads_for(jobs: int | None = None) -> int:
    """Torch threads for one of `jobs` kernels running side by side: an equal share of the cores, at least one, and
    no more than OMP_NUM_THREADS where the user set it.
    More threads than cores thrash: two default-thread trainings at once on 2 cores each took 3x as long as alone."""
    jobs = int(os.environ.get(JOBS_ENV, "1")) if jobs is None else jobs
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1; got {jobs}")
    share = max(1, cores() // jobs)
    cap = omp_cap()
    return share if cap is None else min(share, cap)  # a user's cap is honoured


@contextmanager
def torch_threads(n):
    """Torch's intra-op threads set to `n` inside the block, restored after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def start(notebook, profile, seed=0, device="auto"):
    """Validate the common parameters, seed everything, give torch its share of the cores (threads_for), show
    the header, return the Run."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}; got {profile!r}")
    torch.set_num_threads(threads_for())
    seed_everything(seed)
    run = Run(notebook, profile, seed, pick_device(device))
    show(run.header())
    return run


def show(markdown):
    """Display Markdown in a notebook, plain text elsewhere."""
    try:
        from IPython.display import Markdown, display

        display(Markdown(markdown))
    except ImportError:
        print(markdown)


def escape(text):
    """`text` (an error message, a path such as imagenet2/train/<wnid>/) as literal Markdown: no HTML tags, no
    emphasis, no links, so that `show` prints it as written."""
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for c in "\\`*_[]":
        text = text.replace(c, "\\" + c)
    return text


def per_dataset(value, dataset):
    """A parameter given once for all data sets, or as {dataset: value}; None where not given."""
    return value.get(dataset) if isinstance(value, dict) else value


_progress_file = None


def progress(*args, **kwargs):
    """tqdm for long loops. When a notebook is executed for the report, $DIMPLED_PROGRESS names a log
    file (`tail -f` it) and the bars go there, out of the rendered page."""
    global _progress_file
    path = os.environ.get("DIMPLED_PROGRESS")
    if path:
        from tqdm.std import tqdm

        if _progress_file is None:
            _progress_file = open(path, "a", buffering=1)
        return tqdm(*args, file=_progress_file, mininterval=2.0, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(*args, **kwargs)


def notify(message, detail=None):
    """A line for the terminal of `make report` (which shows the progress log's `[warning]` lines as they come);
    nothing elsewhere (the notebook shows its own warnings). `detail`: more for the progress log alone
    (reports/<profile>/<notebook>.progress.log), on one line of its own that the terminal does not show."""
    path = os.environ.get("DIMPLED_PROGRESS")
    if path:
        with open(path, "a") as f:
            f.write(f"\n[warning] {message}\n" + (f"[detail] {' '.join(str(detail).split())}\n" if detail else ""))
