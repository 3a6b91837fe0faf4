"""The index's first screens (lib.reporting.index), built from the notebooks' results JSON and nothing else: the
sentence a reader can quote, the grid of the deciding verdicts with a line per further question, and where the real
networks sit on notebook 08's steepness scale.

Light on purpose (no torch, no scipy): the index is rebuilt after every notebook. The distance figure is drawn with
matplotlib from the numbers notebooks 08 ("power_curve") and 11 ("distance") wrote.
"""
from __future__ import annotations

import hashlib
import html
import json
import re
from collections import Counter
from pathlib import Path

from lib.inference.rules import COLOURS, Verdict
from lib.infra.files import atomic_write
from lib.infra.names import DATASET_NAMES

STATISTICS, KNOWN, DEFENCE, SEEDS, QUALITY = ("05_statistics", "08_known_manifolds", "07_isometric_autoencoder_defence",
                                              "09_replication", "11_model_quality")
AUTOATTACK_CHECK = "5 our PGD never below AutoAttack"  # notebook 07's checklist row: our attacks against the oracle
# What DMM predicts that the dimension alone does not (notebook 05's deciding claims), in words.
PREDICTION = ("DMM predicts that adversarial perturbations favour the learned data manifold beyond what its dimension "
              "alone gives (a larger on/off gap than a random subspace of the same dimension, less of the loss "
              "gradient there, on-manifold perturbations that look like the target class)")
WORDS = {Verdict.CONTRADICTED: "contradicted (the effect points the other way)",
         Verdict.PRECISE_NULL: "a precise null (no effect, measured precisely)",
         Verdict.DIMENSION: "explained by dimension alone"}


def name_of(dataset: str) -> str:
    """A data set as a reader writes it (MNIST, Fashion-MNIST); anything else as it is."""
    return DATASET_NAMES.get(dataset, dataset)


def verdict_words(verdict: str) -> str:
    """A verdict with what it means where the word alone is ambiguous ("contradicted (the effect points the other
    way)")."""
    return WORDS.get(verdict, verdict)


def mark(verdict: str, count: int | None = None) -> str:
    """A coloured mark for a verdict (with a count before the word where given), as HTML."""
    colour = COLOURS.get(verdict, "#888888")
    text = f"{count} {verdict}" if count is not None else verdict
    return (f'<span class="mark" style="color:{colour}" title="{html.escape(verdict)}">&#9679;</span>'
            f"&nbsp;{html.escape(text)}")


def dataset_order(dataset: str) -> int:
    """Where a data set comes on the pages: the order of DATASET_NAMES (MNIST first), unknown ones last."""
    return list(DATASET_NAMES).index(dataset) if dataset in DATASET_NAMES else len(DATASET_NAMES)


def slug(*parts) -> str:
    return re.sub(r"[^a-z0-9]+", "-", "-".join(str(p) for p in parts).lower()).strip("-")


def with_ids(rows: list[dict]) -> list[dict]:
    """Every verdict row with a stable anchor id "v-..." (notebook, claim, data set, split, clip; a counter where
    those repeat): the grid's links and verdicts.html's rows agree on it."""
    seen, out = Counter(), []
    for r in rows:
        base = slug("v", r.get("_nb", "")[:2], r.get("claim_id", ""), r.get("dataset", ""), r.get("split", ""),
                    {True: "clipped", False: "unclipped"}.get(r.get("clip"), ""), r.get("eps", ""))
        seen[base] += 1
        out.append({**r, "_id": base if seen[base] == 1 else f"{base}-{seen[base]}"})
    return out


# ---------------------------------------------------------------- the deciding rows

def deciding_rows(res05: dict | None) -> list[dict]:
    """Notebook 05's deciding rows, one per claim and data set: the test split, attacks clipped to the image box where
    both were run (the report's main condition)."""
    rows = [r for r in (res05 or {}).get("discriminating", []) if r.get("split") == "test"]
    picked = {}
    for r in rows:
        key = (r["claim_id"], r["dataset"])
        if key not in picked or (r.get("clip") is True and picked[key].get("clip") is not True):
            picked[key] = r
    return list(picked.values())


def _summary(verdicts: list[str]) -> str:
    counts = Counter(verdicts)
    n = len(verdicts)
    if len(counts) == 1:
        v = next(iter(counts))
        words = verdict_words(v)
        return f"all {n} deciding claims are {words}" if n > 1 else f"the deciding claim is {words}"
    parts = ", ".join(f"{c} {verdict_words(v)}" for v, c in counts.most_common())
    return f"of the {n} deciding claims, {parts}"


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def sentence(results: dict) -> str:
    """The sentence (two at most) a reader can quote: what DMM predicts that dimension alone does not, what the
    report finds on each real data set (notebook 05's deciding verdicts), and how sure (09: replication over training
    seeds; 08: the method finds DMM where it is built in; 07: our attacks against AutoAttack). Built from
    ``results`` ({notebook: its results JSON, or None where it has not finished}); nothing in it is fixed text
    about an outcome."""
    rows = deciding_rows(results.get(STATISTICS))
    if not rows:
        return "No answer yet: notebook 05 (the deciding claims) has not finished in this profile."
    by_ds = {}
    for r in rows:
        by_ds.setdefault(r["dataset"], []).append(r["verdict"])
    groups = {}
    for ds, vs in sorted(by_ds.items(), key=lambda kv: dataset_order(kv[0])):
        groups.setdefault(_summary(vs), []).append(name_of(ds))
    found = "; ".join(f"on {_join(names)} {summary}" for summary, names in groups.items())
    first = f"{PREDICTION}; {found}."
    sure = [c for c in (_replication(results, rows), _positive_control(results), _attack_strength(results)) if c]
    return first + (" How sure: " + "; ".join(sure) + "." if sure else "")


