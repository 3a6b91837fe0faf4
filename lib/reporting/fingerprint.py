"""A notebook's fingerprint: everything its results depend on, so that `make report` re-runs a notebook
exactly when one of them changed, and says which.

Parts: the notebook's source; its resolved parameters; the lib/ modules it imports, transitively (read with
`ast`), each as the cache keys see code (lib.infra.codetext: its syntax tree without comments and docstrings), with the
templates that render its page; the torch and Python versions; the report folder; for a notebook that loads data
(imports lib.learn.data), what is on disk for each data set it asks for (lib.infra.sources: paths and counts, no hashing
of data); for a notebook that reads another's records (UPSTREAM), those files. Paths inside the repository are
relative to it, so a moved or re-cloned checkout with the same content has the same fingerprints.
The fingerprint of a successful run is saved beside its page, <notebook>.fingerprint.json; a run that failed
or was interrupted leaves none, so the next `make report` runs it again.
"""
import ast
import functools
import hashlib
import json
import platform
import sys
from importlib import metadata
from pathlib import Path

from lib.infra import sources
from lib.infra.codetext import normalised

REPO = Path(__file__).resolve().parents[2]
LIB = REPO / "lib"
TEMPLATES = LIB / "reporting" / "templates"
# Notebooks that read other notebooks' results: 05 judges the per-image records of 03 and 04.
UPSTREAM = {"05_statistics": ("03_on_off_manifold_attacks", "04_random_subspace_control")}
# Data sets a notebook reads without a `datasets` parameter: 08's third world is an MNIST autoencoder's decoder.
READS = {"08_known_manifolds": ("mnist",)}


def sha(data):
    return hashlib.sha256(data if isinstance(data, bytes) else data.encode()).hexdigest()[:16]


def _rel(path):
    return str(Path(path).relative_to(REPO))


def where(path):
    """A folder as a fingerprint records it: relative to the repository when inside it (a moved or re-cloned
    checkout keeps its fingerprints), else absolute."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _module_file(dotted):
    """lib/a/b.py for "lib.a.b", lib/a/__init__.py for the package "lib.a", else None (not lib's, or no such file)."""
    parts = dotted.split(".")
    if parts[0] != "lib":
        return None
    base = REPO.joinpath(*parts)
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def import_names(source, module=None):
    """The dotted names a module's `source` imports that may be lib modules (`import lib.a.b`; `from lib.a import b`
    gives lib.a and lib.a.b; with `module` = its dotted name, the relative forms `from . import b` / `from .b import f`
    too): what imported_lib_modules resolves to files. Depends on the text alone, so it can be stored by it."""
    names = set()
    package = module.rsplit(".", 1)[0] if module else None
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if package is None:
                    continue
                up = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{up}.{node.module}" if node.module else up
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)  # `from lib.a import b`: b may be a module
    return {n for n in names if n.split(".")[0] == "lib"}


def files_of(names):
    """The lib files of the dotted `names` as they are on disk now, with the __init__ of every package on the way (a
    name that is not a module, such as a function imported from one, adds nothing of its own)."""
    files = set()
    for dotted in names:
        parts = dotted.split(".")
        for i in range(1, len(parts) + 1):
            f = _module_file(".".join(parts[:i]))
            if f is not None:
                files.add(f)
    return files


def imported_lib_modules(source, module=None):
    """The files of the lib modules `source` imports directly (import_names, resolved by files_of)."""
    return files_of(import_names(source, module))


# What each module's text gives (its code hash as the cache keys see it, the names it imports), kept on disk between
# `make report`s (code_facts): parsing ~90 modules was 0.6 s of a warm run's 1 s. Keyed by a hash of the text, the
# module's name and Python's version (ast.unparse's output may change with it), so an edited module is read again.
FACTS_FORMAT = 1
_facts, _used, _stored = {}, set(), set()  # facts in memory; those this process used; the keys the store held


def _facts_key(text, module):
    return sha(f"{FACTS_FORMAT}\0{platform.python_version()}\0{module}\0{text}")


