"""Execute one notebook with papermill and render its page, keeping the report folder honest.

Before the kernel starts: the profile's parameters and the data folder are checked (lib.reporting.params,
lib.infra.sources), the notebook's old page, results and fingerprint are set aside (<root>/.last/) and it is marked
running in the index. On success: the page is rendered, the run's fingerprint saved (lib.reporting.fingerprint), the old
run dropped and the mark removed. On failure or interruption: the failed page is rendered (the traceback is there), the
notebook is marked failed in the index at once, and the error is raised; a run that stopped before any of the notebook's
own cells ran (its kernel did not start) puts the last good run back instead, and the index says so.
While it runs, <notebook>.progress.log receives "[cell k/n]" at each code cell, the kernel's progress bars
(lib.infra.runtime.progress) and its warnings for the terminal (lib.infra.runtime.notify).
"""
import html
import json
import os
import tempfile
import time
from pathlib import Path

from lib.infra import sources
from lib.reporting import fingerprint, params, state
from lib.reporting.report import REPO, reports_dir, results_dir

TEMPLATES = Path(__file__).resolve().parent / "templates"
# The kernel's start-up warning "Kernel is running over TCP without encryption" (ipykernel's IPKernelApp logger)
# is noise for a local run: that logger only is raised to ERROR; the notebook's own warnings still show.
KERNEL_ARGS = ["--IPKernelApp.log_level=ERROR"]


def to_ipynb(py_path, ipynb_path):
    """The percent-format notebook as an .ipynb (papermill cannot read the .py)."""
    import jupytext

    nb = jupytext.read(py_path)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    jupytext.write(nb, ipynb_path)
    return ipynb_path


# Code cells of the notebook's own (not its parameters cells) started by the current run: 0 when the run stopped
# before computing anything (the kernel did not start, or a Ctrl-C came first), when the last good run is kept.
_started = {"cells": 0}


def _register_engine():
    """A papermill engine that writes "[cell k/n]" to $DIMPLED_PROGRESS as each code cell starts (and counts the
    cells that compute, in _started)."""
    from papermill.engines import NBClientEngine, papermill_engines

    class ProgressEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
            code = [i for i, c in enumerate(nb_man.nb.cells) if c.cell_type == "code"]
            start = nb_man.cell_start

            def cell_start(cell, cell_index=None, **kw):
                if cell_index in code and os.environ.get("DIMPLED_PROGRESS"):
                    with open(os.environ["DIMPLED_PROGRESS"], "a") as f:
                        f.write(f"\n[cell {code.index(cell_index) + 1}/{len(code)}]\n")
                tags = cell.get("metadata", {}).get("tags", [])
                if cell_index in code and not {"parameters", "injected-parameters"} & set(tags):
                    _started["cells"] += 1
                return start(cell, cell_index, **kw)

            nb_man.cell_start = cell_start
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    papermill_engines.register("dimpled", ProgressEngine)


def one_line(err):
    """An error in one line: for a failing cell, its number and the exception, not papermill's traceback."""
    if getattr(err, "ename", None) == "KeyboardInterrupt" or isinstance(err, KeyboardInterrupt):
        return f"interrupted in cell [{err.exec_count}]" if hasattr(err, "exec_count") else "interrupted (Ctrl-C)"
    if hasattr(err, "ename"):
        first = (str(err.evalue).strip().splitlines() or [""])[0]
        return f"cell [{err.exec_count}] raised {err.ename}" + (f": {first}" if first else "")
    first = (str(err).strip().splitlines() or [""])[0]
    return type(err).__name__ + (f": {first}" if first else "")


# What a finished run leaves in the report folder and a new run sets aside (lib.reporting.execute.invalidate) until it
# either succeeds (then they are dropped) or stops before computing anything (then they are put back).
KEPT = ".last"


def _run_files(root, name):
    return [Path("results") / f"{name}.json", Path(f"{name}.html"), Path(f"{name}.ipynb"),
            fingerprint.path_of(root, name).relative_to(root)]


