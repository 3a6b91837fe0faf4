"""Artifact store keyed by a hash of the full configuration, written atomically.

key = sha256(config, torch version); the config names the artifact's kind and version
(lib.infra.artifacts.Artifact.key), never the text of its code, so a refactor keeps every entry and a change of
behaviour bumps the version. An entry is one `torch.save`d dict {"key", "state_dict", "meta"} (state_dicts and plain
metadata only: `torch.load(weights_only=True)` reads it). It is written to a temporary file and renamed into
place, so a reader never sees half an entry; an entry that does not load, or whose stored key
differs, is reported, removed and rebuilt. A hit reads the entry and writes nothing (no lock file), so
a complete cache on a read-only disk is usable; only a miss takes the per-key file lock, then looks
again, so two notebooks that need the same model at the same time (`make -j2`) train it once. The lock file is
removed by its holder, so only entries stay in the cache folder. Inside `not_waiting()` a miss whose lock another
process holds raises Busy instead of waiting: a notebook that needs several models takes first those nobody is
training (lib.learn.data.each_available), so that two notebooks train two models side by side.
"""
import contextvars
import fcntl
import hashlib
import json
import os
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

from lib.infra.files import atomic_write
from lib.infra.runtime import notify

REPO = Path(__file__).resolve().parents[2]


def cache_dir():
    """$DIMPLED_CACHE, else data/cache in the repository."""
    return Path(os.environ.get("DIMPLED_CACHE", REPO / "data" / "cache"))


def hash_tensor(t):
    """A short hash of a tensor's values (its bytes on the CPU): identifies images in a cache key."""
    return hashlib.sha1(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:12]


def config_hash(config):
    """sha256 over the JSON of `config` and torch's version (a new torch may compute other numbers). Artifacts
    build their configs with lib.infra.artifacts.Artifact.key, which adds their kind and version."""
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    h.update(torch.__version__.encode())
    return h.hexdigest()[:20]


def save_atomic(obj, path):
    """torch.save to a temporary file beside `path`, fsync, then rename over `path` (lib.infra.files.atomic_write)."""
    with atomic_write(path, "wb", sync=True) as f:
        torch.save(obj, f)


def load_entry(path, key):
    """The entry at `path` if it is whole and was stored under `key`, else None (damaged entries are removed)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(entry, dict) or entry.get("key") != key or "state_dict" not in entry:
            raise ValueError("stored key or layout does not match")
        return entry
    except Exception as err:  # a truncated or foreign file: never load it half-written
        _drop(path, f"cache entry {path} is damaged; rebuilding it", f"{path}: {type(err).__name__}: {err}")
        return None


def discard(kind, key, why, root=None):
    """Remove the entry for `key` (one that must not be read), saying so in one line: '<path>: <why>; rebuilding'."""
    path = entry_path(kind, key, root)
    _drop(path, f"cache entry {path}: {why}; rebuilding it")


def _drop(path, message, detail=None):
    """Remove the entry at `path`, with `message` (one line) as a warning on the page and the terminal, and `detail`
    (the reader's error) in the progress log alone."""
    warnings.warn(message)
    notify(message, detail)
    Path(path).unlink(missing_ok=True)


def _load_quietly(path, key):
    """The entry if it is whole and stored under `key`, else None; reports and removes nothing (the locked
    path does that, so that a damaged entry is handled once, by the writer)."""
    if not path.exists():
        return None
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    return entry if isinstance(entry, dict) and entry.get("key") == key and "state_dict" in entry else None


def _lock_is(fd, lock_path):
    """Whether the open file `fd` is still the lock file at `lock_path` (a releasing holder unlinks it)."""
    try:
        return os.stat(lock_path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


class Busy(RuntimeError):
    """Another process is building this entry now (raised only inside `not_waiting()`)."""


_WAIT = contextvars.ContextVar("wait_for_locks", default=True)  # False inside not_waiting() (this thread only)


@contextmanager
def _waiting(wait):
    token = _WAIT.set(wait)
    try:
        yield
    finally:
        _WAIT.reset(token)


def not_waiting():
    """Inside: a miss whose entry another process is building raises Busy at once, instead of waiting for it (a
    build, once started, waits for what it needs: its work is never thrown away)."""
    return _waiting(False)


@contextmanager
def _locked(path):
    """Hold the exclusive lock of the entry at `path`: <key>.lock, removed again by its holder before it unlocks,
    so no lock file stays beside the entries. A waiter that locked a file its holder had meanwhile removed
    opens the lock path again (the usual flock-and-unlink scheme: at most one holder per path at any time)."""
    lock_path = path.with_suffix(".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if _WAIT.get() else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Busy(f"{path.name}: another process is building it") from None
        except BaseException:
            os.close(fd)
            raise
        if _lock_is(fd, lock_path):
            break
        os.close(fd)
    try:
        yield
    finally:
        lock_path.unlink(missing_ok=True)
        os.close(fd)  # releases the lock


def entry_path(kind, key, root=None):
    """Where the entry `key` of `kind` lives: under `root`, else cache_dir()."""
    return Path(root if root is not None else cache_dir()) / kind / f"{key}.pt"


def lookup(kind, key, root=None):
    """The entry for `key` if the cache holds it whole, else None; builds, writes and removes nothing."""
    return _load_quietly(entry_path(kind, key, root), key)


def cached(kind, key, build, root=None):
    """The entry {"key", "state_dict", "meta"} for `key`, calling `build() -> (state_dict, meta)` on a miss.

    Returns (entry, hit) where hit says whether it came from the cache. root: the cache folder (default
    cache_dir()), e.g. the one a distributed task names, so that a worker writes where the client reads.
    """
    path = entry_path(kind, key, root)
    entry = _load_quietly(path, key)
    if entry is not None:  # a hit: no lock, nothing written
        return entry, True
    with _locked(path):
        entry = load_entry(path, key)
        if entry is not None:
            return entry, True
        with _waiting(True):
            state_dict, meta = build()
        entry = {"key": key, "state_dict": state_dict, "meta": meta}
        save_atomic(entry, path)
        return entry, False
