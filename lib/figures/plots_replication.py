"""Notebook 09's figure: forest plots of one claim's effect per seed and pooled over the seeds."""
import matplotlib.pyplot as plt
import numpy as np

from lib.figures.plots import VERDICT_COLOURS, _plain_log_x


def forest(panels, title, pooled_label="pooled (random effects)"):
    """One panel per claim. panels: {panel title: {"scale": "ratio" | "difference", "band": (lo, hi) or None,
    "entries": [(label, effect, ci_low, ci_high, verdict or None, pooled)], "xlabel" (optional)}} in display units
    (ratios as ratios).
    A seed: a dot with its 95% interval (coloured by its own verdict, black where it has none); pooled: a diamond
    with the random-effects interval, coloured by the pooled verdict. Grey: the negligible band. An interval that
    is not finite (most attacks censored) is drawn to the panel's edge; an entry with neither effect nor interval is
    only labelled."""
    n = max(len(p["entries"]) for p in panels.values())
    cols = min(2, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, rows * (1.3 + 0.3 * n)), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (name, p) in zip(axes.flat, panels.items()):
        log = p["scale"] == "ratio"
        ref = 1.0 if log else 0.0
        vals = np.array([v for e in p["entries"] for v in e[1:4] if v is not None and np.isfinite(v)
                         and (v > 0 or not log)] + [ref] + list(p.get("band") or ()), float)
        lo_edge, hi_edge = (vals.min() / 1.3, vals.max() * 1.3) if log else \
            (vals.min() - 0.1 * np.ptp(vals) - 1e-3, vals.max() + 0.1 * np.ptp(vals) + 1e-3)
        y = np.arange(len(p["entries"]))[::-1]
        for yi, (label, e, lo, hi, verdict, pooled) in zip(y, p["entries"]):
            c = VERDICT_COLOURS.get(verdict, "k")
            if not any(v is not None and np.isfinite(v) for v in (e, lo, hi)):
                continue  # nothing measured (a row that is not testable): its label says so
            lo = lo_edge if lo is None or not np.isfinite(lo) or (log and lo <= 0) else lo
            hi = hi_edge if hi is None or not np.isfinite(hi) else hi
            ax.hlines(yi, lo, hi, color=c, lw=3 if pooled else 1.5)
            if e is not None and np.isfinite(e) and (e > 0 or not log):
                ax.plot(e, yi, "D" if pooled else "o", color=c, ms=9 if pooled else 5, mec="k" if pooled else c)
        if p.get("band"):
            ax.axvspan(*p["band"], color="0.88", zorder=0)
        ax.axvline(ref, color="k", lw=0.8)
        ax.set_yticks(y, [e[0] for e in p["entries"]], fontsize=8)
        ax.set_ylim(-0.7, len(p["entries"]) - 0.3)
        ax.set_xlim(lo_edge, hi_edge)
        if log:
            ax.set_xscale("log")
            _plain_log_x(ax)
        default = ("median ratio (1 = none)" if log else "median difference (0 = none)") + ", 95% CI"
        ax.set_xlabel(p.get("xlabel") or default, fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    handles = [plt.Line2D([], [], color=c, marker="o", lw=2, label=v) for v, c in VERDICT_COLOURS.items()]
    handles.append(plt.Line2D([], [], color="k", marker="D", lw=3, label=pooled_label))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4, frameon=False)
    return fig
