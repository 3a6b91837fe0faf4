"""The verdict rows of two reports side by side: which rows changed their verdict, with effects before and after.

    python bench/verdict_diff.py OLD_REPORT_DIR NEW_REPORT_DIR [--all]

Each directory is a report's profile folder (e.g. reports/quick) whose results/*.json hold `verdicts` lists (one dict
per row, as lib.reporting.report writes them). A row is identified by its notebook, claim, data set, split, clipping,
control and its short label; rows present on one side only are listed too. Prints a Markdown table for a closing note.
"""
import json
import sys
from pathlib import Path

KEY = ("claim_id", "short", "dataset", "split", "clip", "control", "eps", "world", "steepness")


def rows(folder):
    out = {}
    for path in sorted(Path(folder, "results").glob("*.json")):
        for r in json.loads(path.read_text()).get("verdicts") or []:
            out[(path.stem[:2],) + tuple(str(r.get(k)) for k in KEY)] = r
    return out


def main(argv):
    show_all = "--all" in argv
    old, new = (rows(a) for a in argv[:2])
    same = sum(1 for k in old.keys() & new.keys() if old[k]["verdict"] == new[k]["verdict"])
    print(f"{len(old)} rows before, {len(new)} after; {same} of {len(old.keys() & new.keys())} shared rows keep "
          f"their verdict\n")
    print("| nb | claim | data set | split | before | effect before | after | effect after |")
    print("|---|---|---|---|---|---|---|---|")
    for k in sorted(old.keys() | new.keys()):
        a, b = old.get(k), new.get(k)
        if not show_all and a and b and a["verdict"] == b["verdict"]:
            continue
        cell = lambda r: (r["verdict"], r.get("effect_text", "")) if r else ("(absent)", "")
        where = " ".join(x for x in (k[4], "clip" if k[5] == "True" else "", "" if k[6] == "None" else k[6],
                                     "" if k[7] == "None" else f"ε {k[7]}") if x)
        print(f"| {k[0]} | {k[2]} | {k[3]} | {where} | {' | '.join(cell(a))} | {' | '.join(cell(b))} |")


if __name__ == "__main__":
    main(sys.argv[1:])
