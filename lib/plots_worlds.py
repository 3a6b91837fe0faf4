"""Figures of notebook 08 (known manifolds): one function per figure kind."""
import matplotlib.pyplot as plt
import numpy as np

from lib.plots import VERDICT_COLOURS


def power_curve(table, analytic, thresholds, margin=1.1, title=""):
    """One panel per claim: the measured effect (median ratio, 95% interval, coloured by verdict) against the
    steepness, the analytic effect (line), the negligible band (grey) and the analytic turning point (dotted).
    table: verdict rows with "steepness"; analytic: {claim_id: f(s) -> ratio}; thresholds: {claim_id: s}."""
    ids = list(analytic)
    fig, axes = plt.subplots(1, len(ids), figsize=(4.2 * len(ids), 3.4), squeeze=False)
    for ax, cid in zip(axes[0], ids):
        t = table[table["claim_id"] == cid].sort_values("steepness")
        s = np.geomspace(t["steepness"].min() * 0.8, t["steepness"].max() * 1.25, 200)
        ax.plot(s, [analytic[cid](v) for v in s], color="k", lw=1, label="analytic")
        ax.axhspan(1 / margin, margin, color="0.85", zorder=0, label="negligible band")
        ax.axvline(thresholds[cid], color="k", ls=":", lw=1, label="analytic turning point")
        for _, r in t.iterrows():
            c = VERDICT_COLOURS.get(r["verdict"], "k")
            lo, hi = r["ci_low"], r["ci_high"]
            ax.errorbar(r["steepness"], r["effect"], yerr=[[r["effect"] - lo], [hi - r["effect"]]], fmt="o",
                        color=c, ms=5, capsize=2)
        ax.set(xscale="log", yscale="log", xlabel="steepness s = β / ‖∇h‖", title=t["short"].iloc[0] if len(t) else cid)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("effect (median ratio)")
    handles = [plt.Line2D([], [], color=c, marker="o", lw=0, label=v) for v, c in VERDICT_COLOURS.items()
               if v in set(table["verdict"])]
    axes[0][-1].legend(handles=handles + axes[0][0].get_legend_handles_labels()[0], fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def sweep_panels(frame, x, ys, title, xlog=True):
    """One panel per column of ``ys`` ({column: y label}) against ``x``: median per setting with its 25-75%
    range, e.g. the Melamed sweep's off-subspace gradient against the initialisation scale."""
    fig, axes = plt.subplots(1, len(ys), figsize=(4 * len(ys), 3.2), squeeze=False)
    for ax, (col, label) in zip(axes[0], ys.items()):
        for group, g in frame.groupby("knob", sort=False):
            q = g.groupby(x)[col].quantile([0.25, 0.5, 0.75]).unstack()
            ax.errorbar(q.index, q[0.5], yerr=[q[0.5] - q[0.25], q[0.75] - q[0.5]], marker="o", capsize=2,
                        label=group)
        ax.set(ylabel=label, xlabel=x)
        if xlog:
            ax.set_xscale("symlog", linthresh=1e-4)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
