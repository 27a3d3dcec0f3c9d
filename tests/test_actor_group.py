"""ActorGroup: actors of one class made, called and ended together (Ray's deprecated
ray.util.actor_group)."""

from __future__ import annotations

import os
import time

import pytest

import ember
from ember.util import ActorGroup


class Member:
    def __init__(self, base=0):
        self.base = base

    def add(self, x):
        return self.base + x

    def pid(self):
        return os.getpid()

    def get_actor_metadata(self):
        return f"member {self.base}"


def cpus_left():
    return ember.available_resources().get("CPU", 0.0)


def settle(predicate, seconds=10):
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def test_a_group_is_made_called_and_ended_together(node):
    with pytest.warns(DeprecationWarning, match="ember.util.multiprocessing"):
        group = ActorGroup(Member, num_actors=2, init_kwargs={"base": 10})
    assert len(group) == 2 and group.actor_metadata == ["member 10", "member 10"]
    assert ember.get(group.add.remote(1)) == [11, 11]
    assert len(set(ember.get(group.pid.remote()))) == 2  # two processes
    assert settle(lambda: cpus_left() == 0.0)  # each holds its CPU
    group.shutdown()
    assert settle(lambda: cpus_left() == 2.0)
    with pytest.raises(RuntimeError, match="shut down"):
        group.add.remote(1)
    group.start()
    assert ember.get(group[0].add.remote(2)) == 12
    with pytest.raises(RuntimeError, match="running"):
        group.start()
    group.shutdown(0)  # killed at once


def test_calls_and_arguments_that_cannot_work_are_refused(node):
    group = ActorGroup(Member, num_actors=1, num_cpus_per_actor=2)
    assert settle(lambda: cpus_left() == 0.0)
    with pytest.raises(TypeError, match=r"\.add\.remote"):
        group.add(1)
    with pytest.raises(AttributeError):
        group.no_such_method.remote()
    group.shutdown()
    for bad in ({"num_actors": 0}, {"num_actors": -1}, {"num_cpus_per_actor": -1}):
        with pytest.raises(ValueError):
            ActorGroup(Member, **bad)
