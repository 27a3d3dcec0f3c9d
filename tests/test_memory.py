"""The memory monitor: a task that eats the machine's memory is killed, not the node."""

from __future__ import annotations

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
def hog():
    blocks = []
    for _ in range(30):  # up to 3 GiB: far past the limit, far below the machine's memory
        blocks.append(bytearray(100 << 20))
        time.sleep(0.02)
    return len(blocks)


@ember.remote
def steady(seconds):
    time.sleep(seconds)
    return "alive"


def test_a_memory_hog_is_killed_and_retried_then_fails(tight_node):
    bystander = steady.remote(2.0)
    with pytest.raises(OutOfMemoryError) as info:
        ember.get(hog.remote(), timeout=30)
    assert isinstance(info.value, MemoryError)
    message = str(info.value)
    assert "hog" in message and "memory monitor" in message and "95%" in message
    assert tight_node.scheduler.stats()["oom_kills"] == 2  # the first run and its one retry
    assert ember.get(bystander, timeout=10) == "alive"  # the other worker was spared
    assert ember.get(steady.remote(0)) == "alive"  # and the node goes on


def test_bad_threshold():
    with pytest.raises(ValueError, match="memory_usage_threshold"):
        ember.init(memory_usage_threshold=1.5)