def _replication(results, rows) -> str:
    res = results.get(SEEDS)
    if res is None:
        return "replication over training seeds not yet run (notebook 09)"
    pooled = {(r["claim_id"], r["dataset"]): r["verdict"] for r in res.get("verdicts", []) if r.get("discriminating")}
    both = [r for r in rows if (r["claim_id"], r["dataset"]) in pooled]
    pairs = [(pooled[r["claim_id"], r["dataset"]], r["verdict"]) for r in both]
    if not pairs:
        return "no deciding claim was replicated over training seeds (notebook 09 pooled none)"
    seeds = len(res.get("seeds", [])) or "several"
    agree = sum(a == b for a, b in pairs)
    sets = _join(sorted({name_of(r["dataset"]) for r in both}))
    if agree == len(pairs):
        return (f"the verdicts replicate over {seeds} training seeds ({sets}: {agree} of {len(pairs)} pooled, "
                "notebook 09)")
    return (f"over {seeds} training seeds only {agree} of {len(pairs)} deciding verdicts replicate ({sets}, "
            "notebook 09)")


def _positive_control(results) -> str:
    res = results.get(KNOWN)
    if res is None:
        return "whether the method finds DMM where it is built in is not yet known (notebook 08)"
    turning = [t for t in res.get("turning_points", []) if t.get("claim_id") in ("3", "4")]
    s = [t.get("s measured") for t in turning]
    fp = [f for f in res.get("false_positives", []) if f.get("claim_id") in ("3", "4")]  # nulls: flat or at margin
    false = sum(int(f.get("supported", 0)) for f in fp)
    worlds = sum(int(f.get("worlds", 0)) for f in fp)
    fp_text = (f" and never where it is not ({false} of {worlds} null worlds)" if worlds and not false else
               f", but also in {false} of {worlds} null worlds" if worlds else "")
    if turning and all(isinstance(v, (int, float)) and v == v for v in s):
        return (f"the same method finds DMM where it is built in (claims 3 and 4 supported from steepness "
                f"s = {max(s):g}){fp_text}, notebook 08")
    return f"the method did not find DMM in every world where it is built in (notebook 08){fp_text}"


def _attack_strength(results) -> str:
    res = results.get(DEFENCE)
    if res is None:
        return "the attacks' strength against AutoAttack is not yet checked (notebook 07)"
    checks = [c for c in res.get("checklist", []) if c.get("check") == AUTOATTACK_CHECK]
    if not checks:
        return ""
    passed = sum(bool(c.get("pass")) for c in checks)
    if passed == len(checks):
        return f"its attacks are as strong as AutoAttack ({passed} of {len(checks)} comparisons, notebook 07)"
    return f"its attacks are weaker than AutoAttack in {len(checks) - passed} of {len(checks)} comparisons, notebook 07"


# ---------------------------------------------------------------- the grid

def _effect(row) -> str:
    return str(row.get("effect_text", "–")).replace(" (95% CI)", "").replace(" (90% CI)", "")


def grid_html(results: dict, ids: dict, questions: dict) -> str:
    """The deciding claims (rows) by data set and split (columns), each cell the verdict's mark with its effect,
    linked to its row on verdicts.html (``ids``: {(notebook, claim_id, dataset, split, clip): anchor}); then a line
    per further question (``questions``: {notebook: question}) with its verdicts' marks, linked to the notebook's
    page and to its rows on verdicts.html."""
    res05 = results.get(STATISTICS) or {}
    rows = [r for r in res05.get("discriminating", []) if r.get("clip") is not False]
    cols = sorted({(r["dataset"], r["split"]) for r in rows}, key=lambda c: (dataset_order(c[0]), c[0], c[1] != "test"))
    claims = list(dict.fromkeys((r["claim_id"], r["short"]) for r in rows))
    cell = {(r["claim_id"], r["dataset"], r["split"]): r for r in rows}
    out = []
    if rows:
        head = "".join(f"<th>{html.escape(name_of(d))}<br><small>{html.escape(s)} images</small></th>"
                       for d, s in cols)
        body = []
        for cid, short in claims:
            tds = []
            for d, s in cols:
                r = cell.get((cid, d, s))
                if r is None:
                    tds.append("<td>–</td>")
                    continue
                anchor = ids.get((STATISTICS, cid, d, s, r.get("clip")), "")
                tds.append(f'<td><a href="verdicts.html#{anchor}">{mark(r["verdict"])}</a><br>'
                           f"<small>{html.escape(_effect(r))}</small></td>")
            body.append(f"<tr><th class=claim>{html.escape(short)}</th>{''.join(tds)}</tr>")
        out.append(f'<table class="grid"><tr><th>deciding claim (notebook 05)</th>{head}</tr>{"".join(body)}</table>')
    lines = []
    for nb, question in questions.items():
        res = results.get(nb)
        if res is None:
            lines.append(f"<li>{html.escape(question)} <span class=note>(notebook {nb[:2]} has not finished)</span>"
                         "</li>")
            continue
        counts = Counter(r["verdict"] for r in res.get("verdicts", []))
        marks = " ".join(mark(v, c) for v, c in counts.most_common()) or "<span class=note>no verdict rows</span>"
        lines.append(f'<li><a href="{nb}.html">{html.escape(question)}</a> (notebook {nb[:2]}, '
                     f'<a href="verdicts.html?nb={nb[:2]}">its rows</a>): {marks}</li>')
    out.append(f'<ul class="questions">{"".join(lines)}</ul>')
    return "\n".join(out)


