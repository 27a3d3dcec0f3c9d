"""put / get: round trips, zero-copy views, ObjectRef behaviour and memory reuse."""

from __future__ import annotations

import asyncio
import collections
import os
import pickle

import numpy as np
import pytest

import ember

from .conftest import STORE_BYTES

Point = collections.namedtuple("Point", "x y")


class Local:
    def __init__(self, v):
        self.v = v

    def __eq__(self, other):
        return isinstance(other, Local) and other.v == self.v


VALUES = [
    0,
    -(2**70),
    3.5,
    "héllo",
    b"\x00" * 10,
    None,
    True,
    [1, [2, (3, {"k": "v"})]],
    {"a": np.arange(3)},
    Point(1, 2),
    Local(7),
    bytearray(b"abc"),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_round_trip(node, value):
    got = ember.get(ember.put(value))
    if isinstance(value, dict):
        assert got.keys() == value.keys()
        np.testing.assert_array_equal(got["a"], value["a"])
    else:
        assert got == value
        assert type(got) is type(value)


def test_lambda_and_local_function_round_trip(node):
    k = 5

    def local(x):
        return x + k

    assert ember.get(ember.put(lambda x: x * 2))(4) == 8
    assert ember.get(ember.put(local))(1) == 6


@pytest.mark.parametrize(
    "array",
    [
        np.arange(1000, dtype=np.float64),
        np.arange(24, dtype=np.int32).reshape(2, 3, 4),
        np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        np.zeros((0, 5)),
        np.array(3.0),
        np.array(["a", "bc"]),
        np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]),
        np.arange(10)[::2],  # not contiguous: pickled in-band
        np.array([{"a": 1}, None], dtype=object),
    ],
    ids=["f8", "3d", "fortran", "empty", "0d", "str", "record", "strided", "object"],
)
def test_numpy_round_trip(node, array):
    got = ember.get(ember.put(array))
    assert got.dtype == array.dtype
    assert got.shape == array.shape
    assert got.tolist() == array.tolist()


def _in_segment(array: np.ndarray) -> bool:
    lo, hi = ember._node.current().store.segment_range
    ptr = array.__array_interface__["data"][0]
    return lo <= ptr and ptr + array.nbytes <= hi


def test_get_returns_read_only_zero_copy_view(node):
    array = np.arange(1 << 20, dtype=np.float64)
    ref = ember.put(array)
    a, b = ember.get(ref), ember.get(ref)
    assert _in_segment(a)
    assert np.shares_memory(a, b)  # two gets, one copy in memory
    assert not np.shares_memory(a, array)
    assert not a.flags.writeable
    with pytest.raises(ValueError):
        a[0] = 1.0
    assert a.__array_interface__["data"][0] % 64 == 0


def test_get_of_a_list_and_of_an_empty_list(node):
    refs = [ember.put(i) for i in range(10)]
    assert ember.get(refs) == list(range(10))
    assert ember.get([]) == []


def test_object_ref_identity_and_repr(node):
    a, b = ember.put(1), ember.put(1)
    assert a != b and a == a
    assert len({a, b, a}) == 2
    assert repr(a) == f"ObjectRef({a.hex()})"
    assert len(a.hex()) == 32
    assert int(a.hex(), 16) != 0
    assert a != "not a ref"


def test_object_refs_from_ids_nil_random_and_futures(node):
    ref = ember.put("v")
    again = ember.ObjectRef.from_binary(ref.binary())
    assert again == ref and ember.get(again) == "v"
    del ref
    assert ember.get(again) == "v"  # from_binary took a count of its own
    assert ember.ObjectRef.from_hex(again.hex()) == again
    nil = ember.ObjectRef.nil()
    assert nil.is_nil() and not again.is_nil()
    assert pickle.loads(pickle.dumps(nil)).is_nil()
    randoms = {ember.ObjectRef.from_random() for _ in range(10)}
    assert len(randoms) == 10 and not any(r.is_nil() for r in randoms)
    assert ember.ObjectID is ember.ObjectRef
    with pytest.raises(ValueError, match="needs to have length 16, got 5"):
        ember.ObjectRef.from_binary(b"short")

    async def awaited():
        return await again.as_future()

    assert asyncio.run(awaited()) == "v"
    constructed = ember.ObjectRef(again.binary())  # Ray's constructor: a count of its own too
    del again
    assert ember.get(constructed) == "v"
    ember.shutdown()
    ember.init(num_cpus=1, object_store_memory=STORE_BYTES)
    stale = ember.ObjectRef(constructed.binary())  # of a node that was shut down: holds nothing
    assert stale == constructed and stale.binary() == constructed.binary()


def test_object_refs_from_ids_need_no_node():
    assert not ember.is_initialized()
    ref = ember.ObjectRef.from_hex("ab" * 16)
    assert ref.hex() == "ab" * 16 and not ref.is_nil()


def test_nested_refs_survive_pickling(node):
    inner = ember.put("inner")
    outer = ember.put([inner, {"again": inner}])
    got = ember.get(outer)
    assert got[0] == inner
    assert ember.get(got[1]["again"]) == "inner"
    assert pickle.loads(pickle.dumps(inner)) == inner


def test_memory_is_reused_after_the_last_ref_goes(node):
    store = node.store
    base = store.stats()
    ref = ember.put(np.ones(4 << 20, dtype=np.uint8))
    used = store.stats()["used_bytes"]
    assert used >= base["used_bytes"] + (4 << 20)
    del ref
    after = store.stats()
    assert after["used_bytes"] == base["used_bytes"]
    assert after["num_objects"] == base["num_objects"]
    # The same size again reuses the freed (warm) memory instead of growing the heap.
    high = after["high_water"]
    ref = ember.put(np.ones(4 << 20, dtype=np.uint8))
    assert store.stats()["high_water"] == high


def test_a_view_pins_its_object(node):
    store = node.store
    ref = ember.put(np.full(1 << 20, 7, dtype=np.uint8))
    view = ember.get(ref)
    del ref
    assert store.stats()["num_objects"] == 1  # the view keeps it
    churn = [ember.put(np.zeros(1 << 20, dtype=np.uint8)) for _ in range(5)]
    assert (view == 7).all()  # not overwritten by later objects
    del churn, view
    assert store.stats()["num_objects"] == 0


def test_many_small_objects_are_freed(node):
    store = node.store
    for _ in range(3):
        refs = [ember.put(i) for i in range(20_000)]
        assert ember.get(refs[-1]) == 19_999
        del refs
        assert store.stats()["num_objects"] == 0
    store.check()


def test_an_object_holds_the_refs_nested_in_it(node):
    store = node.store
    outer = ember.put({"inner": ember.put(np.arange(1000))})  # the inner ref dies at once
    assert store.stats()["num_objects"] == 2
    inner = ember.get(outer)["inner"]
    assert ember.get(inner).sum() == 499500
    del inner
    assert store.stats()["num_objects"] == 2  # still held by `outer`
    del outer
    assert store.stats()["num_objects"] == 0  # freeing the container released what it held


def test_list_objects(node):
    from ember.util.state import list_objects

    array = np.ones(1000)
    ref = ember.put(array)
    view = ember.get(ref)
    (info,) = [o for o in list_objects(detail=True) if o["object_id"] == ref.hex()]
    assert info["state"] == "SEALED"
    assert info["object_size"] >= array.nbytes
    assert info["reference_count"] == 1 and info["pin_count"] == 1
    assert info["pid"] == os.getpid()
    del view, ref
    assert list_objects() == []
