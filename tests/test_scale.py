"""Scale: how many objects and tasks can exist at once, what they cost, and what happens when
memory runs out. Small sizes here; bench/scale.py runs the full envelope (1M tasks, 4 GiB)."""

from __future__ import annotations

import os
import re
import time

import pytest

import ember
from ember import _core
from ember.exceptions import ObjectStoreFullError
from ember.serialization import serialize

MiB = 1 << 20


def put(store, value):
    return store.put(*serialize(value))


def allocated_bytes(store) -> int:
    """Bytes of the segment's memfd that hold pages (holes cost nothing)."""
    return os.fstat(store.fd).st_blocks * 512


@pytest.mark.timeout(30)
def test_the_table_has_room_for_ten_million_objects_whatever_the_store_size():
    store = _core.Store.create(_core.StoreOptions(capacity=MiB, prefault=False))
    try:
        assert store.stats()["table_capacity"] * 7 // 8 >= 10_000_000
        # ... and costs nothing until used: a GiB of table is address space, not memory.
        assert allocated_bytes(store) < 2 * MiB
    finally:
        store.close()


@pytest.mark.timeout(30)
def test_a_full_table_is_an_object_store_full_error_with_the_counts():
    store = _core.Store.create(_core.StoreOptions(capacity=8 * MiB, table_capacity=64,
                                                  prefault=False))
    try:
        refs = [put(store, i) for i in range(56)]  # 7/8 of 64
        with pytest.raises(ObjectStoreFullError) as info:
            put(store, "one more")
        msg = str(info.value)
        assert "56 objects" in msg, msg
        assert re.search(r"has [0-9.]+ [KMG]?i?B in use", msg), msg
        del refs
        put(store, "room again")  # freed entries are reused
    finally:
        store.close()


@pytest.mark.timeout(30)
def test_running_out_of_memory_says_how_many_objects_and_bytes_are_in_use():
    # No spill directory: memory is all there is.
    store = _core.Store.create(_core.StoreOptions(capacity=MiB, prefault=False))
    try:
        refs = []
        with pytest.raises(ObjectStoreFullError) as info:
            for _ in range(10_000):
                refs.append(put(store, b"x" * 4000))
        msg = str(info.value)
        assert f"by {len(refs)} objects" in msg, msg
        assert "in use" in msg and "object_store_memory" in msg, msg
        assert "table" not in msg, "memory ran out, not the table"
    finally:
        store.close()


@pytest.mark.timeout(60)
def test_idle_trim_gives_emptied_table_pages_back(tmp_path):
    store = _core.Store.create(_core.StoreOptions(capacity=16 * MiB, prefault=False,
                                                  spill_dir=str(tmp_path), idle_trim_s=0.3))
    try:
        start = allocated_bytes(store)
        refs = [put(store, i) for i in range(20_000)]
        full = allocated_bytes(store)
        assert full - start >= 20_000 * 64, "64 bytes of table per object"
        del refs
        deadline = time.monotonic() + 20
        while allocated_bytes(store) > start + 256 * 1024 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert allocated_bytes(store) <= start + 256 * 1024, (start, full, allocated_bytes(store))
        # The punched pages read as empty slots and take objects again.
        refs = [put(store, i) for i in range(1000)]
        store.check()
    finally:
        store.close()


@pytest.mark.timeout(60)
def test_a_small_store_indexes_ten_million_objects_and_runs_a_queue_of_tasks():
    # A 16 MiB store had a 64 Ki-slot table: 57,344 objects at most, promised task returns
    # included (1M queued tasks failed after 458,752 in a 7 GiB store). Now its memory is
    # the limit, and a queued task's promised return needs none of it.
    ember.init(num_cpus=2, object_store_memory=16 * MiB)
    try:
        assert ember._node.current().store.stats()["table_capacity"] * 7 // 8 >= 10_000_000

        @ember.remote
        def noop():
            return None

        refs = [noop.remote() for _ in range(20_000)]
        assert ember.get(refs[-1]) is None
        assert ember.get(refs) == [None] * len(refs)
    finally:
        ember.shutdown()


@pytest.mark.timeout(60)
def test_many_ref_arguments_and_many_returns(node):
    @ember.remote
    def total(*xs):
        return sum(xs)

    @ember.remote
    def numbers(n):
        return tuple(range(n))

    refs = [ember.put(i) for i in range(10_000)]
    assert ember.get(total.remote(*refs)) == sum(range(10_000))
    returns = numbers.options(num_returns=3000).remote(3000)
    assert ember.get(returns) == list(range(3000))
    assert ember.get(refs) == list(range(10_000))
