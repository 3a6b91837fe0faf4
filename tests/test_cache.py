import os

import pytest
import torch

from lib import cache, models


def build_counter():
    calls = []

    def build():
        calls.append(1)
        return {"w": torch.arange(6.0).view(2, 3)}, {"acc": 0.5}

    return build, calls


def test_round_trip_and_hit(tmp_cache):
    build, calls = build_counter()
    first, hit1 = cache.cached("thing", "abc", build)
    second, hit2 = cache.cached("thing", "abc", build)
    assert (hit1, hit2) == (False, True) and len(calls) == 1
    assert torch.equal(second["state_dict"]["w"], torch.arange(6.0).view(2, 3))
    assert second["meta"] == {"acc": 0.5}
    assert not [p for p in (tmp_cache / "thing").iterdir() if p.suffix == ".tmp"]


def test_truncated_entry_is_rebuilt_not_loaded(tmp_cache):
    build, calls = build_counter()
    cache.cached("thing", "abc", build)
    path = tmp_cache / "thing" / "abc.pt"
    path.write_bytes(path.read_bytes()[: os.path.getsize(path) // 2])
    with pytest.warns(UserWarning, match="damaged"):
        entry, hit = cache.cached("thing", "abc", build)
    assert not hit and len(calls) == 2
    assert torch.equal(entry["state_dict"]["w"], torch.arange(6.0).view(2, 3))
    assert cache.load_entry(path, "abc") is not None  # the rebuilt entry is whole


def test_entry_under_another_key_is_not_trusted(tmp_cache):
    build, calls = build_counter()
    cache.cached("thing", "abc", build)
    (tmp_cache / "thing" / "abc.pt").rename(tmp_cache / "thing" / "xyz.pt")
    with pytest.warns(UserWarning, match="damaged"):
        _, hit = cache.cached("thing", "xyz", build)
    assert not hit and len(calls) == 2


def test_config_hash_depends_on_config_and_code():
    a = cache.config_hash({"lr": 0.1})
    assert a == cache.config_hash({"lr": 0.1})
    assert a != cache.config_hash({"lr": 0.2})
    assert a != cache.config_hash({"lr": 0.1}, [models])


def test_read_only_complete_cache_is_a_hit_without_writing(tmp_cache, monkeypatch):
    """A hit must not lock or write: a cache on a read-only disk (or shared, read-only) stays usable."""
    build, calls = build_counter()
    cache.cached("thing", "abc", build)
    (tmp_cache / "thing" / "abc.lock").unlink(missing_ok=True)
    before = sorted(p.name for p in (tmp_cache / "thing").iterdir())

    def refuse(*args, **kwargs):  # as on a read-only file system (root ignores chmod, so simulate EROFS)
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(cache.fcntl, "flock", refuse)
    monkeypatch.setattr(cache, "save_atomic", refuse)
    monkeypatch.setattr(cache.tempfile, "mkstemp", refuse)
    import builtins
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, mode="r", *a, **k: refuse() if any(c in mode for c in "wax+")
                        else real_open(f, mode, *a, **k))
    entry, hit = cache.cached("thing", "abc", build)
    assert hit and len(calls) == 1 and entry["meta"] == {"acc": 0.5}
    assert sorted(p.name for p in (tmp_cache / "thing").iterdir()) == before


def test_damaged_entry_is_reported_to_the_progress_log(tmp_cache, tmp_path, monkeypatch):
    log = tmp_path / "nb.progress.log"
    monkeypatch.setenv("DIMPLED_PROGRESS", str(log))
    build, _ = build_counter()
    cache.cached("thing", "abc", build)
    (tmp_cache / "thing" / "abc.pt").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="damaged"):
        cache.cached("thing", "abc", build)
    assert "[warning] cache entry" in log.read_text()
