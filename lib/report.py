"""Execute the notebooks with papermill and render the HTML report.

    python -m lib.report run notebooks/01_classifiers.py --profile quick   # one notebook -> HTML
    python -m lib.report index --profile quick                             # reports/quick/index.html

A notebook's parameters are its `parameters` cell (the quick defaults) overridden by
notebooks/params/<profile>.yaml: the `all` section (settings shared by several notebooks, such as
the models' training settings, applied to each notebook that declares them), then the section named
after the notebook (every key of which the notebook must declare).
Each notebook writes results/<notebook>.json with `write_results`; the index reads those files
and the executed notebooks' papermill metadata (wall time), nothing else.

Results JSON: {"notebook", "title", "profile", "device", "wall_seconds", "data_sources": {dataset: text},
"unavailable": {dataset: message}, "headline": [{"name", "value", "unit", "published"}], ...details}.
"""
import argparse
import html
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
TEMPLATES = Path(__file__).resolve().parent / "templates"


def reports_dir(profile):
    """$DIMPLED_REPORTS/<profile>, else reports/<profile> in the repository."""
    return Path(os.environ.get("DIMPLED_REPORTS", REPO / "reports")) / profile


def results_dir(profile):
    return reports_dir(profile) / "results"


def _plain(obj):
    """JSON-safe: NaN becomes null, infinities the strings "inf" / "-inf", numpy scalars plain numbers."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and math.isinf(obj):
        return "inf" if obj > 0 else "-inf"  # e.g. a median ratio where most attacks failed
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def write_json_atomic(obj, path):
    obj = _plain(obj)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=1, allow_nan=False)
    os.replace(tmp, path)
    return path


def write_results(run, title, headline, data_sources=None, unavailable=None, **details):
    """Write results/<notebook>.json for the index: the run's headline figures and where its data came from."""
    payload = {"notebook": run.notebook, "title": title, "profile": run.profile, "device": str(run.device),
               "seed": run.seed, "wall_seconds": run.elapsed(), "data_sources": data_sources or {},
               "unavailable": unavailable or {}, "headline": headline, **details}
    return write_json_atomic(payload, results_dir(run.profile) / f"{run.notebook}.json")


def headline(name, value, unit="", published=""):
    """One headline figure: unit '%' shows value as a percentage; published is the reference, in words."""
    return {"name": name, "value": value, "unit": unit, "published": published}


def format_value(h):
    v = h["value"]
    if v is None:
        return "–"
    if isinstance(v, str):  # "inf" / "-inf"
        return {"inf": "∞", "-inf": "−∞"}.get(v, v)
    return f"{100 * v:.2f}%" if h["unit"] == "%" else f"{v:.4g} {h['unit']}".strip()


def parameters(notebook, profile, declared=None):
    """The papermill parameters of `notebook` (a stem such as '01_classifiers') under `profile`.

    With `declared` (the notebook's parameter names), keys of `all` it does not declare are left out.
    """
    path = NOTEBOOKS / "params" / f"{profile}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in (NOTEBOOKS / "params").glob("*.yaml"))
        raise ValueError(f"profile must be one of {', '.join(known)}; got {profile!r}")
    table = yaml.safe_load(path.read_text()) or {}
    shared = {k: v for k, v in (table.get("all") or {}).items() if declared is None or k in declared}
    return {**shared, **(table.get(notebook) or {}), "profile": profile}


def to_ipynb(py_path, ipynb_path):
    """The percent-format notebook as an .ipynb (papermill cannot read the .py)."""
    import jupytext

    nb = jupytext.read(py_path)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    jupytext.write(nb, ipynb_path)
    return ipynb_path