def code_facts(text, module):
    """[code hash, sorted import names] of a module's text, from the store where it was computed before."""
    key = _facts_key(text, module)
    if key not in _facts:
        _facts[key] = [sha(normalised(text)), sorted(import_names(text, module))]
    _used.add(key)
    return _facts[key]


def forget():
    """Drop what this process has read (the per-text memo and the facts held in memory; the store on disk stays)."""
    _read.cache_clear()
    _facts.clear()
    _used.clear()
    _stored.clear()


def load_facts(path):
    """Read the facts stored at `path` (a missing or damaged file: none, computed again)."""
    try:
        stored = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return
    if isinstance(stored, dict) and stored.get("format") == FACTS_FORMAT and isinstance(stored.get("facts"), dict):
        _facts.update({k: v for k, v in stored["facts"].items() if k not in _facts})
        _stored.clear()
        _stored.update(stored["facts"])


def save_facts(path):
    """Store the facts this process used at `path` (atomically; only those, so the file never grows with history),
    unless the store load_facts read holds exactly those (a key fixes its facts: nothing to write)."""
    from lib.reporting.report import write_json_atomic  # noqa: PLC0415 (report imports this module)

    if _used == _stored:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic({"format": FACTS_FORMAT, "facts": {k: _facts[k] for k in sorted(_used)}}, path)
    _stored.clear()
    _stored.update(_used)


def _dotted(path):
    rel = Path(path).relative_to(REPO).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


@functools.lru_cache(maxsize=None)
def _read(text, module):
    """(the code's hash as the cache keys see it, the lib files it imports) of a module's text: once per text and
    process (ten notebooks share most modules), from the stored code_facts where they hold it."""
    code, names = code_facts(text, module)
    return code, frozenset(files_of(names))


def _module_facts(f):
    return _read(f.read_text(), _dotted(f) + (".__init__" if f.name == "__init__.py" else ""))


def lib_closure(py_path):
    """The lib files a notebook depends on: what it imports, what those import, and so on."""
    todo = files_of(code_facts(Path(py_path).read_text(), None)[1]) | {LIB / "__init__.py"}
    seen = set()
    while todo:
        f = todo.pop()
        seen.add(f)
        todo |= _module_facts(f)[1] - seen
    return sorted(seen)


def _versions():
    try:
        torch = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch = "not installed"
    return torch, platform.python_version()


def data_part(datasets):
    """What is on disk for each data set the notebook asks for, and where the data folder is."""
    return {"folder": where(sources.data_root()), "offline": sources.offline(),
            **{name: sources.on_disk(name) for name in datasets}}


def datasets_of(notebook, params):
    """The data sets a notebook reads: its `datasets` parameter, then those it reads without one (READS)."""
    named = list(params.get("datasets") or [])
    return named + [d for d in READS.get(notebook, ()) if d not in named]


def upstream_part(notebook, results):
    """The records files of the notebooks this one reads (results/<nn>_records.*), by content."""
    out = {}
    for up in UPSTREAM.get(notebook, ()):
        files = sorted(Path(results).glob(f"{up[:2]}_records.*"))
        out.update({f"results/{f.name}": sha(f.read_bytes()) for f in files})
        if not files:
            out[f"results/{up[:2]}_records.*"] = "missing"
    return out


def fingerprint(py_path, params, root):
    """{"digest": short hash, "parts": {...}} of the notebook at `py_path` run with `params` into `root`."""
    py_path = Path(py_path)
    modules = lib_closure(py_path)
    torch, python = _versions()
    parts = {"source": sha(py_path.read_bytes()),
             "params": json.loads(json.dumps(params, sort_keys=True, default=str)),
             "lib": {_rel(m): _module_facts(m)[0] for m in modules},
             "templates": {_rel(t): sha(t.read_bytes()) for t in sorted(TEMPLATES.rglob("*")) if t.is_file()},
             "torch": torch, "python": python, "reports": where(root)}
    if any(m.name == "data.py" for m in modules):
        parts["data"] = data_part(datasets_of(py_path.stem, params))
    if py_path.stem in UPSTREAM:
        parts["upstream"] = upstream_part(py_path.stem, Path(root) / "results")
    return with_digest(parts)


