"""lib's packages are layers: a module imports only from its own package or from packages below it, and no two
modules import each other, directly or through others. The layer drawing of docs/architecture.md is this table."""
import ast
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "lib"
# rank: a package may import the packages of lower rank (equal ranks are independent of each other)
LAYERS = {"infra": 0, "inference": 1, "reporting": 2, "geometry": 3, "boundary": 3, "learn": 4, "experiments": 5,
          "studies": 6, "figures": 7}


def lib_imports(path):
    """The dotted lib modules a file imports (`from lib.a import b` names lib.a.b when that is a module)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("lib.")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lib"):
            assert node.level == 0, f"{path}: relative import"
            for a in node.names:
                sub = LIB.parent.joinpath(*node.module.split("."), f"{a.name}.py")
                out.add(f"{node.module}.{a.name}" if sub.exists() else node.module)
    return out


def modules():
    return {".".join(p.relative_to(LIB.parent).with_suffix("").parts): p for p in LIB.rglob("*.py")
            if p.name not in ("__init__.py", "__main__.py")}


def test_every_module_sits_in_a_layer_package():
    """lib.<layer>.<module>, or in studies lib.studies.<question>.<module> (one subpackage per question)."""
    for name in modules():
        parts = name.split(".")
        depth = 4 if len(parts) > 1 and parts[1] == "studies" else 3
        assert len(parts) == depth and parts[1] in LAYERS, f"{name}: not in one of lib's packages {sorted(LAYERS)}"


def test_imports_only_go_down():
    upward = []
    for name, path in modules().items():
        own = name.split(".")[1]
        for target in lib_imports(path):
            pkg = target.split(".")[1] if target.count(".") >= 1 else None
            if pkg is None or pkg == own:
                continue
            if not LAYERS[pkg] < LAYERS[own]:
                upward.append(f"{name} -> {target}")
    assert not upward, "imports that do not go down a layer: " + "; ".join(sorted(upward))


def test_no_import_cycle():
    mods = modules()
    graph = {n: {t for t in lib_imports(p) if t in mods and t != n} for n, p in mods.items()}
    state = {}

    def visit(n, path):
        state[n] = "open"
        for m in graph[n]:
            if state.get(m) == "open":
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(m):] + [m]))
            if m not in state:
                visit(m, path + [m])
        state[n] = "done"

    for n in graph:
        if n not in state:
            visit(n, [n])