# ---------------------------------------------------------------- the distance to DMM

def distance_words(results: dict) -> list[str]:
    """Per data set, where its networks sit on notebook 08's steepness scale (notebook 11's "distance")."""
    res = results.get(QUALITY)
    if res is None:
        return ["Notebook 11 (where the networks sit on the steepness scale) has not finished."]
    out = []
    by_ds = {}
    for d in res.get("distance", []):
        by_ds.setdefault(d["dataset"], {})[d["claim_id"]] = d
    for ds, per in by_ds.items():
        parts = [f"s = {d['s']:.1f} [{d['low']:.1f}, {d['high']:.1f}] by claim {cid}" for cid, d in sorted(per.items())]
        need = " and ".join(f"{d['needed']:.1f}" for _, d in sorted(per.items()))
        out.append(f"{name_of(ds)}'s networks behave like a dimpled world of steepness {' and '.join(parts)}; "
                   f"DMM needs more than {need}.")
    return out


def distance_figure(results: dict, path) -> bool:
    """World 1's analytic effect against the steepness for claims 3 and 4, its measured points coloured by verdict
    (notebook 08), DMM's threshold (the effect at the margin), and each real data set's networks marked at the
    steepness their effect reads as, with its 95% interval (notebook 11). Written to ``path`` (atomically), and not
    again while the numbers are those it was drawn from (their hash beside it); False where either notebook's numbers
    are missing."""
    curve = (results.get(KNOWN) or {}).get("power_curve")
    dist = (results.get(QUALITY) or {}).get("distance")
    if not curve or not dist:
        return False
    path = Path(path)
    digest = hashlib.sha256(json.dumps([curve, dist], sort_keys=True).encode()).hexdigest()
    stamp = path.with_suffix(".sha256")
    if path.is_file() and stamp.is_file() and stamp.read_text() == digest:
        return True  # drawn from these very numbers already: a warm `make report` stays fast
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    claims = [c for c in ("3", "4") if c in curve["analytic"]]
    titles = {"3": "claim 3: the tangent space's on/off gap over a random subspace's",
              "4": "claim 4: the gradient's share in the tangent space over a random subspace's"}
    fig, axes = plt.subplots(1, len(claims), figsize=(6.2 * len(claims), 3.6), squeeze=False)
    for ax, cid in zip(axes[0], claims):
        line = curve["analytic"][cid]
        ax.plot([p[0] for p in line], [p[1] for p in line], "k-", lw=1, label="dimpled world (analytic)")
        for v in dict.fromkeys(p["verdict"] for p in curve["measured"]):
            pts = [p for p in curve["measured"] if p["claim_id"] == cid and p["verdict"] == v]
            if pts:
                ax.plot([p["s"] for p in pts], [p["effect"] for p in pts], "o", color=COLOURS.get(v, "#888"), ms=5,
                        label=f"dimpled world: {v}")
        needed = [d["needed"] for d in dist if d["claim_id"] == cid]
        if needed:
            ax.axvspan(needed[0], max(p[0] for p in line), color=COLOURS[Verdict.SUPPORTED], alpha=0.08, lw=0)
            ax.axvline(needed[0], color=COLOURS[Verdict.SUPPORTED], ls=":", lw=1.2, label=f"DMM: s > {needed[0]:.1f}")
        for i, d in enumerate(d for d in dist if d["claim_id"] == cid):
            ax.errorbar([d["s"]], [d["effect"]], xerr=[[d["s"] - d["low"]], [d["high"] - d["s"]]], fmt="*", ms=13,
                        color=f"C{i}", mec="k", capsize=3, label=f"{name_of(d['dataset'])}: s = {d['s']:.1f}")
        ax.set(xscale="log", yscale="log", xlabel="steepness s of the dimple (normal / tangent gradient)",
               ylabel="effect (ratio)", title=titles[cid])
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, dpi=90, format="png")
    plt.close(fig)
    stamp.write_text(digest)
    return True