def invalidate(root, name):
    """Take what a previous run of `name` left out of the report, so nothing stale is shown while it runs again:
    its page, results, executed notebook and fingerprint go to <root>/.last/<name>/ (restore puts them back), its
    failed page is removed."""
    root = Path(root)
    (root / f"{name}.failed.html").unlink(missing_ok=True)
    for rel in _run_files(root, name):
        if (root / rel).exists():
            (root / KEPT / name / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(root / rel, root / KEPT / name / rel)


def discard(root, name):
    """Forget the previous run that invalidate set aside (the new run succeeded, or failed after computing)."""
    import shutil

    shutil.rmtree(Path(root) / KEPT / name, ignore_errors=True)


def restore(root, name, error):
    """Put back the last good run that invalidate set aside, for a run that stopped before computing anything, and
    say so in the index (lib.reporting.state: "kept"). Returns False when there was no finished run to put back."""
    root, kept = Path(root), Path(root) / KEPT / name
    had_run = (kept / fingerprint.path_of(root, name).relative_to(root)).exists()
    if had_run:
        for rel in _run_files(root, name):
            if (kept / rel).exists():  # over what the stopped run left (papermill's first copy of the notebook)
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(kept / rel, root / rel)
        state.mark(root, name, "kept", error=error)
    discard(root, name)
    return had_run


def execute(py_path, profile, extra=None):
    """Run one notebook under `profile` with papermill, then render it; returns the HTML path."""
    import papermill

    from lib.reporting.index import build_index

    py_path = Path(py_path)
    name = py_path.stem
    root = reports_dir(profile)
    declared = params.check(profile)[name]
    values = params.resolve(name, profile, declared, extra)
    sources.check_data_root()
    root.mkdir(parents=True, exist_ok=True)
    fp = fingerprint.fingerprint(py_path, values, root)
    invalidate(root, name)
    state.mark(root, name, "running")
    build_index(profile)
    executed = root / f"{name}.ipynb"
    progress_log = root / f"{name}.progress.log"
    progress_log.write_text("")
    os.environ["DIMPLED_PROGRESS"] = str(progress_log)  # the kernel inherits it: bars go there
    _register_engine()
    _started["cells"] = 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            source = to_ipynb(py_path, Path(tmp) / f"{name}.ipynb")
            papermill.execute_notebook(str(source), str(executed), parameters=values, kernel_name="python3",
                                       cwd=str(REPO), progress_bar=False, engine_name="dimpled",
                                       extra_arguments=KERNEL_ARGS)
    except BaseException as err:
        interrupted = isinstance(err, KeyboardInterrupt) or getattr(err, "ename", "") == "KeyboardInterrupt"
        failed_page = None
        if executed.exists():
            try:
                failed_page = render_html(executed, profile, root / f"{name}.failed.html")
            except Exception:  # the error to report is the notebook's
                pass
        computed = _started["cells"] > 0 or hasattr(err, "ename")  # ename: a cell raised
        if computed or not restore(root, name, f"the run of {time.strftime('%Y-%m-%d %H:%M')} stopped "
                                                        f"before computing anything ({one_line(err)})"):
            discard(root, name)
            state.mark(root, name, "interrupted" if interrupted else "failed", error=one_line(err),
                       page=failed_page.name if failed_page else None)
        build_index(profile)
        err.dimpled_page = failed_page
        raise
    page = render_html(executed, profile, root / f"{name}.html")
    fingerprint.save(root, name, fp)
    discard(root, name)
    state.clear(root, name)
    build_index(profile)
    return page


def _banner(nb, name, profile):
    """A line at the top of the page: profile, device, data sources and wall time of this run."""
    meta = nb.metadata.get("papermill", {})
    res = results_dir(profile) / f"{name}.json"
    info = json.loads(res.read_text()) if res.exists() else {}
    dur = meta.get("duration")
    lines = [f"Profile <b>{html.escape(profile)}</b> · device {html.escape(info.get('device', '?'))} · "
             f"wall time {dur:.0f} s · executed {html.escape(str(meta.get('end_time', '?'))[:19])}"
             if dur is not None else f"Profile <b>{html.escape(profile)}</b> · run did not finish"]
    for ds, src in info.get("data_sources", {}).items():
        lines.append(f"{html.escape(ds)}: {html.escape(src)}")
    for ds, msg in info.get("unavailable", {}).items():
        lines.append(f"<b>{html.escape(ds)}: not available</b> — {html.escape(msg)}")
    return '<div class="dimpled-banner">' + "<br>".join(lines) + "</div>"


def render_html(ipynb_path, profile, out):
    """HTML of an executed notebook: code folded, figures embedded, a banner with the run's facts."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(ipynb_path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(_banner(nb, Path(ipynb_path).stem, profile)))
    exporter = HTMLExporter(template_name="folded", extra_template_basedirs=[str(TEMPLATES)])
    body, _ = exporter.from_notebook_node(nb)
    Path(out).write_text(body)
    return Path(out)
