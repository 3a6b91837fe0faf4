"""reports/<profile>/index.html, the first page a reader meets, and reports/<profile>/verdicts.html, every verdict.

The index, in order (lib.reporting.front builds its parts from the notebooks' results JSON): the sentence a reader can
quote; the figure that carries it (notebook 05's "answer_figure", a PNG in results/, embedded so the page works offline
and on its own); one grid of the deciding verdicts by data set and split, linked to their rows, with a line of verdict
marks per further question; where the real networks sit on notebook 08's steepness scale (notebook 11); the caveats of
scale and each notebook's answer in full, folded; the notebooks with their status and wall time. verdicts.html: every
verdict row of every notebook, filterable by notebook, data set and verdict (a few lines of inline script: it works
from a file, offline), the rules, and each notebook's headline figures, data, device and wall time. Only a notebook
whose run finished is shown as ok; one that is queued, running, failed or interrupted says so, and its old figures are
gone (lib.reporting.execute).
"""
import base64
import html
import json
import time
from pathlib import Path

from lib.inference import rules
from lib.reporting import front, state
from lib.infra.files import atomic_write
from lib.reporting.report import NOTEBOOKS, format_value, reports_dir, results_dir

STATISTICS = "05_statistics"
VERDICT_COLUMNS = ("family", "claim", "dataset", "split", "clip", "statistic", "effect_text", "margin_text",
                   "p_margin_holm", "n", "power", "verdict")
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
.running,.queued,.stale{color:#a60;font-weight:bold}
p.lead{font-size:1.12em;line-height:1.5} .meta{color:#555;font-size:0.9em}
table.grid{width:auto} table.grid td,table.grid th{text-align:center;padding:4px 10px}
table.grid th.claim{text-align:left}
table.grid a{text-decoration:none;color:inherit} .mark{font-size:1.2em} ul.questions{margin:0.6em 0;line-height:1.7}
details{margin:0.6em 0} summary{cursor:pointer;font-weight:bold} tr:target{outline:3px solid #e69500}
.filters select{margin-right:1em}"""


def _cell(col, val):
    if isinstance(val, bool):  # clip: whether the attacks kept x + delta in [0, 1]
        val = "clipped" if val else "not clipped"
    elif isinstance(val, float) and col == "n":
        val = f"{val:.0f}"
    elif isinstance(val, float):
        val = f"{val:.2g}" if col.startswith("p_") else f"{val:.2f}"
    return f"<td>{html.escape('–' if val is None else str(val))}</td>"


def verdict_rows(profile):
    """Every verdict row of every notebook that wrote some (results JSON key "verdicts"), each with its notebook
    ("_nb") and its anchor ("_id", lib.reporting.front.with_ids)."""
    rows = []
    for res_path in sorted(results_dir(profile).glob("*.json")):
        res = json.loads(res_path.read_text())
        rows += [{**v, "_nb": res["notebook"]} for v in res.get("verdicts", [])]
    return front.with_ids(rows)


def verdict_table(rows):
    """The verdict rows as an HTML table whose rows carry their anchor and what the filters read (data-nb, data-ds,
    data-v), and the rules under it."""
    if not rows:
        return "<p class=note>No verdicts yet: no notebook with verdicts has run in this profile.</p>"
    head = "".join(f"<th>{html.escape(HEADERS.get(c, c.replace('_', ' ')))}</th>" for c in ("nb",) + VERDICT_COLUMNS)
    body = []
    for r in rows:
        v = str(r.get("verdict", ""))
        shown = {**r, "dataset": front.name_of(str(r.get("dataset", ""))), "verdict": front.verdict_words(v)}
        attrs = (f'id="{html.escape(r["_id"])}" class="vrow v-{html.escape(v.replace(" ", "-"))}" '
                 f'data-nb="{html.escape(r["_nb"][:2])}" data-ds="{html.escape(shown["dataset"])}" '
                 f'data-v="{html.escape(v)}"')
        lead = f'<td><a href="{html.escape(r["_nb"])}.html">{html.escape(r["_nb"][:2])}</a></td>'
        cells = "".join(_cell(c, shown.get(c)) if c != "claim" or not r.get("short") else
                        f"<td><b>{html.escape(str(r['short']))}</b><br>{html.escape(str(r.get('claim', '')))}</td>"
                        for c in VERDICT_COLUMNS)  # the row's label (its budget, its seeds) above the claim
        body.append(f"<tr {attrs}>{lead}{cells}</tr>")
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(body)}</table></div>' + rules_html()


FILTER_SCRIPT = """<script>
function applyFilter() {
  var want = {}, shown = 0, rows = document.querySelectorAll('tr.vrow');
  ['nb', 'ds', 'v'].forEach(function (k) { want[k] = document.getElementById('f-' + k).value; });
  rows.forEach(function (tr) {
    var ok = ['nb', 'ds', 'v'].every(function (k) { return !want[k] || tr.dataset[k] === want[k]; });
    tr.style.display = ok ? '' : 'none';
    if (ok) shown++;
  });
  document.getElementById('f-count').textContent = shown + ' of ' + rows.length + ' rows shown';
}
document.addEventListener('DOMContentLoaded', function () {
  var q = new URLSearchParams(window.location.search);
  ['nb', 'ds', 'v'].forEach(function (k) {
    var el = document.getElementById('f-' + k);
    if (q.get(k)) el.value = q.get(k);
    el.addEventListener('change', applyFilter);
  });
  applyFilter();
});
</script>"""


def _filters(rows):
    """The filter controls of verdicts.html: a select per notebook, data set and verdict."""
    def select(key, label, values, words=None):
        options = "".join(f'<option value="{html.escape(v)}">{html.escape((words or {}).get(v, v))}</option>'
                          for v in values)
        return f'<label>{label} <select id="f-{key}"><option value="">all</option>{options}</select></label>'
    nbs = sorted({r["_nb"] for r in rows})
    return ('<p class="filters">' + select("nb", "notebook", [n[:2] for n in nbs], {n[:2]: n for n in nbs})
            + select("ds", "data set", sorted({front.name_of(str(r.get("dataset", ""))) for r in rows}))
            + select("v", "verdict", [v for v in rules.VERDICTS if any(r.get("verdict") == v for r in rows)])
            + '<span id="f-count" class="note"></span></p>')


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


def _figure(results, name, alt="the figure that carries the answer"):
    path = Path(results) / Path(str(name)).name  # a file of the results folder, nothing else
    if not path.is_file():
        return f"<p class=note>(figure {html.escape(str(name))} is missing)</p>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img class="answer" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


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


def answer_section(profile, ids=None):
    """The first screens: the sentence, 05's figure, the grid with a line per further question, the distance to
    DMM; then, folded, the caveats of scale and every notebook's answer in full (05's, then one per QUESTIONS).
    Each notebook's results are read once (``finished``: {notebook: (its results JSON or None, why not)})."""
    finished = {py.stem: _finished_results(profile, py.stem) for py in sorted(NOTEBOOKS.glob("[0-9]*.py"))}
    res, why = finished.get(STATISTICS, (None, "has not run"))
    if res is None:
        return f"<p class=note>The statistics notebook {html.escape(why)}: no answer is shown until it finishes.</p>"
    results = {name: r for name, (r, _) in finished.items()}
    ids = {} if ids is None else ids
    out = [f'<p class="lead">{html.escape(front.sentence(results))}</p>']
    if res.get("answer_figure"):
        out.append(_figure(results_dir(profile), res["answer_figure"]))
    out.append("<h2>The verdicts at a glance</h2>" + front.grid_html(results, ids, QUESTIONS)
               + '<p class=note>Each mark links to its row on <a href="verdicts.html">the verdict page</a>, which '
               "states every test, interval and rule.</p>")
    distance = front.distance_words(results)
    figure = results_dir(profile) / "index_distance.png"
    drawn = front.distance_figure(results, figure)
    out.append("<h2>How far from DMM</h2><p>" + " ".join(html.escape(s) for s in distance)
               + " (Notebook 08 builds worlds whose boundary dimples around a known manifold with steepness s; "
               "notebook 11 reads each real network's effects as the s of the world that would show them.)</p>"
               + (_figure(results_dir(profile), figure.name, "where the real networks sit on the steepness scale")
                  if drawn else ""))
    caveats = [c for r in results.values() for c in (r or {}).get("caveats", [])]
    if caveats:
        out.append(f"<details><summary>Caveats of scale ({len(caveats)})</summary><ul>"
                   + "".join(f"<li>{html.escape(c)}</li>" for c in caveats) + "</ul></details>")
    full = ['<div class="answer"><h3>Is the learned manifold special, beyond its dimension? (notebook 05)</h3>'
            + "".join(f"<p>{html.escape(s)}</p>" for s in res.get("answer", [])) + "</div>"]
    for name, question in QUESTIONS.items():
        other, why = finished.get(name, (None, "has not run"))
        text = ("".join(f"<p>{html.escape(s)}</p>" for s in other.get("answer", [])) if other
                else f"<p class=note>Notebook {html.escape(name[:2])} {html.escape(why)}.</p>")
        full.append(f'<div class="answer"><h3>{html.escape(question)} (notebook {html.escape(name[:2])})</h3>{text}'
                    "</div>")
    out.append("<details><summary>Each question's answer in full</summary>" + "".join(full) + "</details>")
    return "\n".join(out)


def _duration(nb_path):
    try:
        return json.loads(nb_path.read_text())["metadata"]["papermill"]["duration"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def notebook_rows(profile, detailed=True):
    """One table row per notebook: its title (linked to its page where it finished), status and wall time; with
    ``detailed`` also its headline figures, data and device (verdicts.html)."""
    root = reports_dir(profile)
    rows = []
    for py in sorted(NOTEBOOKS.glob("[0-9]*.py")):
        name = py.stem
        res_path = results_dir(profile) / f"{name}.json"
        res = json.loads(res_path.read_text()) if res_path.exists() else {}
        status, detail = state.status(root, name)
        title = html.escape(res.get("title", name))
        target = f"{name}.html" if status == "ok" else f"{name}.failed.html"
        link = f'<a href="{target}">{title}</a>' if (root / target).exists() else title
        duration = _duration(root / f"{name}.ipynb") if status == "ok" else None
        wall = f"{duration:.0f} s" if duration is not None else "–"
        css = status.replace(" ", "-")
        shown = html.escape(status) + (f"<br><small>{html.escape(detail)}</small>" if detail else "")
        if not detailed:
            rows.append(f"<tr><td>{link} <small>{name}</small></td><td class={css}>{shown}</td><td>{wall}</td></tr>")
            continue
        figs = "".join(
            f"<li>{html.escape(h['name'])}: <b>{html.escape(format_value(h))}</b>"
            + (f" <span class=note>({html.escape(h['note'])})</span>" if h.get("note") else "")
            + (f" <span class=pub>(published: {html.escape(h['published'])})</span>" if h.get("published") else "")
            + "</li>"
            for h in res.get("headline", [])
        )
        data = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in res.get("data_sources", {}).items())
        data += "".join(f"<li class=na>{html.escape(k)}: not available</li>" for k in res.get("unavailable", {}))
        rows.append(f"<tr><td>{link}<br><small>{name}</small></td><td><ul>{figs}</ul></td><td><ul>{data}</ul></td>"
                    f"<td>{html.escape(res.get('device', '–'))}</td><td>{wall}</td><td class={css}>{shown}</td></tr>")
    return rows


def _page(profile, title, body, script=""):
    return f"""<!doctype html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} ({html.escape(profile)})</title><style>{CSS}</style>{script}</head><body>
{body}</body></html>"""


def _grid_ids(rows):
    """{(notebook, claim_id, dataset, split, clip): anchor} of the verdict rows, the first where several share it."""
    ids = {}
    for r in rows:
        ids.setdefault((r["_nb"], r.get("claim_id"), r.get("dataset"), r.get("split"), r.get("clip")), r["_id"])
    return ids


def build_verdicts(profile, rows=None):
    """Write reports/<profile>/verdicts.html: every verdict with its filters, the rules, the notebooks in detail."""
    root = reports_dir(profile)
    rows = verdict_rows(profile) if rows is None else rows
    body = (f"<h1>Every verdict</h1><p class=meta>Profile <b>{html.escape(profile)}</b> · built "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')} · <a href=\"index.html\">back to the answer</a>.</p>"
            + (_filters(rows) if rows else "") + "<h2>Verdicts</h2>" + verdict_table(rows)
            + "<h2>Notebooks</h2><div class=\"scroll\"><table><tr><th>notebook</th><th>headline figures</th>"
            "<th>data</th><th>device</th><th>wall time</th><th>status</th></tr>"
            + "".join(notebook_rows(profile)) + "</table></div>")
    out = root / "verdicts.html"
    root.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as f:
        f.write(_page(profile, "Every verdict", body, FILTER_SCRIPT))
    return out


def build_index(profile):
    """Write reports/<profile>/index.html and verdicts.html (atomically: notebooks running side by side rebuild
    them)."""
    root = reports_dir(profile)
    rows = verdict_rows(profile)
    build_verdicts(profile, rows)
    body = f"""<h1>Putting the Dimpled Manifold Model to the test</h1>
{answer_section(profile, ids=_grid_ids(rows))}
<h2>Notebooks</h2>
<p class=meta>Profile <b>{html.escape(profile)}</b> · index built {time.strftime('%Y-%m-%d %H:%M:%S')}. Every number
on these pages was computed by the notebook it links to, in this run; published numbers are shown for comparison only.
<a href="verdicts.html">All {len(rows)} verdicts</a>, filterable, with each notebook's headline figures.</p>
<div class="scroll"><table><tr><th>notebook</th><th>status</th><th>wall time</th></tr>
{''.join(notebook_rows(profile, detailed=False))}</table></div>"""
    out = root / "index.html"
    with atomic_write(out) as f:
        f.write(_page(profile, "Dimpled manifold report", body))
    return out
