"""`make report`: check the parameters, run exactly the notebooks whose fingerprint changed, say why, rebuild the index.

    python -m lib.reporting make --profile quick [-j 2]    # what `make report` runs
    python -m lib.reporting run notebooks/03_on_off_manifold_attacks.py --profile smoke
    python -m lib.reporting index --profile quick

Every notebook's parameters are checked first (lib.reporting.params): a bad file stops everything before any kernel
starts, with one line. A notebook is stale when its fingerprint (lib.reporting.fingerprint) differs from the one its
last successful run recorded, when it has none (never run, failed, interrupted), or when a notebook it reads (UPSTREAM)
is stale. Stale notebooks are marked queued at once (their old figures leave the index, set aside:
lib.reporting.execute.invalidate; one that never starts, or stops before computing anything, gets them back), then run
in order, up to -j at a time, each in its own process (`python -m lib.reporting run ... --quiet`, output in
<notebook>.run.log) while the terminal shows their progress (lib.reporting.progress). With nothing stale it only
rebuilds the index.
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from lib.infra import machine, sources
from lib.infra.names import JOBS_ENV
from lib.reporting import fingerprint, params, state
from lib.reporting.execute import invalidate, restore
from lib.reporting.index import build_index
from lib.reporting.progress import Live
from lib.reporting.report import reports_dir


# Bad input, refused with one line before anything is queued: the parameter file, the data folder.
REFUSED = (params.ParameterError, sources.DataFolderError)


# Notebooks that load the models another notebook trains (through the cache: lib.learn.session.ModelSettings). While
# that notebook is queued or running they are not started, so that a free core goes to a notebook that can work
# instead of a kernel that sits on the model's cache lock (measured on a cold run: 03 waited 6 minutes for 02's
# MNIST autoencoder while a core stood idle). Scheduling only: no fingerprint depends on it, and a notebook whose
# model's trainer failed still runs (it trains the model itself). 08 trains its own models; 09 trains its extra
# seeds before it loads 01 and 02's pair (lib.studies.manifold.replication.seed_models), so it fills that time.
MODELS_FROM = {
    **{nb: ("01_classifiers", "02_autoencoders") for nb in (
        "03_on_off_manifold_attacks", "04_random_subspace_control", "06_curvature", "07_isometric_autoencoder_defence",
        "11_model_quality")},
    "10_training_claims": ("01_classifiers", "02_autoencoders", "09_replication"),  # 09 trains its judge (seed + 1)
}


def waits_for_models(name, todo, running):
    """Whether `name` should not start yet: a notebook whose models it loads is still queued or running."""
    return any(m in todo or m in running for m in MODELS_FROM.get(name, ()))


def plan(profile, declared=None):
    """{notebook: [reasons it must run]} in order; an empty list: up to date. Refuses (REFUSED) a bad parameter
    file or a $DIMPLED_DATA that does not exist."""
    declared = declared or params.check(profile)
    sources.check_data_root()
    root = reports_dir(profile)
    facts = root.parent / ".code-facts.json"  # beside every profile's folder: the code is the same
    fingerprint.load_facts(facts)
    out = {}
    for path in params.notebook_paths():
        name = path.stem
        fp = fingerprint.fingerprint(path, params.resolve(name, profile, declared[name]), root)
        old = fingerprint.load(root, name)
        why = fingerprint.reasons(old, fp)
        if old is None:
            status, detail = state.status(root, name)
            why = {
                "failed": [f"last run failed ({detail})" if detail else "last run failed"],
                "interrupted": ["last run was interrupted"],
                "queued": ["queued by a run that did not finish"],
                "running": ["marked running by another process"],
            }.get(status, ["never run" if status == "not run" else "no finished run recorded"])
        why += [f"{up} runs again" for up in fingerprint.UPSTREAM.get(name, ()) if out.get(up)]
        out[name] = why
    fingerprint.save_facts(facts)
    return out


def describe(name, why, most=4):
    more = f"; and {len(why) - most} more" if len(why) > most else ""
    return f"{name}: {'; '.join(why[:most])}{more}"


def _spawn(path, profile, root, jobs=1):
    """Run one notebook in its own process; its kernel takes 1/jobs of the cores (lib.infra.runtime.threads_for)."""
    (root / f"{path.stem}.progress.log").write_text("")  # not the last run's cells
    log = open(root / f"{path.stem}.run.log", "w")
    cmd = [sys.executable, "-m", "lib.reporting", "run", str(path), "--profile", profile, "--quiet"]
    env = {**os.environ, JOBS_ENV: str(jobs)}
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=params.REPO, env=env), log


def _last_line(path):
    lines = [ln for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def make(profile, jobs=1, out=None):
    """Bring reports/<profile> up to date; returns the exit status (0: every notebook ok)."""
    out = out or sys.stderr
    started = time.time()
    planned, root = plan(profile), reports_dir(profile)
    for name in [n for n, why in planned.items() if not why]:
        state.settle(root, name)
    todo = {n: why for n, why in planned.items() if why}
    if not todo:
        index = build_index(profile)
        print(f"Up to date: nothing changed since the last run ({time.time() - started:.1f} s).\nReport: {index}",
              file=out)
        return 0
    for name, why in todo.items():
        print(describe(name, why), file=out)
        invalidate(root, name)
        state.mark(root, name, "queued", error="; ".join(why))
    build_index(profile)
    paths = {p.stem: p for p in params.notebook_paths()}
    running, failed, done = {}, {}, set()
    with Live(out) as live:
        try:
            while todo or running:
                for name in list(todo):
                    ups = [u for u in fingerprint.UPSTREAM.get(name, ()) if u in todo or u in running or u in failed]
                    blocked = [u for u in ups if u in failed]
                    if blocked:
                        failed[name] = f"not run: {', '.join(blocked)} failed"
                        if not restore(root, name, failed[name] + " (the last good run is kept)"):
                            state.mark(root, name, "failed", error=failed[name])
                        live.say(f"{name}: {failed[name]}")
                        del todo[name]
                    elif not ups and not waits_for_models(name, todo, running) and len(running) < jobs:
                        proc, log = _spawn(paths[name], profile, root, jobs)
                        running[name] = (proc, log, time.time())
                        live.add(name, root / f"{name}.progress.log")
                        del todo[name]
                for name, (proc, log, t0) in list(running.items()):
                    if proc.poll() is None:
                        continue
                    log.close()
                    live.remove(name)
                    del running[name]
                    took = time.time() - t0
                    if proc.returncode == 0:
                        done.add(name)
                        live.say(f"{name}: done in {took:.0f} s")
                    else:
                        failed[name] = _last_line(root / f"{name}.run.log")
                        live.say(f"FAILED after {took:.0f} s: {failed[name]}")
                time.sleep(0.2)
        except KeyboardInterrupt:
            for name, (proc, log, _) in running.items():
                try:
                    proc.wait(timeout=20)  # it got the same Ctrl-C: it marks itself interrupted
                except subprocess.TimeoutExpired:
                    proc.terminate()
                    state.mark(root, name, "interrupted", error="stopped by Ctrl-C")
            for name in todo:
                if not restore(root, name, "not started: stopped by Ctrl-C (the last good run is kept)"):
                    state.mark(root, name, "interrupted", error="not started: stopped by Ctrl-C")
            build_index(profile)
            print(
                f"\nInterrupted: the unfinished notebooks run again next time.\nReport: {root / 'index.html'}", file=out
            )
            return 130
    index = build_index(profile)
    took = time.time() - started
    print(f"{len(done)} notebook(s) ran, {len(failed)} failed ({took:.0f} s).\nReport: {index}", file=out)
    return 1 if failed else 0


def run_one(path, profile, quiet=False, out=None):
    """`python -m lib.reporting run`: one notebook, its progress live unless quiet; errors in one line."""
    from lib.reporting.execute import execute

    out = out or sys.stderr
    name = Path(path).stem
    live = None
    if not quiet:
        live = Live(out).__enter__()
        live.add(name, reports_dir(profile) / f"{name}.progress.log")
    try:
        page = execute(path, profile)
    except REFUSED:
        raise
    except Exception as err:
        from lib.reporting.execute import one_line

        page = getattr(err, "dimpled_page", None)
        print(f"{name} failed: {one_line(err)}" + (f" (traceback: {page})" if page else ""), file=out)
        return 1
    finally:
        if live:
            live.__exit__(None, None, None)
    print(page)
    return 0


def _jobs(value):
    """-j's value: "auto" or an integer >= 1."""
    if value == "auto":
        return value
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"-j takes an integer >= 1 or auto; got {value!r}")
    return int(value)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m lib.reporting", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make", help="run the notebooks whose fingerprint changed, then build the index")
    mk.add_argument("--profile", default="quick")
    mk.add_argument("-j", "--jobs", type=_jobs, default="auto",
                    help="notebooks run at once (05 waits for 03 and 04); auto: the cores this process may use, at "
                         "most OMP_NUM_THREADS, memory permitting (lib.infra.machine.auto_jobs)")
    mk.add_argument("--dry-run", action="store_true", help="say what would run and why; run nothing")
    run = sub.add_parser("run", help="execute one notebook and render it")
    run.add_argument("notebook", type=Path)
    run.add_argument("--profile", default="quick")
    run.add_argument("--quiet", action="store_true", help="no live progress (make report shows it)")
    idx = sub.add_parser("index", help="build index.html from the results")
    idx.add_argument("--profile", default="quick")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "make":
            if args.dry_run:
                stale = {n: why for n, why in plan(args.profile).items() if why}
                print("\n".join(describe(n, why) for n, why in stale.items()) or "Up to date: nothing to run.")
                print(f"Report: {reports_dir(args.profile) / 'index.html'}")
                return 0
            jobs = machine.auto_jobs() if args.jobs == "auto" else args.jobs
            return make(args.profile, jobs)
        if args.cmd == "run":
            return run_one(args.notebook, args.profile, args.quiet)
        params.profile_path(args.profile)
        print(build_index(args.profile))
        return 0
    except REFUSED as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
