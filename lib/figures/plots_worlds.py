"""Figures of notebook 08 (known manifolds): one function per figure kind."""
import matplotlib.pyplot as plt
import numpy as np

from lib.figures.plots import VERDICT_COLOURS


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


def melamed_sweep(grads, title):
    """World 2: per-image input-gradient norms in the subspace and off it (median, 25-75% range) against each knob
    (left: the first layer's initialisation scale; right: the weight decay)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.3), sharey=True)
    for ax, (knob, col) in zip(axes, (("init scale", "init_scale"), ("weight decay", "weight_decay"))):
        g = grads[grads["knob"].isin([knob, "init scale"])]
        g = g[g["init_scale"] == g["init_scale"].max()] if knob == "weight decay" else g
        g = g.drop_duplicates(["image", col])
        for part, label in (("grad_off", "‖P_off g‖ (off the subspace)"), ("grad_on", "‖P_on g‖ (in it)")):
            q = g.groupby(col)[part].quantile([0.25, 0.5, 0.75]).unstack()
            ax.errorbar(q.index, q[0.5], yerr=[q[0.5] - q[0.25], q[0.75] - q[0.5]], marker="o", capsize=2, label=label)
        ax.set(xlabel=knob, yscale="log")
        ax.set_xscale(
            "log" if knob == "init scale" else "symlog", **({} if knob == "init scale" else {"linthresh": 1e-4})
        )
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("input-gradient norm (margin loss)")
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
