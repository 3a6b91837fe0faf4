"""The evaluation checks of Carlini et al. 2019 ("On evaluating adversarial robustness", section 5 and its
checklist) as assertions on notebook 07's per-image attack records: one row per check and place, with what was
measured and whether it passed. A failed check is a finding to show, never an exception.

Noise: two robust accuracies p1, p2 measured on the same n images by two runs differ by noise alone within
`noise_bound(p, n)` = 1.96 sqrt(2 p (1 - p) / n), the 95% bound of a difference of two independent binomial
proportions (conservative: two attacks on the same images are positively correlated), at least 1 / n (one image).

The checks (records: dataset, defence, attack, eps, image, broken):
  1. a large budget breaks everything: robust accuracy under the worst case at the largest budget is 0;
  2. robust accuracy never rises with eps (each attack, each defence), beyond noise;
  3. white-box <= black-box <= transfer: Square, run after the white-box attacks (so: Square alone on the images
     they left), breaks no image they left beyond noise, so the white-box attacks leave no more robust than Square
     alone; and Square alone leaves no more robust than the transfer attack from the undefended classifier (not for
     "none", where the transfer attack is white-box PGD on the same model), beyond noise: Square alone is run where
     that comparison needs it (notebook 07: lib.studies.defence.defence_report.square_alone), its robust accuracy an
     upper bound;
  4. more iterations and restarts change nothing beyond noise (adaptive PGD against its longer, restarted run);
  5. our PGD is never below AutoAttack: adaptive PGD leaves at least as many images robust as AutoAttack, beyond
     noise (otherwise the row says where PGD is the stronger; the verdicts keep the worst case either way).
"""
import numpy as np
import pandas as pd

COLUMNS = ["check", "dataset", "defence", "where", "result", "pass"]


def noise_bound(p, n):
    """95% bound of the difference of two robust accuracies near p measured on n images each (at least 1 / n)."""
    return max(1.96 * float(np.sqrt(2 * p * (1 - p) / n)), 1.0 / n)


def accuracy(records, **where):
    """Robust accuracy (share not broken) of the records matching `where` (column=value; eps compared with isclose),
    NaN if none."""
    r = records
    for col, v in where.items():
        r = r[np.isclose(r[col].astype(float), v)] if col == "eps" else r[r[col] == v]
    return float((~r["broken"].astype(bool)).mean()) if len(r) else np.nan


def worst(records):
    """Worst case per image over every attack: records of attack "worst case" (broken if any attack broke it)."""
    g = records.groupby(["dataset", "defence", "eps", "image"], sort=False)["broken"].any().reset_index()
    return g.assign(attack="worst case")


def _row(check, dataset, defence, where, result, ok):
    return {"check": check, "dataset": dataset, "defence": defence, "where": where, "result": result, "pass": bool(ok)}


def large_budget(records, eps):
    """Check 1 at budget eps: the worst case over every attack leaves no image robust."""
    rows = []
    w = worst(records)
    for (ds, d), r in w[np.isclose(w["eps"], eps)].groupby(["dataset", "defence"], sort=False):
        acc = float((~r["broken"]).mean())
        rows.append(_row("1 large budget breaks everything", ds, d, f"ε = {eps:g}, worst case",
                         f"robust accuracy {acc:.0%}", acc == 0))
    return rows


def monotone(records, attacks):
    """Check 2: per data set, defence and attack of `attacks` (each run at every budget it lists), the largest rise
    of robust accuracy from one budget to the next larger one, against the noise bound."""
    rows = []
    for (ds, d, a), r in records[records["attack"].isin(attacks)].groupby(["dataset", "defence", "attack"], sort=False):
        acc = (~r.groupby(["eps", "image"])["broken"].any()).groupby("eps").mean().sort_index()
        if len(acc) < 2:
            continue
        n = int(r["image"].nunique())
        rises = np.diff(acc.to_numpy())
        i = int(np.argmax(rises))
        bound = noise_bound(float(acc.iloc[i]), n)
        rows.append(
            _row(
                "2 robust accuracy never rises with ε",
                ds,
                d,
                f"{a}, ε = {', '.join(f'{e:g}' for e in acc.index)}",
                f"largest rise {max(rises[i], 0):.0%} (ε {acc.index[i]:g} → {acc.index[i + 1]:g}; noise {bound:.0%})",
                rises[i] <= bound,
            )
        )
    return rows


