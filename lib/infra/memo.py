"""Cached results of a measurement (not a model): any nesting of tables, arrays and numbers, stored through
lib.infra.cache.

`cached_result(kind, key, build)` returns build()'s value, from the cache entry `key` of `kind` where there is one
(lib.infra.cache: atomic writes, a per-key lock, damaged entries rebuilt). A lib.infra.cache entry holds tensors and
plain metadata only (`torch.load(weights_only=True)` reads it), so the value is packed: every tensor, numpy array and
numeric table column goes to the state_dict under a numbered name, and the structure around them (dicts with any
keys, lists, tuples, strings, numbers, the text columns of a table, the fields of a dataclass) to the metadata.
Unpacking gives back the same types, dtypes, shapes and values, bit for bit.
Dataclasses are rebuilt by their module and class name, so only classes of this package (lib.*) are accepted, and
the same rule is checked again on reading: an entry naming anything else (a function, a class of another package: a
planted entry in a shared cache) is refused before anything it names is called, reported and rebuilt.
"""
import dataclasses
import importlib

import numpy as np
import pandas as pd
import torch

from lib.infra import cache

_TAG = "__memo__"


def _tensor_name(tensors):
    return f"t{len(tensors)}"


def pack(value, tensors):
    """`value` as plain metadata, its tensors and arrays moved into `tensors` {name: tensor} (module docstring)."""
    if isinstance(value, torch.Tensor):
        name = _tensor_name(tensors)
        tensors[name] = value.detach().cpu().clone()
        return {_TAG: "tensor", "name": name}
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return {_TAG: "objects", "items": [pack(v, tensors) for v in value.tolist()], "shape": list(value.shape)}
        name = _tensor_name(tensors)
        tensors[name] = torch.from_numpy(np.ascontiguousarray(value).copy())
        return {_TAG: "ndarray", "name": name}
    if isinstance(value, np.generic):
        return {_TAG: "scalar", "dtype": value.dtype.str, "value": value.item()}
    if isinstance(value, pd.DataFrame):
        default_index = isinstance(value.index, pd.RangeIndex) and value.index.equals(pd.RangeIndex(len(value)))
        return {_TAG: "frame", "columns": [[pack(c, tensors), _column(value[c], tensors)] for c in value.columns],
                "index": None if default_index else pack(value.index.to_numpy(), tensors), "rows": len(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        if not _ours(cls):
            raise TypeError(f"only dataclasses of lib.* are stored, got {cls.__module__}.{cls.__qualname__}")
        return {_TAG: "dataclass", "class": f"{cls.__module__}:{cls.__qualname__}",
                "fields": {f.name: pack(getattr(value, f.name), tensors) for f in dataclasses.fields(value)}}
    if isinstance(value, dict):
        return {_TAG: "dict", "items": [[pack(k, tensors), pack(v, tensors)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        items = [pack(v, tensors) for v in value]
        return items if isinstance(value, list) else {_TAG: "tuple", "items": items}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in a results cache entry")


class RefusedEntry(ValueError):
    """A stored value that `pack` could not have written (it names a class outside lib.*, or no dataclass)."""


def _ours(cls):
    return isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__.startswith("lib.")


def _dataclass_named(name):
    """The class a packed dataclass names, if `pack` could have stored it: a dataclass defined in a lib.* module.
    Checked before anything is called: only a lib module is imported, and the class must be one of its dataclasses."""
    module, _, qualname = str(name).partition(":")
    if not (module.startswith("lib.") and qualname.isidentifier()):
        raise RefusedEntry(f"names {name!r}, not a dataclass of lib.*")
    try:
        cls = getattr(importlib.import_module(module), qualname, None)
    except ImportError as err:
        raise RefusedEntry(f"names {name!r}, whose module cannot be imported") from err
    if not _ours(cls) or cls.__qualname__ != qualname:
        raise RefusedEntry(f"names {name!r}, not a dataclass of lib.*")
    return cls


def _column(series, tensors):
    """A table column: numeric and boolean columns as one array, anything else as a list of packed values."""
    if series.dtype.kind in "biuf":
        return {_TAG: "column", "values": pack(series.to_numpy(), tensors)}
    return {_TAG: "column", "values": [pack(v, tensors) for v in series.tolist()], "dtype": str(series.dtype)}


def unpack(meta, tensors):
    """The value `pack` stored as `meta` with `tensors`."""
    if isinstance(meta, list):
        return [unpack(v, tensors) for v in meta]
    if not isinstance(meta, dict):
        return meta
    tag = meta[_TAG]
    if tag == "tensor":
        return tensors[meta["name"]]
    if tag == "ndarray":
        return tensors[meta["name"]].numpy()
    if tag == "objects":
        out = np.empty(len(meta["items"]), dtype=object)
        out[:] = [unpack(v, tensors) for v in meta["items"]]
        return out.reshape(meta["shape"])
    if tag == "scalar":
        return np.dtype(meta["dtype"]).type(meta["value"])
    if tag == "frame":
        frame = pd.DataFrame({unpack(c, tensors): _uncolumn(col, tensors) for c, col in meta["columns"]},
                             index=None if meta["index"] is None else unpack(meta["index"], tensors))
        return frame if len(frame.columns) else pd.DataFrame(index=pd.RangeIndex(meta["rows"]))
    if tag == "dataclass":
        cls = _dataclass_named(meta["class"])
        names = {f.name for f in dataclasses.fields(cls)}
        if set(meta["fields"]) - names:
            raise RefusedEntry(f"gives {meta['class']} fields it does not have: {sorted(set(meta['fields']) - names)}")
        return cls(**{k: unpack(v, tensors) for k, v in meta["fields"].items()})
    if tag == "dict":
        return {unpack(k, tensors): unpack(v, tensors) for k, v in meta["items"]}
    if tag == "tuple":
        return tuple(unpack(v, tensors) for v in meta["items"])
    raise RefusedEntry(f"holds an unknown packed value {tag!r}")


def _uncolumn(col, tensors):
    values = unpack(col["values"], tensors)
    return values if "dtype" not in col else pd.Series(values, dtype=col["dtype"]).to_numpy()


def cached_result(kind, key, build):
    """(build()'s value, hit): from the cache entry `key` of `kind` (lib.infra.cache.cached) where it holds one, else
    computed, packed and stored atomically."""
    def store():
        tensors = {}
        meta = pack(build(), tensors)
        return tensors, {"value": meta}
    entry, hit = cache.cached(kind, key, store)
    try:
        return unpack(entry["meta"]["value"], entry["state_dict"]), hit
    except RefusedEntry as err:  # not written by pack: never read it; report, remove, rebuild
        cache.discard(kind, key, f"refused ({err})")
        entry, hit = cache.cached(kind, key, store)
        return unpack(entry["meta"]["value"], entry["state_dict"]), hit
