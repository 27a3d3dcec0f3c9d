"""Nested gets and waits on fresh nodes: no task waits behind a blocked worker, and extra
workers started for blocked ones go again once idle.

Each test starts its own node: prestarted workers from an earlier test would hide a deadlock.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import ember
from ember.exceptions import GetTimeoutError

from .conftest import STORE_BYTES

#: Generous: a deadlock shows as a GetTimeoutError instead of a hung test.
GET_TIMEOUT = 30


@pytest.fixture(params=[1, 2, 4], ids=lambda n: f"cpus{n}")
def fresh(request):
    ember.init(num_cpus=request.param, object_store_memory=STORE_BYTES)
    try:
        yield request.param
    finally:
        ember.shutdown()


@ember.remote
def chain(depth):
    return 0 if depth == 0 else 1 + ember.get(chain.remote(depth - 1))


@ember.remote(num_cpus=0.5)
def half_chain(depth):
    return 0 if depth == 0 else 1 + ember.get(half_chain.remote(depth - 1))


@ember.remote
def leaf(x):
    return x


@ember.remote
def fan(width, depth):
    if depth == 0:
        return 1
    return sum(ember.get([fan.remote(width, depth - 1) for _ in range(width)]))


@ember.remote
def wait_all(n):
    refs = [leaf.remote(i) for i in range(n)]
    ready, pending = ember.wait(refs, num_returns=n)
    assert not pending
    return sum(ember.get(ready))


@ember.remote
class Gatherer:
    def gather(self, n):
        return sum(ember.get([chain.remote(2) for _ in range(n)]))


def node_still_works():
    assert ember.get([leaf.remote(i) for i in range(20)], timeout=GET_TIMEOUT) == list(range(20))


def alive_workers() -> int:
    return ember._node.current().scheduler.stats()["workers_alive"]


def test_a_chain_deeper_than_the_cpus(fresh):
    depth = 3 * fresh + 1
    assert ember.get(chain.remote(depth), timeout=GET_TIMEOUT) == depth
    node_still_works()


def test_several_chains_at_once(fresh):
    # Sent from the driver straight into workers' rings, several deep each: those queued
    # behind a chain's blocked head must move to other workers.
    refs = [chain.remote(3) for _ in range(2 * fresh + 2)]
    assert ember.get(refs, timeout=GET_TIMEOUT) == [3] * len(refs)
    node_still_works()


def test_a_fan_of_fans(fresh):
    assert ember.get(fan.remote(3, 2), timeout=GET_TIMEOUT) == 9
    node_still_works()


def test_fractional_cpu_chain(fresh):
    assert ember.get(half_chain.remote(2 * fresh + 1), timeout=GET_TIMEOUT) == 2 * fresh + 1
    node_still_works()


def test_a_task_that_blocks_in_wait(fresh):
    assert ember.get(wait_all.remote(8), timeout=GET_TIMEOUT) == sum(range(8))
    node_still_works()


def test_an_actor_method_that_blocks_on_tasks(fresh):
    g = Gatherer.remote()
    assert ember.get(g.gather.remote(3), timeout=GET_TIMEOUT) == 6
    node_still_works()


def test_a_nested_get_timeout_raises_in_the_task(fresh):
    @ember.remote
    def never():
        time.sleep(60)

    @ember.remote
    def impatient():
        ref = never.remote()
        try:
            ember.get(ref, timeout=0.2)
        except GetTimeoutError:
            return "timed out", [ref]
        return "got it", [ref]

    outcome, [slow] = ember.get(impatient.remote(), timeout=GET_TIMEOUT)
    assert outcome == "timed out"
    ember.cancel(slow)  # it holds a CPU for a minute otherwise
    node_still_works()


def test_workers_started_for_blocked_ones_are_retired_when_idle(fresh):
    depth = 3 * fresh + 1
    assert ember.get(chain.remote(depth), timeout=GET_TIMEOUT) == depth
    assert alive_workers() > fresh  # extra workers were started for the chain
    deadline = time.monotonic() + 20
    while alive_workers() > fresh and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive_workers() == fresh
    node_still_works()


def test_spinning_stops_while_the_cpus_are_contended():
    # More CPU-bound processes than cores beside a stream of tiny tasks: the node's processes
    # queue for CPUs, so the scheduler tells waiters to sleep at once instead of spinning.
    ember.init(num_cpus=2, object_store_memory=STORE_BYTES)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
               for _ in range(2 * (os.cpu_count() or 1))]
    try:
        stats = ember._node.current().scheduler.stats
        deadline = time.monotonic() + 20
        while not stats()["cpus_contended"] and time.monotonic() < deadline:
            ember.get([leaf.remote(i) for i in range(200)], timeout=GET_TIMEOUT)
        assert stats()["cpus_contended"]
    finally:
        for b in burners:
            b.kill()
            b.wait()
    try:
        deadline = time.monotonic() + 20
        while stats()["cpus_contended"] and time.monotonic() < deadline:
            ember.get([leaf.remote(i) for i in range(20)], timeout=GET_TIMEOUT)
            time.sleep(0.05)
        assert not stats()["cpus_contended"]
    finally:
        ember.shutdown()
