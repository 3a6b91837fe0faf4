"""Kinds of cached work (a trained model, an attack shard, ...): each is keyed by its configuration and an explicit
version, never by the text of its code.

A key that hashed the code made every refactor (a renamed import, a merged loop, a moved module) throw the cache
away, and so kept twins of code alive only to keep their keys. Here an `Artifact` names the code that defines its
outcome and a version number. The key hashes the configuration, the kind, the version and torch's version
(lib.infra.cache.config_hash); the code enters only `code_hash`, which tests/test_artifacts.py compares with the hash
recorded for that version in tests/artifact_code.json:
- the code changed and the outcome did not (a refactor): record the new hash (`python -m lib.infra.artifacts record`);
  the cache stays valid;
- the outcome changed: raise `version` and record; every entry of that kind is rebuilt.
So the test fails whenever the code that defines an artifact changed and nobody said which of the two it was.
"""
import hashlib
import importlib
import json
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path

from lib.infra.codetext import code_text

REPO = Path(__file__).resolve().parents[2]
RECORD = REPO / "tests" / "artifact_code.json"
REGISTRY = {}  # kind -> Artifact, filled as the modules that define them are imported


@dataclass(frozen=True)
class Artifact:
    """A kind of cache entry: its folder in the cache (`kind`), the version that enters its keys, and the code
    (modules, functions, classes) whose behaviour defines its outcome, watched by tests/test_artifacts.py."""

    kind: str
    version: int
    code: tuple

    def __post_init__(self):
        if not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"{self.kind}: version must be an integer >= 1, got {self.version!r}")
        other = REGISTRY.get(self.kind)  # the same module imported again (a reload) registers the same code
        if other is not None and other.code != self.code and other.code_hash() != self.code_hash():
            raise ValueError(f"two artifacts of kind {self.kind!r}")
        REGISTRY[self.kind] = self

    def key(self, config):
        """The cache key of the entry `config` describes: config, kind, version and torch's version."""
        from lib.infra.cache import config_hash  # lib.infra.cache imports torch; this module stays light
        return config_hash({"artifact": self.kind, "version": self.version, "config": config})

    def code_hash(self):
        h = hashlib.sha256()
        for obj in self.code:
            h.update(code_text(obj).encode())
        return h.hexdigest()[:16]


def all_artifacts():
    """Every Artifact the lib package defines (its modules are imported to find them)."""
    import lib
    for info in pkgutil.walk_packages(lib.__path__, "lib."):
        if not info.name.endswith("__main__"):  # a command line, not a module to import
            importlib.import_module(info.name)
    return dict(sorted(REGISTRY.items()))


def recorded():
    """{kind: {"version", "code"}} as last recorded."""
    return json.loads(RECORD.read_text()) if RECORD.exists() else {}


def record():
    """Write every artifact's version and code hash to RECORD (after deciding: refactor, or a version bump)."""
    table = {kind: {"version": a.version, "code": a.code_hash()} for kind, a in all_artifacts().items()}
    RECORD.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    return table


if __name__ == "__main__":
    if sys.argv[1:] != ["record"]:
        sys.exit("usage: python -m lib.infra.artifacts record")
    from lib.infra import artifacts  # the module the artifacts register with, not this __main__ copy
    for kind, row in artifacts.record().items():
        print(f"{kind}: version {row['version']}, code {row['code']}")
