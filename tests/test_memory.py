"""The memory monitor: a task that eats the machine's memory is killed, not the node."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

import ember
from ember.exceptions import OutOfMemoryError

from .conftest import STORE_BYTES


@pytest.fixture
def tight_node():
    # The monitor sees only 600 MiB more than what is in use now (a safe, small limit).
    vm = psutil.virtual_memory()
    limit = vm.total - vm.available + (600 << 20)
    ember.init(num_cpus=2, object_store_memory=STORE_BYTES, _memory_limit=limit)
    yield ember._node.current()
    ember.shutdown()


@ember.remote(max_retries=1)
def hog(started_log):
    with open(started_log, "a") as f:
        f.write(f"{time.monotonic()}\n")
    blocks = []
    for _ in range(30):  # up to 3 GiB: far past the limit, far below the machine's memory
        blocks.append(bytearray(100 << 20))
        time.sleep(0.02)
    return len(blocks)


@ember.remote
def steady(seconds):
    time.sleep(seconds)
    return "alive"


def test_a_memory_hog_is_killed_and_retried_then_fails(tight_node, tmp_path):
    bystander = steady.remote(2.0)
    started_log = tmp_path / "starts"
    with pytest.raises(OutOfMemoryError) as info:
        ember.get(hog.remote(str(started_log)), timeout=30)
    assert isinstance(info.value, MemoryError)
    message = str(info.value)
    assert "hog" in message and "memory monitor" in message and "95%" in message
    assert tight_node.scheduler.stats()["oom_kills"] == 2  # the first run and its one retry
    first, retry = (float(t) for t in started_log.read_text().split())
    assert retry - first >= 1.0  # the retry waited out the 1 s backoff after the kill
    assert ember.get(bystander, timeout=10) == "alive"  # the other worker was spared
    assert ember.get(steady.remote(0)) == "alive"  # and the node goes on


def test_bad_threshold():
    with pytest.raises(ValueError, match="memory_usage_threshold"):
        ember.init(memory_usage_threshold=1.5)


def test_a_dead_workers_refs_views_and_half_written_object_are_released():
    ember.init(num_cpus=1, object_store_memory=STORE_BYTES)
    try:
        node = ember._node.current()
        import numpy as np

        shared = ember.put(np.ones(1 << 20))  # the driver's; the worker will view it
        baseline = node.store.stats()

        @ember.remote(max_retries=0)
        def hold_and_hang(shared_list):
            store = ember._node.current().store
            mine = ember.put(np.ones(1 << 20))  # a ref only this worker holds
            view = ember.get(shared_list[0])  # a pin on the driver's object
            half = store.debug_half_write(1 << 20)  # an object it never sealed
            print("holding", half, flush=True)
            time.sleep(60)
            return mine, view

        ref = hold_and_hang.remote([shared])
        deadline = time.monotonic() + 10
        # Its function, its arguments, its promised return, `mine` and `half`.
        while node.store.stats()["num_objects"] < baseline["num_objects"] + 5:
            assert time.monotonic() < deadline, "the task never took its holds"
            time.sleep(0.02)
        (pid,) = [p for p in node.scheduler.worker_pids()]
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(ember.exceptions.WorkerCrashedError):
            ember.get(ref, timeout=10)
        # Its ref, its view and the object it was writing are all gone; only the driver's
        # objects remain: `shared`, the function, and the crash's error object (`ref`).
        deadline = time.monotonic() + 5
        while node.store.stats()["num_objects"] > baseline["num_objects"] + 2:
            assert time.monotonic() < deadline, node.store.stats()
            time.sleep(0.02)
        del ref
        del shared  # no pin of the dead worker keeps it
        assert node.store.stats()["num_objects"] == baseline["num_objects"]  # the function
        node.store.check()
    finally:
        ember.shutdown()


def test_a_queued_tasks_argument_outlives_the_last_driver_ref():
    ember.init(num_cpus=1, object_store_memory=STORE_BYTES)
    try:
        import numpy as np

        node = ember._node.current()

        @ember.remote
        def block(seconds):
            time.sleep(seconds)

        @ember.remote
        def total(a):
            return float(a.sum())

        blocker = block.remote(0.5)  # the only CPU is busy: the next task waits in the queue
        arg = ember.put(np.arange(1000.0))
        ref = total.remote(arg)
        del arg  # the last driver ref goes while the task is queued
        assert ember.get(ref) == 499500.0
        ember.get(blocker)
        del ref, blocker
        deadline = time.monotonic() + 5
        while node.store.stats()["num_objects"] > 2:  # function objects only
            assert time.monotonic() < deadline, node.store.stats()
            time.sleep(0.02)
    finally:
        ember.shutdown()


def test_a_store_full_of_pinned_objects_fails_fast_then_recovers():
    ember.init(num_cpus=1, object_store_memory=STORE_BYTES)
    try:
        import numpy as np

        chunk = np.ones(STORE_BYTES // 4 // 8)
        views = [ember.get(ember.put(chunk)) for _ in range(3)]  # pinned by views only
        start = time.monotonic()
        with pytest.raises(ember.exceptions.ObjectStoreFullError):
            ember.put(chunk)
        assert time.monotonic() - start < 1.0
        views.pop()
        ember.put(chunk)  # room again once one view is gone
    finally:
        ember.shutdown()


def test_idle_store_gives_free_memory_back(monkeypatch):
    import numpy as np

    monkeypatch.setenv("EMBER_IDLE_TRIM_SECONDS", "1")  # 10 s by default
    ember.init(num_cpus=1, object_store_memory=STORE_BYTES)
    try:
        node = ember._node.current()

        def resident() -> int:  # bytes the kernel holds for the segment
            return os.fstat(node.store.fd).st_blocks * 512

        keep = ember.put(np.ones(1 << 20))  # 8 MiB that must stay
        for _ in range(20):
            ref = ember.put(np.ones(4 << 20))  # 32 MiB each, freed at once
            del ref
        assert resident() > 32 << 20
        deadline = time.monotonic() + 5  # after a second without allocations
        while resident() > (24 << 20) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert resident() <= 24 << 20  # the live 8 MiB, the table and headers remain
        assert ember.get(keep).sum() == 1 << 20  # live data untouched
        ref = ember.put(np.full(4 << 20, 2.0))  # and trimmed memory is usable again
        assert ember.get(ref)[-1] == 2.0
        node.store.check()
    finally:
        ember.shutdown()