def execute(py_path, profile, out_dir=None, extra=None):
    """Run one notebook under `profile` with papermill, then render it; returns the HTML path.

    A failing notebook is rendered as <name>.failed.html (the error shows in the page) and the
    error is raised; its stale results JSON is removed first, so the index cannot show old figures.
    """
    import papermill

    py_path = Path(py_path)
    name = py_path.stem
    out_dir = Path(out_dir) if out_dir is not None else reports_dir(profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    (results_dir(profile) / f"{name}.json").unlink(missing_ok=True)
    (out_dir / f"{name}.failed.html").unlink(missing_ok=True)
    executed = out_dir / f"{name}.ipynb"
    with tempfile.TemporaryDirectory() as tmp:
        source = to_ipynb(py_path, Path(tmp) / f"{name}.ipynb")
        declared = papermill.inspect_notebook(str(source))
        params = {**parameters(name, profile, declared), **(extra or {})}
        unknown = sorted(set(params) - set(declared))
        if unknown:
            raise ValueError(f"{name}: unknown parameter(s) {unknown} in params/{profile}.yaml; "
                             f"the notebook declares {sorted(declared)}")
        progress_log = out_dir / f"{name}.progress.log"
        progress_log.write_text("")
        os.environ["DIMPLED_PROGRESS"] = str(progress_log)  # the kernel inherits it: bars go there
        print(f"{name}: running (progress: tail -f {progress_log})", file=sys.stderr)
        try:
            papermill.execute_notebook(str(source), str(executed), parameters=params, kernel_name="python3",
                                       cwd=str(REPO), progress_bar=False)
        except Exception:
            if executed.exists():
                print(f"{name} failed: see {render_html(executed, profile, out_dir / f'{name}.failed.html')}",
                      file=sys.stderr)
            raise
    return render_html(executed, profile, out_dir / f"{name}.html")


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


VERDICT_COLUMNS = ("claim", "dataset", "split", "statistic", "effect_text", "p_holm", "n", "power", "verdict")


def verdict_table(root, profile):
    """The verdicts of every notebook that wrote some (results JSON key "verdicts"), as an HTML table."""
    rows = []
    for res_path in sorted(results_dir(profile).glob("*.json")):
        res = json.loads(res_path.read_text())
        for v in res.get("verdicts", []):
            cells = []
            for col in VERDICT_COLUMNS:
                val = v.get(col)
                if isinstance(val, float):
                    val = f"{val:.2g}" if col == "p_holm" else f"{val:.2f}"
                cells.append(f"<td>{html.escape('–' if val is None else str(val))}</td>")
            css = str(v.get("verdict", "")).replace(" ", "-")
            rows.append(f'<tr class="v-{css}"><td><a href="{res["notebook"]}.html">{res["notebook"][:2]}</a></td>'
                        + "".join(cells) + "</tr>")
    if not rows:
        return "<p><i>No verdicts yet: the statistics notebook has not run in this profile.</i></p>"
    head = "".join(f"<th>{c.replace('_', ' ')}</th>" for c in ("nb",) + VERDICT_COLUMNS)
    return f"<h2>Verdicts</h2><table><tr>{head}</tr>{''.join(rows)}</table>"


def build_index(profile):
    """reports/<profile>/index.html: every notebook with its headline figures, data, wall time and a link."""
    import nbformat

    root = reports_dir(profile)
    rows = []
    for py in sorted(NOTEBOOKS.glob("[0-9]*.py")):
        name = py.stem
        res_path, nb_path = results_dir(profile) / f"{name}.json", root / f"{name}.ipynb"
        res = json.loads(res_path.read_text()) if res_path.exists() else {}
        duration = None
        if nb_path.exists():
            duration = nbformat.read(nb_path, as_version=4).metadata.get("papermill", {}).get("duration")
        failed = (root / f"{name}.failed.html").exists()
        status = "failed" if failed else "ok" if res else "not run"
        figs = "".join(f"<li>{html.escape(h['name'])}: <b>{format_value(h)}</b>"
                       + (f" <span class=pub>(published: {html.escape(h['published'])})</span>" if h.get("published") else "")
                       + "</li>" for h in res.get("headline", []))
        data = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in res.get("data_sources", {}).items())
        data += "".join(f"<li class=na>{html.escape(k)}: not available</li>" for k in res.get("unavailable", {}))
        title = html.escape(res.get("title", name))
        target = f"{name}.failed.html" if failed else f"{name}.html"
        link = f'<a href="{target}">{title}</a>' if (root / target).exists() else title
        wall = f"{duration:.0f} s" if duration is not None else "–"
        rows.append(f"<tr><td>{link}<br><small>{name}</small></td><td><ul>{figs}</ul></td><td><ul>{data}</ul></td>"
                    f"<td>{html.escape(res.get('device', '–'))}</td><td>{wall}</td><td class={status}>{status}</td></tr>")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Dimpled manifold report ({profile})</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto;}} table{{border-collapse:collapse;width:100%}}
td,th{{border:1px solid #ccc;padding:6px;vertical-align:top;text-align:left}} ul{{margin:0;padding-left:1.2em}}
.v-supported{{background:#eef8ee}} .v-not-supported{{background:#fbeeee}}
.v-explained-by-dimension-alone{{background:#fff6e0}} .pub{{color:#777}} .na{{color:#a33}} .failed{{color:#c00;font-weight:bold}} .ok{{color:#070}}</style></head><body>
<h1>Putting the Dimpled Manifold Model to the test</h1>
<p>Profile <b>{html.escape(profile)}</b> · index built {time.strftime('%Y-%m-%d %H:%M:%S')}.
Every figure below was computed by the notebook it links to, in this run; published numbers are shown
for comparison only.</p>
{verdict_table(root, profile)}
<h2>Notebooks</h2>
<table><tr><th>notebook</th><th>headline figures</th><th>data</th><th>device</th><th>wall time</th><th>status</th></tr>
{''.join(rows)}</table></body></html>"""
    out = root / "index.html"
    root.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m lib.report", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="execute one notebook and render it")
    run.add_argument("notebook", type=Path)
    run.add_argument("--profile", default="quick")
    idx = sub.add_parser("index", help="build index.html from the results")
    idx.add_argument("--profile", default="quick")
    args = ap.parse_args(argv)
    if args.cmd == "run":
        print(execute(args.notebook, args.profile))
    else:
        print(build_index(args.profile))


if __name__ == "__main__":
    sys.exit(main())
