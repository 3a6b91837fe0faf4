"""Cache keys follow what code computes, not how it is documented."""
import types

from lib import cache


def _module(source):
    import linecache

    name = f"<dimpled-test-{abs(hash(source))}>"
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    mod = types.ModuleType("m")
    exec(compile(source, name, "exec"), mod.__dict__)
    return mod.f


def test_documentation_edits_keep_the_key_and_code_edits_change_it():
    base = _module('def f(x):\n    """Doubles x."""\n    return 2 * x\n')
    documented = _module('def f(x):\n    """Twice x: see the papers."""\n    # a comment\n    return 2 * x  # why\n')
    changed = _module('def f(x):\n    """Doubles x."""\n    return 3 * x\n')
    key = lambda fn: cache.config_hash({"a": 1}, [fn])
    assert key(base) == key(documented)
    assert key(base) != key(changed)
    assert cache.config_hash({"a": 1}, [base]) != cache.config_hash({"a": 2}, [base])