def attack_order(records, suite, eps):
    """Check 3 at budget eps: white-box (AutoAttack's APGD-CE, APGD-T, FAB-T) <= Square alone <= transfer, and
    Square after the white-box attacks breaks nothing beyond noise. suite: per-image suite records (broken_by)."""
    rows = []
    at = records[np.isclose(records["eps"].astype(float), eps)]
    su = suite[np.isclose(suite["eps"].astype(float), eps) & (suite["norm"] == "L2")]
    for (ds, d), s in su.groupby(["dataset", "defence"], sort=False):
        n = len(s)
        white = float((s["broken_by"].isin(["", "Square"])).mean())
        black = accuracy(at, dataset=ds, defence=d, attack="Square alone")  # NaN where not run; else an upper bound
        transfer = accuracy(at, dataset=ds, defence=d, attack="transfer")
        b1, b2 = noise_bound(white, n), noise_bound(black, n) if black == black else 0
        after = int((s["broken_by"] == "Square").sum())
        # Square after the white-box attacks is Square alone on the images they left: breaking at most noise there
        # means white-box <= black-box. Without a defence the transfer attack is white-box PGD on the same model, so
        # only that part applies.
        ok = after <= b1 * n and (d == "none" or black <= transfer + b2)
        mid = "" if black != black else f" ≤ Square alone ≤ {black:.0%} ≤ transfer {transfer:.0%}"
        rows.append(_row("3 white-box ≤ black-box ≤ transfer", ds, d, f"ε = {eps:g}",
                         f"white-box {white:.0%}{mid} (noise {b1:.0%}); "
                         f"Square after the white-box attacks broke {after} of {n}", ok))
    return rows


def converged(records, eps):
    """Check 4 at budget eps: adaptive PGD against its longer, restarted run ("adaptive (long)")."""
    rows = []
    at = records[np.isclose(records["eps"].astype(float), eps)]
    for (ds, d), r in at[at["attack"] == "adaptive (long)"].groupby(["dataset", "defence"], sort=False):
        main, long = accuracy(at, dataset=ds, defence=d, attack="adaptive"), float((~r["broken"]).mean())
        bound = noise_bound(main, len(r))
        rows.append(_row("4 more iterations and restarts change nothing", ds, d, f"ε = {eps:g}, adaptive PGD",
                         f"{main:.0%} → {long:.0%} (noise {bound:.0%})", main - long <= bound))
    return rows


def pgd_vs_autoattack(records, eps_list):
    """Check 5 at each budget: adaptive PGD (with its longer run where there) leaves at least as many images robust as
    AutoAttack, beyond noise; the result names the images each broke alone."""
    rows = []
    for eps in eps_list:
        at = records[np.isclose(records["eps"].astype(float), eps)]
        for (ds, d), r in at[at["attack"] == "AutoAttack"].groupby(["dataset", "defence"], sort=False):
            aa = r.set_index("image")["broken"]
            p = at[(at["dataset"] == ds) & (at["defence"] == d) & at["attack"].isin(["adaptive", "adaptive (long)"])]
            pgd = p.groupby("image")["broken"].any().reindex(aa.index, fill_value=False)
            acc_pgd, acc_aa = float((~pgd).mean()), float((~aa).mean())
            bound = noise_bound(acc_aa, len(aa))
            rows.append(_row("5 our PGD never below AutoAttack", ds, d, f"ε = {eps:g}",
                             f"PGD {acc_pgd:.0%}, AutoAttack {acc_aa:.0%} (noise {bound:.0%}); broken only by PGD "
                             f"{int((pgd & ~aa).sum())}, only by AutoAttack {int((aa & ~pgd).sum())}",
                             acc_pgd >= acc_aa - bound))
    return rows


def checklist(records, suite, *, large_eps, order_eps, converge_eps, verdict_eps):
    """Every check as one table (COLUMNS). records: per-image budget records of every attack (attacks "transfer",
    "adaptive", "adaptive (long)", "AutoAttack", "Square alone"), L2; suite: per-image AutoAttack suite records."""
    rows = (large_budget(records, large_eps) + monotone(records, ["transfer", "adaptive", "AutoAttack"])
            + attack_order(records, suite, order_eps) + converged(records, converge_eps)
            + pgd_vs_autoattack(records, verdict_eps))
    return pd.DataFrame(rows, columns=COLUMNS)
