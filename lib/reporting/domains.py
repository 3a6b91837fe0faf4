"""A notebook parameter's declared domain: a bracketed tag that opens its comment in the parameters cell,

    n_images: int = 200  # [≥ 1] correctly classified images per data set and split

read by lib.reporting.params and checked before any kernel starts, for the notebook's own default, every profile's
value and a value given on the command line. Clauses, separated by commas:

    ≥ a, > a, ≤ a, < a     a bound on every number of the value (a list's items, a per-data-set dict's values)
    a..b                   both bounds, inclusive
    non-empty              a list, dict or string with at least one element
    in NAME                every item is among the values of the notebook's parameter NAME (verdict_eps in eps_grid)
    any                    nothing beyond the parameter's type (a flag, a name the lib checks against its own list)

None (for an Optional parameter) is always in the domain: it means "the profile's" or "the paper's". (≥ and ≤, not >=
and <=: papermill cannot read a parameter line whose comment holds an "=".)
"""
import re
from dataclasses import dataclass

TAG = re.compile(r"^\[([^\]]*)\]\s*")
BOUND = re.compile(r"^(≥|>|≤|<)\s*(-?[\d.]+(?:e-?\d+)?)$")
RANGE = re.compile(r"^(-?[\d.]+(?:e-?\d+)?)\s*\.\.\s*(-?[\d.]+(?:e-?\d+)?)$")


class DomainError(ValueError):
    """A tag that is not a domain (the message names the parameter and the clause)."""


@dataclass(frozen=True)
class Clause:
    op: str        # ≥, >, ≤, <, non-empty, in, any (a..b is two clauses)
    value: object  # the bound, or the other parameter's name


def parse(name, comment):
    """(clauses, the comment without its tag) of a parameter's comment; clauses None where it declares no domain."""
    m = TAG.match(comment or "")
    if not m:
        return None, comment
    clauses = []
    for part in [p.strip() for p in m.group(1).split(",") if p.strip()]:
        if b := BOUND.match(part):
            clauses.append(Clause(b.group(1), float(b.group(2))))
        elif r := RANGE.match(part):
            clauses += [Clause("≥", float(r.group(1))), Clause("≤", float(r.group(2)))]
        elif part in ("non-empty", "any"):
            clauses.append(Clause(part, None))
        elif part.startswith("in ") and part[3:].strip().isidentifier():
            clauses.append(Clause("in", part[3:].strip()))
        else:
            raise DomainError(f"parameter {name}: {part!r} is not a domain clause (≥ a, > a, ≤ a, < a, a..b, "
                              "non-empty, in NAME, any)")
    return clauses, comment[m.end():]


def _numbers(value):
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [value]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, (list, tuple)):
        return [n for v in value for n in _numbers(v)]
    return []


def _items(value):
    return list(value.values()) if isinstance(value, dict) else list(value) if isinstance(value, (list, tuple)) \
        else [value]


HOLDS = {"≥": lambda v, b: v >= b, ">": lambda v, b: v > b, "≤": lambda v, b: v <= b, "<": lambda v, b: v < b}


def errors(name, value, clauses, others=None):
    """What is wrong with `value` for the domain `clauses` (lines without the file's name; empty: in the domain).
    others: {parameter: value} of the same run, for `in NAME` (skipped where not given)."""
    if value is None or not clauses:
        return []
    out = []
    for c in clauses:
        if c.op in HOLDS:
            bad = [v for v in _numbers(value) if not HOLDS[c.op](v, c.value)]
            if bad:
                out.append(f"{name} = {value!r} must be {c.op} {c.value:g}" + (f" (not {bad[0]!r})" if bad[0] != value
                                                                               else ""))
        elif c.op == "non-empty" and isinstance(value, (list, dict, str, tuple)) and not len(value):
            out.append(f"{name} = {value!r} must not be empty")
        elif c.op == "in" and others is not None and c.value in others:
            allowed = _items(others[c.value])
            missing = [v for v in _items(value) if not any(v == a for a in allowed)]
            if missing:
                out.append(f"{name} = {value!r}: {missing[0]!r} is not among {c.value} = {others[c.value]!r}")
    return out
