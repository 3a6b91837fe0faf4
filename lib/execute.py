"""Execute one notebook with papermill and render its page, keeping the report folder honest.

Before the kernel starts: the profile's parameters are checked (lib.params), the notebook's old page, results
and fingerprint are removed and it is marked running in the index. On success: the page is rendered, the run's
fingerprint saved (lib.fingerprint) and the mark removed. On failure or interruption: the failed page is rendered
(the traceback is there), the notebook is marked failed in the index at once, and the error is raised.
While it runs, <notebook>.progress.log receives "[cell k/n]" at each code cell, the kernel's progress bars
(lib.runtime.progress) and its warnings for the terminal (lib.runtime.notify).
"""
import html
import json
import os
import tempfile
from pathlib import Path

from lib import fingerprint, params, sources, state
from lib.report import REPO, reports_dir, results_dir

TEMPLATES = Path(__file__).resolve().parent / "templates"
# The kernel's start-up warning "Kernel is running over TCP without encryption" (ipykernel's IPKernelApp logger)
# is noise for a local run: that logger only is raised to ERROR; the notebook's own warnings still show.
KERNEL_ARGS = ["--IPKernelApp.log_level=ERROR"]


def to_ipynb(py_path, ipynb_path):
    """The percent-format notebook as an .ipynb (papermill cannot read the .py)."""
    import jupytext

    nb = jupytext.read(py_path)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    jupytext.write(nb, ipynb_path)
    return ipynb_path


def _register_engine():
    """A papermill engine that writes "[cell k/n]" to $DIMPLED_PROGRESS as each code cell starts."""
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
                return start(cell, cell_index, **kw)

            nb_man.cell_start = cell_start
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    papermill_engines.register("dimpled", ProgressEngine)


def one_line(err):
    """An error in one line: for a failing cell, its number and the exception, not papermill's traceback."""
    if hasattr(err, "ename"):
        first = (str(err.evalue).strip().splitlines() or [""])[0]
        return f"cell [{err.exec_count}] raised {err.ename}: {first}"
    return f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"


def invalidate(root, name):
    """Remove what a previous run of `name` left, so nothing stale is shown while it runs again."""
    root = Path(root)
    for path in (root / "results" / f"{name}.json", root / f"{name}.html", root / f"{name}.failed.html",
                 fingerprint.path_of(root, name)):
        path.unlink(missing_ok=True)


def execute(py_path, profile, extra=None):
    """Run one notebook under `profile` with papermill, then render it; returns the HTML path."""
    import papermill

    from lib.index import build_index

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
        state.mark(root, name, "interrupted" if interrupted else "failed", error=one_line(err),
                   page=failed_page.name if failed_page else None)
        build_index(profile)
        err.dimpled_page = failed_page
        raise
    page = render_html(executed, profile, root / f"{name}.html")
    fingerprint.save(root, name, fp)
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
