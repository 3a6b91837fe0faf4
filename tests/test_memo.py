"""lib.infra.memo: a measurement's nested result survives the cache bit for bit (types, dtypes, shapes, values), is
built once, and what cannot be stored safely is refused."""
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import torch

from lib.infra import cache, memo
from lib.boundary.curvature import BoundaryPoints


def _value():
    g = torch.Generator().manual_seed(0)
    frame = pd.DataFrame({"dataset": ["mnist", "fashion_mnist", None], "k": np.array([16, 16, 32]),
                          "ratio": np.array([0.5, np.nan, 2.0], dtype=np.float32), "ok": [True, False, True]})
    bp = BoundaryPoints(torch.rand(3, 1, 2, 2, generator=g), torch.rand(3, 1, 2, 2, generator=g),
                        torch.tensor([1, 2, 3]), torch.tensor([0, 0, 1]), torch.tensor([True, False, True]))
    return ([frame, frame.iloc[[2, 0]]], {("test", "softplus twin"): np.linspace(-1, 1, 5), ("train", "x"): None},
            {"test": bp}, [{"AUC": 0.25, "n": 3, "note": "text"}], np.float32(1.5), (torch.arange(4.0), "a"))


def _same(a, b):
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    elif isinstance(a, BoundaryPoints):
        for f in ("x", "z", "i", "j", "success"):
            _same(getattr(a, f), getattr(b, f))
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    else:
        assert type(a) is type(b) and a == b


def test_a_packed_value_is_unpacked_bit_for_bit():
    value, tensors = _value(), {}
    meta = memo.pack(value, tensors)
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())
    _same(value, memo.unpack(meta, tensors))


def test_a_result_is_built_once_and_read_back_from_a_weights_only_entry(tmp_cache):
    calls = []

    def build():
        calls.append(1)
        return _value()

    first, hit1 = memo.cached_result("results", "k1", build)
    second, hit2 = memo.cached_result("results", "k1", build)
    assert (hit1, hit2, len(calls)) == (False, True, 1)
    _same(_value(), first)
    _same(_value(), second)
    entry = torch.load(cache.entry_path("results", "k1"), weights_only=True)  # plain metadata and tensors only
    assert entry["key"] == "k1"


def test_what_cannot_be_stored_safely_is_refused():
    @dataclass
    class Foreign:
        a: int

    with pytest.raises(TypeError, match="only dataclasses of lib"):
        memo.pack(Foreign(1), {})
    with pytest.raises(TypeError, match="cannot store a set"):
        memo.pack({1, 2}, {})


@pytest.mark.parametrize("named", ["os:system", "lib.infra.runtime:show", "lib.infra.memo:RefusedEntry",
                                   "lib.learn.train:np", "lib..os:system"])
def test_a_planted_entry_naming_anything_but_a_lib_dataclass_is_refused_and_rebuilt(tmp_cache, tmp_path, named):
    """A shared cache holds an entry, under the right key, whose packed value names a function to call (`os.system`
    with a shell command, a lib function, a lib class that is no dataclass, a module lib imports, a bad module path).
    Reading it must call nothing: the marker file is never created, the entry is reported and rebuilt."""
    marker = tmp_path / "ran"
    planted = {"__memo__": "dataclass", "class": named, "fields": {"command": f"touch {marker}"}}
    cache.save_atomic({"key": "k", "state_dict": {}, "meta": {"value": planted}}, cache.entry_path("results", "k"))
    with pytest.warns(UserWarning, match=r"results.*refused .*not a dataclass of lib|cannot be imported"):
        value, hit = memo.cached_result("results", "k", lambda: {"rebuilt": 1})
    assert not marker.exists() and (value, hit) == ({"rebuilt": 1}, False)
    assert memo.cached_result("results", "k", lambda: None) == ({"rebuilt": 1}, True)  # the rebuilt entry is read


def test_a_planted_lib_dataclass_with_foreign_fields_is_refused(tmp_cache):
    planted = {"__memo__": "dataclass", "class": "lib.boundary.curvature:BoundaryPoints", "fields": {"evil": 1}}
    cache.save_atomic({"key": "k", "state_dict": {}, "meta": {"value": planted}}, cache.entry_path("results", "k"))
    with pytest.warns(UserWarning, match="fields it does not have"):
        assert memo.cached_result("results", "k", lambda: 7) == (7, False)
