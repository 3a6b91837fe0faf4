"""What the report folder says about a notebook while and after it runs, so the index never shows a stale answer.

<notebook>.state.json marks a notebook queued, running, failed or interrupted (with the process that marked it
and, after a failure, the error in one line); it is removed when a run succeeds, and the run's fingerprint
(lib.reporting.fingerprint) is saved instead. A mark whose process is gone reads as interrupted. "kept": a run stopped
before computing anything and the last good run was put back (lib.reporting.execute.restore): it reads as ok, with why.
"""
import json
import os
import time
from pathlib import Path


def path_of(root, notebook):
    return Path(root) / f"{notebook}.state.json"


def mark(root, notebook, state, **info):
    from lib.reporting.report import write_json_atomic  # noqa: PLC0415

    return write_json_atomic(
        {"state": state, "pid": os.getpid(), "since": time.time(), **info}, path_of(root, notebook)
    )


def clear(root, notebook):
    path_of(root, notebook).unlink(missing_ok=True)


def settle(root, notebook):
    """For a notebook whose fingerprint matches its last good run again (nothing to run): the page shown is current,
    so a "kept" mark (a later run stopped before computing, then its cause was undone) and that run's failed page go."""
    s = read(root, notebook)
    if s and s["state"] == "kept":
        clear(root, notebook)
        (Path(root) / f"{notebook}.failed.html").unlink(missing_ok=True)


def read(root, notebook):
    try:
        return json.loads(path_of(root, notebook).read_text())
    except (OSError, ValueError):
        return None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def status(root, notebook):
    """(status, detail): status is ok, queued, running, failed, interrupted, stale or not run."""
    s = read(root, notebook)
    if s and s["state"] == "kept":  # lib.reporting.execute.restore: a later run stopped before computing anything
        return "ok", f"last good run shown: {s.get('error', '')}"
    if s:
        if s["state"] in ("queued", "running") and not _alive(s.get("pid", -1)):
            return "interrupted", f"{s['state']} when its run stopped"
        return s["state"], s.get("error", "")
    done = (Path(root) / f"{notebook}.fingerprint.json").exists()
    has_results = (Path(root) / "results" / f"{notebook}.json").exists()
    if done and has_results:
        return "ok", ""
    return ("stale", "results without a finished run recorded") if has_results else ("not run", "")
