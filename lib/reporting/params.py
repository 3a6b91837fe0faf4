"""Notebook parameters: what each notebook declares, what a profile sets, checked before any kernel starts.

A notebook declares its parameters in its `parameters` cell, one per line, typed and commented:
    n_images: int = 200                      # correctly classified images per data set and split
notebooks/params/<profile>.yaml overrides them: the `all` section for settings shared by several notebooks
(each key must be declared by some notebook; a notebook gets the ones it declares), then a section per notebook
(each key declared by that notebook). `check(profile)` refuses, with one line naming the file and the key:
a YAML syntax error, a duplicate key or section, an unknown section or key, a value of the wrong type (the
annotation, else the default's type), an obviously wrong number (a count or epochs below 1, a negative seed) and
a name outside its allowed values (data sets, splits, attack conditions and settings, control subspaces: ALLOWED).
Reads the notebooks' source with `ast`: no kernel, no papermill, no torch.
"""
import ast
import copy
import difflib
import functools
import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

import yaml

from lib.infra import model_settings, profiles
from lib.reporting import domains
from lib.infra.names import (BUDGET_NAMES, CONDITIONS, CONTROL_SUBSPACES, DATASETS, RELABELLINGS, SPLITS, TAU2_METHODS,
                             VARIANTS)

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
PARAMS = profiles.PARAMS



class ParameterError(ValueError):
    """A bad parameter file or value; the message is one line that names the file and the key."""


@dataclass
class Param:
    name: str
    default: object
    annotation: str | None  # as written, e.g. "Union[int, dict[str, int], None]"; None: untyped
    comment: str            # without its domain tag
    domain: list | None = None  # lib.reporting.domains clauses from the comment's [tag]; None: none declared


def notebook_paths():
    return sorted(NOTEBOOKS.glob("[0-9]*.py"))


def profile_names():
    return sorted(p.stem for p in PARAMS.glob("*.yaml"))


def parameters_cell(source):
    """The source of the cell tagged `parameters` in a percent-format notebook, and its first line number."""
    lines = source.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("# %%") and re.search(r"""tags\s*=\s*\[[^\]]*["']parameters["']""", line):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("# %%")), len(lines))
            return "\n".join(lines[i + 1:end]), i + 2
    return "", 0


def declared(py_path):
    """{name: Param} of the notebook's parameters cell, in order."""
    py_path = Path(py_path)
    cell, _ = parameters_cell(py_path.read_text())
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(cell + "\n").readline) if tok.type == tokenize.COMMENT}
    out = {}
    for node in ast.parse(cell).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, annotation = node.targets[0].id, None
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, annotation = node.target.id, ast.unparse(node.annotation)
        else:
            continue  # an import (e.g. of typing names) or a comment-only line
        try:
            default = ast.literal_eval(node.value)
        except ValueError as err:
            raise ParameterError(f"{py_path.name}: parameter {name} must have a literal default ({err})") from None
        try:
            domain, comment = domains.parse(name, comments.get(node.lineno, ""))
        except domains.DomainError as err:
            raise ParameterError(f"{py_path.name}: {err}") from None
        out[name] = Param(name, default, annotation, comment, domain)
    return out


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml where installed: 10x faster
    """A YAML loader that refuses a key given twice in one mapping (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def profile_path(profile):
    path = PARAMS / f"{profile}.yaml"
    if not path.exists():
        raise ParameterError(f"unknown profile {profile!r}: profile must be one of {', '.join(profile_names())} "
                             f"(files in notebooks/params/)")
    return path


@functools.lru_cache(maxsize=8)
def _parsed(text):
    """A profile file's text parsed once per process (plan resolves every notebook's parameters from it)."""
    return yaml.load(text, Loader=_UniqueKeyLoader) or {}


def load_profile(profile):
    """The profile's YAML as {section: {key: value}}; duplicate keys and syntax errors name the file and line."""
    path = profile_path(profile)
    where = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    try:
        table = copy.deepcopy(_parsed(path.read_text()))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        at = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ParameterError(f"{where}{at}: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise ParameterError(f"{where}: {str(err).splitlines()[0]}") from None
    if not isinstance(table, dict) or any(not isinstance(v, (dict, type(None))) for v in table.values()):
        raise ParameterError(f"{where}: expected sections (all, <notebook>) each holding key: value pairs")
    return {str(k): dict(v or {}) for k, v in table.items()}, where


# ---- types and ranges -------------------------------------------------------------------------------------------

_SCALARS = {"int": int, "float": (int, float), "str": str, "bool": bool, "list": list, "dict": dict}


def _matches(value, node):
    """Whether `value` is of the annotation `node` (an ast expression); names we do not know accept anything."""
    if isinstance(node, ast.Constant) and node.value is None or isinstance(node, ast.Name) and node.id == "None":
        return value is None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _matches(value, node.left) or _matches(value, node.right)
    if isinstance(node, ast.Name):
        kind = _SCALARS.get(node.id)
        return kind is None or (isinstance(value, kind) and (node.id == "bool" or not isinstance(value, bool)))
    if isinstance(node, ast.Subscript):
        outer = node.value.id if isinstance(node.value, ast.Name) else getattr(node.value, "attr", "")
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if outer == "Optional":
            return value is None or _matches(value, args[0])
        if outer == "Union":
            return any(_matches(value, a) for a in args)
        if outer == "Literal":
            return value in [ast.literal_eval(a) for a in args]
        if outer in ("list", "List"):
            return isinstance(value, list) and all(_matches(v, args[0]) for v in value)
        if outer in ("dict", "Dict"):
            return isinstance(value, dict) and all(_matches(k, args[0]) and _matches(v, args[-1])
                                                   for k, v in value.items())
    return True


def annotation_of(param):
    """The parameter's type as an annotation string: as written, else inferred from its default
    (None: anything; a dict of numbers: one number for every data set, or one per data set)."""
    if param.annotation:
        return param.annotation
    d = param.default
    if d is None:
        return "object"
    if isinstance(d, dict) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in d.values()):
        number = "float" if any(isinstance(v, float) for v in d.values()) else "int"
        return f"Union[{number}, dict[str, {number}], None]"
    return type(d).__name__


