"""The Ray backend: ember programs run unchanged on Ray (EMBER_BACKEND=ray or a cluster
address). Each test runs a program in a fresh interpreter, as a user would, so Ray's processes
and threads never mix with the other tests' nodes."""

from __future__ import annotations

import os

import pytest

from .conftest import run_python
from .test_seed import SEED_PROGRAM, check_seed_output

pytest.importorskip("ray")

#: Ray starts its GCS, raylet and workers first: give each program time for that.
RAY_TIMEOUT = 120

API_PROGRAM = '''
import os, time
import numpy as np
import ember
from ember import exceptions

from ember.job_config import JobConfig
info = ember.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                  job_config=JobConfig(ray_namespace="jobs"))
import ray
assert ray.is_initialized() and ember.is_initialized()
print("resources", sorted(ember.cluster_resources()))

@ember.remote
def square(x):
    return x * x

@ember.remote
def sum_of_squares(n):
    # runs in a Ray worker: its ember calls must go to Ray too
    return sum(ember.get([square.remote(i) for i in range(n)]))

@ember.remote(num_returns=2)
def pair():
    return "a", "b"

@ember.remote
def count_to(n):  # a streaming generator on Ray too
    for i in range(n):
        yield i

@ember.remote(max_retries=0)
def fails():
    raise ValueError("bad value")

@ember.remote
def sleeps(s):
    time.sleep(s)
    return s

@ember.remote
class Counter:
    def __init__(self, start):
        self.n = start

    def add(self, k):
        self.n += k
        return self.n

    @ember.method(num_returns=2)
    def both(self):
        return self.n, -self.n

    def times10(self, v):
        return v * 10

print("tasks", ember.get(square.remote(7)), ember.get(sum_of_squares.remote(4)),
      ember.get(list(pair.remote())))
print("put", float(ember.get(ember.put(np.arange(1000.0))).sum()))
print("stream", [ember.get(r) for r in count_to.remote(3)], ember.get_runtime_context().namespace)
ready, pending = ember.wait([sleeps.remote(0), sleeps.remote(30)], num_returns=1, timeout=20)
print("wait", len(ready), len(pending))

try:
    ember.get(fails.remote())
except ValueError as e:  # the task's own class, and ember's TaskError
    print("task error", isinstance(e, exceptions.TaskError), "bad value" in str(e))

try:
    ember.get(sleeps.remote(30), timeout=0.2)
except exceptions.GetTimeoutError:
    print("timeout ok")

slow = sleeps.remote(30)
time.sleep(0.5)
ember.cancel(slow, force=True)
try:
    ember.get(slow, timeout=30)
except (exceptions.TaskCancelledError, exceptions.WorkerCrashedError) as e:
    print("cancelled", type(e).__name__)

c = Counter.options(name="counter").remote(10)
print("actor", ember.get([c.add.remote(1), c.add.remote(2)]), ember.get(list(c.both.remote())))
same = ember.get_actor("counter")
print("named", ember.get(same.add.remote(0)), ember.util.list_named_actors())
ember.kill(c)
deadline = time.time() + 30
while time.time() < deadline:  # Ray's kill is asynchronous: a call may still get through
    try:
        ember.get(c.add.remote(1), timeout=30)
    except exceptions.ActorDiedError:
        print("killed ok")
        break
    time.sleep(0.1)

from ember.util import ActorPool
pool = ActorPool([Counter.remote(0), Counter.remote(0)])
print("pool", list(pool.map(lambda a, v: a.times10.remote(v), [1, 2, 3, 4])))

from ember.util import placement_group, remove_placement_group
from ember.util.scheduling_strategies import PlacementGroupSchedulingStrategy
pg = placement_group([{"CPU": 1}])  # Ray's own group, and ember's strategy goes to Ray as Ray's
in_pg = square.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg))
print("placement group", ember.get(pg.ready()) == pg, ember.get(in_pg.remote(3)))
remove_placement_group(pg)

import threading
class Locked:
    def __init__(self, x):
        self.x = x
        self.lock = threading.Lock()
ember.util.register_serializer(Locked, serializer=lambda a: a.x, deserializer=Locked)
print("serializer", ember.get(ember.put(Locked(7))).x)
ember.shutdown()
print("down", ember.is_initialized(), ray.is_initialized())
'''


def ray_env() -> dict:
    return {**os.environ, "EMBER_BACKEND": "ray", "RAY_USAGE_STATS_ENABLED": "0"}


def test_the_seed_tutorial_runs_on_ray_as_written():
    result = run_python(SEED_PROGRAM, timeout=RAY_TIMEOUT, env=ray_env())
    assert result.returncode == 0, result.stderr
    check_seed_output(result.stdout)


def test_the_api_goes_to_ray_in_the_driver_and_in_workers():
    result = run_python(API_PROGRAM, timeout=RAY_TIMEOUT, env=ray_env())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("resources ['CPU'"), result.stdout
    assert lines[7] in ("cancelled TaskCancelledError", "cancelled WorkerCrashedError")
    assert lines[1:7] + lines[8:] == [
        "tasks 49 14 ['a', 'b']",
        "put 499500.0",
        "stream [0, 1, 2] jobs",
        "wait 1 1",
        "task error True True",
        "timeout ok",
        "actor [11, 13] [13, -13]",
        "named 13 ['counter']",
        "killed ok",
        "pool [10, 20, 30, 40]",
        "placement group True 9",
        "serializer 7",
        "down False False",
    ], result.stdout


def test_a_cluster_address_without_ray_installed_says_what_to_install():
    result = run_python(
        """
        import sys
        sys.modules["ray"] = None  # as if Ray were not installed
        import ember
        try:
            ember.init(address="ray://head:10001")
        except ImportError as e:
            print(e)
        """,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'ember[ray]'" in result.stdout


def test_an_ember_node_option_is_refused_under_ray_not_dropped():
    result = run_python(
        """
        import sys
        import ember
        try:
            ember.init(memory_usage_threshold=0.5)
        except ValueError as e:
            print(e)
        print("ray started:", "ray" in sys.modules and sys.modules["ray"].is_initialized())
        """,
        timeout=60, env=ray_env())
    assert result.returncode == 0, result.stderr
    assert "init(memory_usage_threshold=...) is an option of ember's own node" in result.stdout
    assert "ray started: False" in result.stdout
