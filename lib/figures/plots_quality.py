"""Figures of notebook 11 (model quality): the claims against each series' quality, and the steepness scale."""
import matplotlib.pyplot as plt
import numpy as np

from lib.figures.plots import VERDICT_COLOURS
from lib.studies.quality import quality

AXIS = {"autoencoder": "test reconstruction MSE (better →)", "classifier": "test error (better →)",
        "data": "autoencoder's training images (more →)"}
DMM_SIDE = "#f4cccc"


def _quality_axis(ax, series, xs, marks):
    """x: the quality in its units on a log axis, improvement to the right (errors decrease, images increase)."""
    ax.set_xscale("log")
    for label, q in marks:
        ax.axvline(q, color="0.4", ls=":", lw=1)
        ax.annotate(label, (q, 1), xycoords=("data", "axes fraction"), rotation=90, va="top", ha="right",
                    fontsize=6.5, color="0.3")
    qs = [q for _, q in marks] + list(xs)
    lo, hi = min(qs) / 1.5, max(qs) * 1.5
    ax.set_xlim((hi, lo) if series != "data" else (lo, hi))
    ax.xaxis.set_major_locator(plt.LogLocator(subs=(1.0,) if series == "data" or hi / lo > 300 else (1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:,.0f}" if series == "data" else f"{v:g}"))
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel(AXIS[series], fontsize=8)
    ax.grid(alpha=0.3, which="both")


def _continued(f, series, marks, start, points):
    """The trend fit ``f`` on x from ``start`` to the furthest of its points and the published ``marks``: (x grid,
    the fitted values, their standard errors)."""
    far = max([f["x"].max()] + [float(quality.x_of(series, m)) for _, m in marks])
    grid = np.linspace(start, far, points)
    fitted, se = np.array([f["band"](g) for g in grid]).T
    return grid, fitted, se


def series_claims(points, fits, trend_table, series, marks, margin=1.1, cosine_margin=0.05, title=""):
    """One panel per claim: each point's median effect with its 95% interval against the series' quality, the
    negligible band (grey), DMM's side of it (red), the fitted trend (line) and its continuation to the published
    models' quality (dashed, with its 95% band), titled with the trend's verdict. points: the point table of one
    data set and series (lib.studies.quality.point_table); fits: {claim_id: trend fit or None};
    trend_table: the trend rows of that data set and series; marks: [(label, quality)]."""
    ids = [c for c in ("3", "4", "5b", "1b") if c in set(points["claim_id"])]
    fig, axes = plt.subplots(1, len(ids), figsize=(3.6 * len(ids), 3.3), squeeze=False)
    for ax, cid in zip(axes[0], ids):
        t = points[points["claim_id"] == cid].sort_values("x")
        ratio = t["scale"].iloc[0] == "ratio"
        q = quality.quality_of(series, t["x"])
        for (_, r), qi in zip(t.iterrows(), q):
            ax.errorbar(qi, r["effect"], yerr=[[r["effect"] - r["ci_low"]], [r["ci_high"] - r["effect"]]], fmt="o",
                        color="k", ms=4, capsize=2)
        band = (1 / margin, margin) if ratio else (-cosine_margin, cosine_margin)
        ax.axhspan(*band, color="0.85", zorder=0)
        side = t["predicted"].iloc[0] if "predicted" in t else "greater"
        _quality_axis(ax, series, q, marks)
        f = fits.get(cid)
        tr = trend_table[trend_table["claim_id"] == cid]
        verdict = tr["verdict"].iloc[0] if len(tr) else None
        if f is not None:
            grid, fitted, se = _continued(f, series, marks, f["x"].min(), 100)
            show = np.exp if ratio else (lambda v: v)
            inside = grid <= f["x"].max()
            qg = quality.quality_of(series, grid)
            ax.plot(qg[inside], show(fitted[inside]), color=VERDICT_COLOURS.get(verdict, "k"), lw=1.5)
            ax.plot(qg[~inside], show(fitted[~inside]), color=VERDICT_COLOURS.get(verdict, "k"), lw=1, ls="--")
            ax.fill_between(qg, show(fitted - f["crit"] * se), show(fitted + f["crit"] * se),
                            color=VERDICT_COLOURS.get(verdict, "0.5"), alpha=0.12, lw=0)
        # the points, the band and the line's point estimate at the published models decide the range; the
        # continued band may run off the panel
        seen = list(t["ci_low"]) + list(t["ci_high"]) + list(band)
        if f is not None:
            seen += list(show(fitted))
        seen = np.array([v for v in seen if np.isfinite(v) and (v > 0 or not ratio)], float)
        if ratio:
            ax.set_yscale("log")
            lo, hi = seen.min() / 1.5, seen.max() * 1.5
        else:
            pad = 0.1 * (seen.max() - seen.min()) + 0.02
            lo, hi = seen.min() - pad, seen.max() + pad
        if side == "greater":
            ax.axhspan(band[1], max(hi, band[1] * 1.01), color=DMM_SIDE, zorder=0)
        else:
            ax.axhspan(min(lo, band[0] * 0.99 if ratio else band[0] - 0.01), band[0], color=DMM_SIDE, zorder=0)
        ax.set_ylim(lo, hi)
        ax.set_title(f"{t['short'].iloc[0]}\ntrend: {verdict or '–'}", fontsize=8)
    axes[0][0].set_ylabel("effect (median; ratios on a log axis)", fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color="0.85", label="negligible band"),
               plt.Rectangle((0, 0), 1, 1, color=DMM_SIDE, label="DMM's side"),
               plt.Line2D([], [], color="k", ls="--", label="trend continued (95% band)")]
    axes[0][-1].legend(handles=handles, fontsize=6.5, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def steepness(steep, need, series_marks, trend3=None, reference=7.07, title=""):
    """One panel per series: the steepness s of the dimpled world (notebook 08) that shows each point's claim-3 effect
    (dots, 95% interval) and claim-4 effect (squares) against the series' quality, DMM's side (s above the turning
    points ``need`` {claim: s}, red) and, where given, claim 3's trend continued (``trend3`` {series: fit}, as
    s = exp(fitted) x ``reference``). steep: lib.studies.quality.steepness_table of one data set."""
    order = [s for s in ("autoencoder", "classifier", "data") if s in set(steep["series"])]
    fig, axes = plt.subplots(1, len(order), figsize=(4.3 * len(order), 3.4), squeeze=False, sharey=True)
    top = max(need.values()) * 2
    for ax, series in zip(axes[0], order):
        t = steep[steep["series"] == series].sort_values("x")
        q = quality.quality_of(series, t["x"])
        for cid, marker in (("3", "o"), ("4", "s")):
            s, lo, hi = (t[f"s (claim {cid}){sfx}"].to_numpy(float) for sfx in ("", " low", " high"))
            hi = np.minimum(hi, top * 5)
            ax.errorbar(q, s, yerr=[s - lo, hi - s], fmt=marker, ms=4, capsize=2, lw=1,
                        label=f"claim {cid}" + (" (gap vs random)" if cid == "3" else " (gradient share)"))
        _quality_axis(ax, series, q, series_marks.get(series, []))
        f = (trend3 or {}).get(series)
        if f is not None:
            grid, fitted, se = _continued(f, series, series_marks.get(series, []), f["x"].max(), 60)
            ax.plot(quality.quality_of(series, grid), np.exp(fitted) * reference, color="C0", ls="--", lw=1,
                    label="claim 3's trend continued")
            ax.fill_between(quality.quality_of(series, grid), np.exp(fitted - f["crit"] * se) * reference,
                            np.exp(fitted + f["crit"] * se) * reference, color="C0", alpha=0.1, lw=0)
        ax.axhspan(min(need.values()), top * 5, color=DMM_SIDE, zorder=0)
        for cid, v in need.items():
            ax.axhline(v, color="firebrick", lw=0.8, ls="-" if cid == "3" else "-.")
        ax.set_yscale("log")
        ax.set_ylim(0.3, top * 1.5)
        ax.set_yticks([v for v in (0.5, 1, 2, 5, 10, 20, 50) if v < top * 1.5], minor=False)
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_title(series.replace("data", "training images") + " series", fontsize=9)
    axes[0][0].set_ylabel("steepness s of the matching dimpled world", fontsize=8)
    axes[0][0].annotate(f"DMM: s > {need['3']:.2g} (claim 3), {need['4']:.2g} (claim 4)", (0.02, 0.97),
                        xycoords="axes fraction", va="top", fontsize=7, color="firebrick")
    axes[0][-1].legend(fontsize=6.5, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