# name pattern -> (lowest allowed value, inclusive?): checked on every number under that key, nearest key first
RANGES = [(r"^seed$", 0, True), (r"^n_show$", 0, True), (r"epochs$", 1, True), (r"^n_", 1, True),
          (r"_subset$", 1, True), (r"^steps$", 1, True), (r"latent_dim$", 1, True), (r"ae_width$", 1, True),
          (r"^k_sweep$", 1, True), (r"^shard_size$", 1, True), (r"^(eps|alpha)$", 0, False),
          (r"^(accuracy_margin|advtrain_eps_scale)$", 0, False),
          (r"_lr$", 0, False), (r"^min_success$", 0, True)]


def _range_errors(value, path):
    if isinstance(value, dict):
        return [e for k, v in value.items() for e in _range_errors(v, path + [str(k)])]
    if isinstance(value, list):
        return [e for v in value for e in _range_errors(v, path)]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return []
    for name in reversed(path):
        for pattern, low, inclusive in RANGES:
            if re.search(pattern, name):
                if value < low or (value == low and not inclusive):
                    return [f"{'.'.join(path)} = {value!r} must be {'>=' if inclusive else '>'} {low}"]
                return []
    return []


# ---- allowed values ----------------------------------------------------------------------------------------------
# The names the lib accepts: one definition each in lib.infra.names (torch-free); the attack settings' keys mirror
# lib.experiments.shards.AttackSettings' fields (tests/test_params.py checks they agree).
ATTACK_KEYS = ("eps", "alpha", "steps", "loss", "clip", "refine_steps")
PGD_KEYS = ("eps", "alpha", "steps")

# parameter name pattern -> (what its values are called, allowed values, where they are: "items" of a list, "keys"
# of a dict, "settings": a dict {condition: {setting: value}}, "pgd": a dict {setting: value}, "names": a list's items
# that are not numbers)
ALLOWED = [(r"^(datasets|dynamics_datasets)$", "a data set", DATASETS, "items"),
           (r"^splits$", "a split", SPLITS, "items"),
           (r"^controls$", "a control subspace", CONTROL_SUBSPACES, "items"),
           (r"(epochs|_subset|latent_dim|classifier_lr|^linf_eps)$", "a data set", DATASETS, "keys"),
           (r"^attack$", "a condition", CONDITIONS, "settings"),
           (r"^relabellings$", "a relabelling", RELABELLINGS, "items"),
           (r"^variants$", "a perturbation variant", VARIANTS, "items"),
           (r"^relabel_budgets$", "a budget (a number, or one of the names)", BUDGET_NAMES, "names"),
           (r"((^|_)pgd|^world_attack)$", "a PGD setting", PGD_KEYS, "pgd"),
           (r"^tau2_method$", "a between-seed variance estimator", TAU2_METHODS, "value")]


