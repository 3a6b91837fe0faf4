"""Cache keys follow an artifact's configuration and version; its code is watched by its recorded hash
(lib.infra.artifacts), which follows what the code computes, not how it is documented."""
import types

import pytest

from lib.infra import artifacts


def _module(source):
    import linecache

    name = f"<dimpled-test-{abs(hash(source))}>"
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    mod = types.ModuleType("m")
    exec(compile(source, name, "exec"), mod.__dict__)
    return mod.f


@pytest.fixture
def registry(monkeypatch):
    """A private registry, so the test's artifacts do not join the project's."""
    monkeypatch.setattr(artifacts, "REGISTRY", {})
    return artifacts.REGISTRY


def test_documentation_edits_keep_the_code_hash_and_code_edits_change_it(registry):
    base = _module('def f(x):\n    """Doubles x."""\n    return 2 * x\n')
    documented = _module('def f(x):\n    """Twice x: see the papers."""\n    # a comment\n    return (2 * x)  # why\n')
    changed = _module('def f(x):\n    """Doubles x."""\n    return 3 * x\n')
    code_hash = lambda fn, kind: artifacts.Artifact(kind, 1, (fn,)).code_hash()
    assert code_hash(base, "a") == code_hash(documented, "b")
    assert code_hash(base, "c") != code_hash(changed, "d")


def test_the_key_follows_config_kind_and_version_not_code(registry):
    f = _module('def f(x):\n    return 2 * x\n')
    g = _module('def f(x):\n    return 3 * x\n')
    one, same_but_code = artifacts.Artifact("one", 1, (f,)), artifacts.Artifact("one_refactored", 1, (g,))
    assert one.key({"a": 1}) == one.key({"a": 1})
    assert one.key({"a": 1}) != one.key({"a": 2})
    assert one.key({"a": 1}) != same_but_code.key({"a": 1})  # another kind
    registry.clear()
    assert artifacts.Artifact("one", 2, (f,)).key({"a": 1}) != one.key({"a": 1})  # a version bump
    registry.clear()
    assert artifacts.Artifact("one", 1, (g,)).key({"a": 1}) == one.key({"a": 1})  # a refactor keeps the cache


def test_two_artifacts_cannot_share_a_kind_and_versions_start_at_one(registry):
    f = _module('def f(x):\n    return 2 * x\n')
    g = _module('def f(x):\n    return 3 * x\n')
    artifacts.Artifact("one", 1, (f,))
    with pytest.raises(ValueError, match="two artifacts"):
        artifacts.Artifact("one", 1, (g,))
    with pytest.raises(ValueError, match="version"):
        artifacts.Artifact("two", 0, (f,))
    f_reloaded = _module('def f(x):\n    return 2 * x\n')  # a module imported again: other objects, the same code
    assert artifacts.Artifact("one", 1, (f_reloaded,)).kind == "one"
