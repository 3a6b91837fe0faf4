"""reports/<profile>/index.html: the answer first, then the claims, then the notebooks behind them.

Order of the page: the title; the answer in sentences and the one figure that carries it (results/05_statistics.json
keys "answer" and "answer_figure", a PNG in results/, embedded so the page works offline and on its own); the
discriminating claims ("discriminating"); every verdict ("verdicts" of any notebook); every notebook with its
status (lib.reporting.state), headline figures, data, device and wall time. Only a notebook whose run finished is shown
as ok; one that is queued, running, failed or interrupted says so, and its old figures are gone (lib.reporting.execute).
"""
import base64
import html
import json
import time
from pathlib import Path

from lib.inference import rules
from lib.reporting import state
from lib.infra.files import atomic_write
from lib.reporting.report import NOTEBOOKS, format_value, reports_dir, results_dir

STATISTICS = "05_statistics"
VERDICT_COLUMNS = ("family", "claim", "dataset", "split", "clip", "statistic", "effect_text", "margin_text",
                   "p_margin_holm", "n", "power", "verdict")
DISCRIMINATING_COLUMNS = ("claim", "dataset", "split", "clip", "effect_text", "margin_text", "p_margin_holm", "n",
                          "verdict")
HEADERS = {"effect_text": "effect [95% CI]", "margin_text": "negligible band", "p_margin_holm": "p (margin, Holm)",
           "n": "N"}

CSS = """body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;line-height:1.4}
table{border-collapse:collapse;width:100%} .scroll{overflow-x:auto;max-width:100%}
td,th{border:1px solid #ccc;padding:6px;vertical-align:top;text-align:left;overflow-wrap:break-word}
ul{margin:0;padding-left:1.2em} img.answer{max-width:100%;height:auto;display:block;margin:1em 0}
.answer p{font-size:1em;margin:0.5em 0} .note{color:#555;font-style:italic}
.v-supported{background:#eef8ee} .v-contradicted{background:#fbeeee} .v-precise-null{background:#f7eef4}
.v-explained-by-dimension-alone{background:#fff6e0}
.v-negligible{background:#f1ecf8} .v-not-testable{background:#eaf3fa} .v-inconclusive{background:#f4f4f4}
.pub{color:#777} .na{color:#a33} .failed,.interrupted{color:#c00;font-weight:bold} .ok{color:#070}
.running,.queued,.stale{color:#a60;font-weight:bold}"""


def _cell(col, val):
    if isinstance(val, bool):  # clip: whether the attacks kept x + delta in [0, 1]
        val = "clipped" if val else "not clipped"
    elif isinstance(val, float) and col == "n":
        val = f"{val:.0f}"
    elif isinstance(val, float):
        val = f"{val:.2g}" if col.startswith("p_") else f"{val:.2f}"
    return f"<td>{html.escape('–' if val is None else str(val))}</td>"


def _table(rows, columns, first=None):
    """Rows (dicts) as an HTML table in its own scrolling container; `first` (header, row -> html) leads."""
    head = "".join(f"<th>{html.escape(HEADERS.get(c, c.replace('_', ' ')))}</th>"
                   for c in ([first[0]] if first else []) + list(columns))
    body = []
    for r in rows:
        css = str(r.get("verdict", "")).replace(" ", "-")
        lead = first[1](r) if first else ""
        body.append(f'<tr class="v-{html.escape(css)}">{lead}' + "".join(_cell(c, r.get(c)) for c in columns) + "</tr>")
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(body)}</table></div>'


def verdict_table(profile):
    """The verdicts of every notebook that wrote some (results JSON key "verdicts"), as an HTML table."""
    rows = []
    for res_path in sorted(results_dir(profile).glob("*.json")):
        res = json.loads(res_path.read_text())
        rows += [{**v, "_nb": res["notebook"]} for v in res.get("verdicts", [])]
    if not rows:
        return (
            "<h2>Verdicts</h2><p class=note>No verdicts yet: the statistics notebook has not run in this profile.</p>"
        )
    link = ("nb", lambda r: f'<td><a href="{html.escape(r["_nb"])}.html">{html.escape(r["_nb"][:2])}</a></td>')
    return "<h2>Verdicts</h2>" + _table(rows, VERDICT_COLUMNS, link) + rules_html()


def rules_html():
    """How a verdict is reached, under the table: each notebook is its own Holm family (named in the table)."""
    items = "".join(f"<li><b>{html.escape(v)}</b>: {html.escape(why)}</li>" for v, why in rules.RULES)
    families = len(QUESTIONS) + 1  # 05's deciding rows, and one family per further question
    return (
        "<p class=note>Each notebook's rows form one Holm family (column <i>family</i>); <i>p (margin, Holm)</i> "
        "tests the hypothesis whose rejection makes a row supported (beyond the negligible band on the predicted "
        "side, or within it for an equivalence); <i>power</i> is that test's at Holm's first-step level α/m, a "
        "lower bound, at the row's N where the effect is the one DMM predicts (not the observed one). Each family "
        f"holds its false-supported rate at 5%; across the {families} families behind the answer the chance of at "
        f"least one false supported row is up to 1 − 0.95^{families} ≈ {1 - 0.95 ** families:.0%} (the deciding rows "
        "of 05 are one family).</p><ul class=note>"
        + items
        + "</ul>"
    )


def _figure(results, name):
    path = Path(results) / Path(str(name)).name  # a file of the results folder, nothing else
    if not path.is_file():
        return f"<p class=note>(figure {html.escape(str(name))} is missing)</p>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img class="answer" alt="the figure that carries the answer" src="data:image/png;base64,{data}">'