def _not_allowed(where, name, what, allowed):
    near = difflib.get_close_matches(str(name), allowed, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return f"{where}: {name!r} is not {what}{hint}; allowed: {', '.join(allowed)}"


def _allowed_errors(name, value):
    """What in `value` (of the parameter `name`) is not an allowed value, as `name.key: 'x' is not ...; allowed:
    ...`."""
    for pattern, what, allowed, place in ALLOWED:
        if not re.search(pattern, name):
            continue
        if place == "value" and not isinstance(value, (list, dict)):
            return [_not_allowed(name, value, what, allowed)] if value not in allowed else []
        if place == "names" and isinstance(value, list):  # numbers, or names among the allowed
            return [_not_allowed(f"{name} = {value!r}", v, what, allowed) for v in value
                    if not (isinstance(v, (int, float)) and not isinstance(v, bool)) and v not in allowed]
        if place == "items" and isinstance(value, list):
            return [_not_allowed(f"{name} = {value!r}", v, what, allowed) for v in value if v not in allowed]
        if place in ("keys", "pgd") and isinstance(value, dict):
            return [_not_allowed(name, k, what, allowed) for k in value if k not in allowed]
        if place == "settings" and isinstance(value, dict):
            errors = [_not_allowed(name, k, what, allowed) for k in value if k not in allowed]
            for condition, settings in value.items():
                keys = settings if isinstance(settings, dict) else {}
                errors += [_not_allowed(f"{name}.{condition}", k, "an attack setting", ATTACK_KEYS)
                           for k in keys if k not in ATTACK_KEYS]
                errors += [f"{name}.{condition} lacks {k!r} (it needs {', '.join(PGD_KEYS)})"
                           for k in PGD_KEYS if k not in keys]
            return errors
    return []


# The fields of the `model_settings` parameter, each with its type: read from their one definition.
MODEL_FIELDS = model_settings.field_types()


def _model_settings_error(param, value):
    """What is wrong in the `model_settings` dict: an unknown field, or a field's type, range or data sets."""
    for key, v in value.items():
        if key not in MODEL_FIELDS:
            return f"{param.name}.{_unknown(str(key), list(MODEL_FIELDS), 'a model setting')}; the settings are " \
                   f"{', '.join(MODEL_FIELDS)}"
        problem = check_value(Param(f"{param.name}.{key}", None, MODEL_FIELDS[key], ""), v)
        if problem:
            return problem
    return None


def check_value(param, value):
    """None if `value` suits `param`, else what is wrong (without the file's name): its type, its range, or a name
    that is not one of the allowed values (data sets, splits, conditions, attack settings, controls)."""
    if param.name == "model_settings" and isinstance(value, dict):
        return _model_settings_error(param, value)
    expected = annotation_of(param)
    if not _matches(value, ast.parse(expected, mode="eval").body):
        return f"{param.name} = {value!r} is a {type(value).__name__}; expected {expected}"
    errors = (_range_errors(value, [param.name]) + _allowed_errors(param.name, value)
              + domains.errors(param.name, value, param.domain))
    return errors[0] if errors else None


def cross_check(decl, values):
    """The first value of `values` (a notebook's resolved parameters; its defaults where absent) outside a domain that
    names another parameter (`in NAME`), or None."""
    if not all(isinstance(p, Param) for p in decl.values()):  # a caller's {name: default}: no domains to check
        return None
    merged = {name: values.get(name, p.default) for name, p in decl.items()}
    for name, p in decl.items():
        problems = domains.errors(name, merged[name], p.domain, merged)
        if problems:
            return problems[0]
    return None


# ---- the whole profile -------------------------------------------------------------------------------------------

def _unknown(key, known, what):
    near = difflib.get_close_matches(key, known, n=1)
    return f"{key!r} is not {what}" + (f" (did you mean {near[0]!r}?)" if near else "")


def check(profile, notebooks=None):
    """Validate notebooks/params/<profile>.yaml against the notebooks' declarations; returns
    {notebook: {name: Param}}. Raises ParameterError with a one-line message."""
    table, where = load_profile(profile)
    decl = notebooks if notebooks is not None else {p.stem: declared(p) for p in notebook_paths()}
    for section, values in table.items():
        if section != "all" and section not in decl:
            raise ParameterError(f"{where}: section {_unknown(section, list(decl) + ['all'], 'a notebook')}; "
                                 f"sections are all, {', '.join(decl)}")
        for key, value in values.items():
            if section == "all":
                owners = [d[key] for d in decl.values() if key in d]
                if not owners:
                    every = sorted({k for d in decl.values() for k in d})
                    raise ParameterError(f"{where}: all.{_unknown(key, every, 'declared by any notebook')}")
                typed = [p for p in owners if p.annotation] or owners
                problems = [check_value(p, value) for p in typed]
                problem = next((p for p in problems if p), None)
            else:
                if key not in decl[section]:
                    raise ParameterError(
                        f"{where}: {section}.{_unknown(key, list(decl[section]), 'declared by ' + section)}; "
                        f"it declares {', '.join(decl[section])}"
                    )
                problem = check_value(decl[section][key], value)
            if problem:
                raise ParameterError(f"{where}: {section}.{problem}")
    for name, d in decl.items():
        problem = cross_check(d, profiles.section(table, name, d))
        if problem:
            raise ParameterError(f"{where}: {name}.{problem}")
    return decl


def resolve(notebook, profile, declared_params=None, extra=None):
    """The papermill parameters of `notebook` (a stem such as '01_classifiers') under `profile`: the keys of `all`
    it declares, then its own section, then `extra` (each checked), and the profile's name."""
    table, where = load_profile(profile)
    decl = declared_params if declared_params is not None else declared(NOTEBOOKS / f"{notebook}.py")
    params = profiles.section(table, notebook, decl)
    for key, value in (extra or {}).items():
        if key not in decl:
            raise ParameterError(f"{notebook}: unknown parameter {_unknown(key, list(decl), 'declared')}; "
                                 f"the notebook declares {', '.join(decl)}")
        problem = check_value(decl[key], value)
        if problem:
            raise ParameterError(f"{notebook}: {problem}")
        params[key] = value
    problem = cross_check(decl, params)
    if problem:
        raise ParameterError(f"{notebook}: {problem}")
    return {**params, "profile": profile}
