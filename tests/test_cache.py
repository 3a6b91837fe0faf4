import os

import pytest
import torch

from lib.infra import cache


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


def test_config_hash_depends_on_the_config():
    a = cache.config_hash({"lr": 0.1})
    assert a == cache.config_hash({"lr": 0.1})
    assert a != cache.config_hash({"lr": 0.2})


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
    from lib.infra import files

    monkeypatch.setattr(files.tempfile, "mkstemp", refuse)
    import builtins
    real_open, real_os_open = builtins.open, os.open
    monkeypatch.setattr(builtins, "open", lambda f, mode="r", *a, **k: refuse() if any(c in mode for c in "wax+")
                        else real_open(f, mode, *a, **k))
    monkeypatch.setattr(os, "open", lambda f, flags, *a, **k: refuse() if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
                        else real_os_open(f, flags, *a, **k))
    entry, hit = cache.cached("thing", "abc", build)
    assert hit and len(calls) == 1 and entry["meta"] == {"acc": 0.5}
    assert sorted(p.name for p in (tmp_cache / "thing").iterdir()) == before


def test_damaged_entry_is_reported_to_the_progress_log(tmp_cache, tmp_path, monkeypatch):
    log = tmp_path / "nb.progress.log"
    monkeypatch.setenv("DIMPLED_PROGRESS", str(log))
    build, _ = build_counter()
    cache.cached("thing", "abc", build)
    (tmp_cache / "thing" / "abc.pt").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="damaged") as caught:
        cache.cached("thing", "abc", build)
    path = tmp_cache / "thing" / "abc.pt"
    assert [str(w.message) for w in caught] == [f"cache entry {path} is damaged; rebuilding it"]  # one line, no detail
    lines = log.read_text().splitlines()
    assert f"[warning] cache entry {path} is damaged; rebuilding it" in lines
    detail = [line for line in lines if line.startswith("[detail] ")]
    assert len(detail) == 1 and str(path) in detail[0]  # the reader's error, for the log alone


def test_no_lock_file_stays_beside_the_entries(tmp_cache):
    build, _ = build_counter()
    cache.cached("thing", "abc", build)
    cache.cached("thing", "def", build)
    assert sorted(p.name for p in (tmp_cache / "thing").iterdir()) == ["abc.pt", "def.pt"]


def test_two_processes_that_miss_together_build_once(tmp_cache, tmp_path):
    """The lock still serialises builders although its holder removes the lock file when it is done."""
    import subprocess
    import sys

    script = (f"import time; from lib.infra import cache\n"
              f"def build():\n    open({str(tmp_path / 'built')!r}, 'a').write('x'); time.sleep(1.0)\n"
              f"    return {{}}, {{}}\n"
              f"print(cache.cached('thing', 'same', build)[1])")
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "DIMPLED_CACHE": str(tmp_cache)}) for _ in range(3)]
    hits = sorted(p.communicate()[0].strip() for p in procs)
    assert hits == ["False", "True", "True"] and (tmp_path / "built").read_text() == "x"
    assert sorted(p.name for p in (tmp_cache / "thing").iterdir()) == ["same.pt"]


def test_a_miss_another_process_is_building_is_busy_only_when_not_waiting(tmp_cache):
    """flock locks belong to open files: holding the entry's lock here stands in for another process building it."""
    build, calls = build_counter()
    with cache._locked(cache.entry_path("thing", "abc")):
        with pytest.raises(cache.Busy), cache.not_waiting():
            cache.cached("thing", "abc", build)
        assert calls == []
    assert (
        cache.cached("thing", "abc", build)[1] is False and len(calls) == 1
    )  # the lock is free: built, waited for nothing
    with cache.not_waiting():
        assert cache.cached("thing", "abc", build)[1] is True  # a hit needs no lock


def test_a_build_once_started_waits_for_what_it_needs(tmp_cache):
    """Inside not_waiting, a build that needs another entry being built waits for it rather than throw its work away."""
    import threading

    inner, _ = build_counter()
    release = threading.Event()

    held = threading.Event()

    def holder():
        with cache._locked(cache.entry_path("thing", "inner")):
            held.set()
            release.wait(5)
            cache.save_atomic({"key": "inner", "state_dict": {}, "meta": {"by": "holder"}},
                              cache.entry_path("thing", "inner"))

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    threading.Timer(0.3, release.set).start()

    def outer():
        return {}, {"inner": cache.cached("thing", "inner", inner)[0]["meta"]}

    with cache.not_waiting():
        entry, hit = cache.cached("thing", "outer", outer)
    t.join()
    assert not hit and entry["meta"]["inner"] == {"by": "holder"}


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_written_files_get_the_mode_of_the_umask(tmp_cache, tmp_reports, mask):
    """Entries, results JSON and the index get 0666 minus the umask, as a plain open gives (mkstemp: 0600)."""
    from lib.reporting import index, report

    old = os.umask(mask)
    try:
        cache.cached("thing", "abc", build_counter()[0])
        json_file = report.write_json_atomic({"a": 1}, tmp_reports / "smoke" / "results" / "x.json")
        page = index.build_index("smoke")
        plain = tmp_reports / "plain"
        plain.write_text("")
    finally:
        os.umask(old)
    expected = plain.stat().st_mode & 0o777
    assert expected == 0o666 & ~mask
    for path in (tmp_cache / "thing" / "abc.pt", json_file, page):
        assert path.stat().st_mode & 0o777 == expected, path