QUESTIONS = {  # notebook -> the question its answer paragraph speaks to on the index
    "06_curvature": "Does the decision boundary run flat along the manifold?",
    "07_isometric_autoencoder_defence": "Does projecting onto the manifold defend?",
    "08_known_manifolds": "Does the method see DMM where it is true?",
    "09_replication": "Do the verdicts replicate across training seeds?",
    "10_training_claims": "Do DMM's claims about training hold: learning from mislabelled adversarial images, and "
                          "adversarial training deepening the dimples?",
    "11_model_quality": "Does the answer depend on how well the models are trained?",
}


def _finished_results(profile, name):
    """A notebook's results JSON if its last run finished (lib.reporting.state says ok), else (None, why)."""
    status, detail = state.status(reports_dir(profile), name)
    res_path = results_dir(profile) / f"{name}.json"
    if status != "ok" or not res_path.exists():
        why = {
            "queued": "is queued to run again",
            "running": "is running",
            "failed": f"failed ({detail})",
            "interrupted": "was interrupted",
            "stale": "has results from an unfinished run",
        }.get(status, "has not run")
        return None, why
    return json.loads(res_path.read_text()), ""


def answer_section(profile):
    """The answer in words: 05's (the geometry: the on/off study against random subspaces) with its figure and the
    discriminating claims, then one paragraph per further question (QUESTIONS), then the caveats of scale that
    the notebooks state; a note where a notebook has no finished run."""
    res, why = _finished_results(profile, STATISTICS)
    if res is None:
        return f"<p class=note>The statistics notebook {html.escape(why)}: no answer is shown until it finishes.</p>"
    out = []
    if res.get("answer"):
        out.append(
            '<div class="answer"><h2>The answer</h2><h3>Is the learned manifold special, beyond its '
            "dimension? (notebook 05)</h3>" + "".join(f"<p>{html.escape(s)}</p>" for s in res["answer"]) + "</div>"
        )
    if res.get("answer_figure"):
        out.append(_figure(results_dir(profile), res["answer_figure"]))
    if res.get("discriminating"):
        out.append("<h2>The claims that decide</h2>" + _table(res["discriminating"], DISCRIMINATING_COLUMNS))
    if not out:
        return (
            '<p class=note>The statistics notebook has not run with an answer to show (no "answer" in its results).</p>'
        )
    for name, question in QUESTIONS.items():
        other, why = _finished_results(profile, name)
        text = ("".join(f"<p>{html.escape(s)}</p>" for s in other.get("answer", [])) if other
                else f"<p class=note>Notebook {html.escape(name[:2])} {html.escape(why)}.</p>")
        out.append(
            f'<div class="answer"><h3>{html.escape(question)} (notebook {html.escape(name[:2])})</h3>{text}</div>'
        )
    caveats = [c for py in sorted(NOTEBOOKS.glob("[0-9]*.py"))
               for c in (_finished_results(profile, py.stem)[0] or {}).get("caveats", [])]
    if caveats:
        out.append("<h3>Caveats of scale</h3><ul>" + "".join(f"<li>{html.escape(c)}</li>" for c in caveats) + "</ul>")
    return "\n".join(out)


def _duration(nb_path):
    try:
        return json.loads(nb_path.read_text())["metadata"]["papermill"]["duration"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def notebook_rows(profile):
    root = reports_dir(profile)
    rows = []
    for py in sorted(NOTEBOOKS.glob("[0-9]*.py")):
        name = py.stem
        res_path = results_dir(profile) / f"{name}.json"
        res = json.loads(res_path.read_text()) if res_path.exists() else {}
        status, detail = state.status(root, name)
        figs = "".join(
            f"<li>{html.escape(h['name'])}: <b>{html.escape(format_value(h))}</b>"
            + (f" <span class=note>({html.escape(h['note'])})</span>" if h.get("note") else "")
            + (f" <span class=pub>(published: {html.escape(h['published'])})</span>" if h.get("published") else "")
            + "</li>"
            for h in res.get("headline", [])
        )
        data = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in res.get("data_sources", {}).items())
        data += "".join(f"<li class=na>{html.escape(k)}: not available</li>" for k in res.get("unavailable", {}))
        title = html.escape(res.get("title", name))
        target = f"{name}.html" if status == "ok" else f"{name}.failed.html"
        link = f'<a href="{target}">{title}</a>' if (root / target).exists() else title
        duration = _duration(root / f"{name}.ipynb") if status == "ok" else None
        wall = f"{duration:.0f} s" if duration is not None else "–"
        css = status.replace(" ", "-")
        shown = html.escape(status) + (f"<br><small>{html.escape(detail)}</small>" if detail else "")
        rows.append(f"<tr><td>{link}<br><small>{name}</small></td><td><ul>{figs}</ul></td><td><ul>{data}</ul></td>"
                    f"<td>{html.escape(res.get('device', '–'))}</td><td>{wall}</td><td class={css}>{shown}</td></tr>")
    return rows


def build_index(profile):
    """Write reports/<profile>/index.html (atomically: notebooks running side by side rebuild it)."""
    root = reports_dir(profile)
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Dimpled manifold report ({html.escape(profile)})</title><style>{CSS}</style></head><body>
<h1>Putting the Dimpled Manifold Model to the test</h1>
<p>Profile <b>{html.escape(profile)}</b> · index built {time.strftime('%Y-%m-%d %H:%M:%S')}.
Every figure below was computed by the notebook it links to, in this run; published numbers are shown
for comparison only.</p>
{answer_section(profile)}
{verdict_table(profile)}
<h2>Notebooks</h2>
<div class="scroll"><table><tr><th>notebook</th><th>headline figures</th><th>data</th><th>device</th><th>wall time</th>
<th>status</th></tr>
{''.join(notebook_rows(profile))}</table></div></body></html>"""
    out = root / "index.html"
    with atomic_write(out) as f:
        f.write(page)
    return out