def with_digest(parts):
    return {"digest": sha(json.dumps(parts, sort_keys=True)), "parts": parts}


def path_of(root, notebook):
    return Path(root) / f"{notebook}.fingerprint.json"


def load(root, notebook):
    try:
        return json.loads(path_of(root, notebook).read_text())
    except (OSError, ValueError):
        return None


def save(root, notebook, fp):
    """Record a successful run's fingerprint (the data part as found after the run: a download or
    Debian's copy made during the run is what the run used)."""
    from lib.reporting.report import write_json_atomic  # noqa: PLC0415 (report imports this module)

    if "data" in fp["parts"]:
        fp = with_digest({**fp["parts"], "data": data_part(datasets_of(notebook, fp["parts"]["params"]))})
    return write_json_atomic(fp, path_of(root, notebook))


def _short(value):
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


def _dict_changes(old, new, what):
    out = []
    for k in sorted(set(old) | set(new), key=str):
        if k not in old:
            out.append(f"{what(k)} added ({_short(new[k])})")
        elif k not in new:
            out.append(f"{what(k)} removed")
        elif old[k] != new[k]:
            out.append(f"{what(k)}: {_short(old[k])} -> {_short(new[k])}")
    return out


def reasons(old, new):
    """Why a notebook with recorded fingerprint `old` must run again under `new`, in words ([] if it need not)."""
    if old is None:
        return ["no finished run recorded"]
    if old.get("digest") == new["digest"]:
        return []
    o, n = old.get("parts", {}), new["parts"]
    out = []
    if o.get("source") != n["source"]:
        out.append("notebook changed")
    out += _dict_changes(o.get("params", {}), n["params"], lambda k: f"parameter {k}")
    ol, nl = o.get("lib", {}), n["lib"]
    out += [f"{m} changed" for m in sorted(set(ol) & set(nl)) if ol[m] != nl[m]]
    out += [f"now imports {m}" for m in sorted(set(nl) - set(ol))]
    out += [f"no longer imports {m}" for m in sorted(set(ol) - set(nl))]
    if o.get("templates") != n["templates"]:
        out.append("page templates changed")
    for key in ("torch", "python"):
        if o.get(key) != n[key]:
            out.append(f"{key} {o.get(key)} -> {n[key]}")
    if o.get("reports") != n["reports"]:
        out.append(f"report folder moved to {n['reports']}")
    od, nd = o.get("data", {}), n.get("data", {})
    for k in sorted(set(od) | set(nd)):
        was, now = od.get(k), nd.get(k)
        if was == now or now is None:
            continue
        if k == "folder":
            out.append(f"data folder {was} -> {now}")
        elif k == "offline":
            out.append("DIMPLED_OFFLINE " + ("set" if now else "unset"))
        elif str(now).startswith("available") and not str(was).startswith("available"):
            out.append(f"{k} now available")
        elif str(was).startswith("available") and not str(now).startswith("available"):
            out.append(f"{k} no longer available")
        else:
            out.append(f"{k}: {was} -> {now}")
    ou, nu = o.get("upstream", {}), n.get("upstream", {})
    for f in sorted(set(ou) | set(nu)):
        was, now = ou.get(f, "missing"), nu.get(f, "missing")
        if was != now and "*" not in f:  # "<nn>_records.*": "missing" stands for no records file at all
            out.append(f"{f} " + ("now present" if was == "missing" else "gone" if now == "missing" else "changed"))
    return out or ["fingerprint changed"]


if (
    __name__ == "__main__"
):  # python -m lib.reporting.fingerprint notebooks/03_on_off_manifold_attacks.py: its lib closure
    print("\n".join(_rel(m) for m in lib_closure(sys.argv[1])))
