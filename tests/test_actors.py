"""Actors: Ray's actor API on dedicated worker processes."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import sys
import threading
import time

import psutil
import pytest

import ember
from ember.exceptions import ActorDiedError, ActorError, ActorUnavailableError, RayActorError
from ember.util import ActorPool
from ember.util.state import list_tasks

from .conftest import STORE_BYTES


@pytest.fixture
def node():
    ember.init(num_cpus=2, object_store_memory=STORE_BYTES)
    yield ember._node.current()
    ember.shutdown()


@ember.remote
class Counter:
    def __init__(self, start=0):
        self.n = start

    def add(self, k=1):
        self.n += k
        return self.n

    def pid(self):
        return os.getpid()

    @ember.method(num_returns=2)
    def pair(self):
        return self.n, -self.n

    def slow(self, seconds):
        time.sleep(seconds)
        return self.n


def test_calls_run_in_order_and_keep_state(node):
    c = Counter.remote(10)
    assert ember.get([c.add.remote(1) for _ in range(50)]) == list(range(11, 61))
    assert ember.get(c.pair.remote()) == [60, -60]
    assert ember.get(c.pid.remote()) != os.getpid()
    assert repr(c).startswith("Actor(Counter, ")


def test_each_actor_is_its_own_process(node):
    actors = [Counter.remote() for _ in range(5)]
    pids = ember.get([a.pid.remote() for a in actors])
    assert len(set(pids)) == 5
    assert not set(pids) & set(node.scheduler.worker_pids()[:0])  # (task workers aside)


def test_misuse_gets_clear_errors_at_the_call(node):
    with pytest.raises(TypeError, match=r"Actors cannot be instantiated directly. Instead of "
                                        r"'Counter\(\)', use 'Counter.remote\(\)'."):
        Counter()
    c = Counter.remote()
    with pytest.raises(TypeError, match=r"try 'object.add.remote\(\)'"):
        c.add(1)
    with pytest.raises(AttributeError, match="no method 'nope'"):
        c.nope.remote()
    with pytest.raises(TypeError, match="Counter.add"):
        c.add.remote(threading.Lock())
    assert ember.get(c.add.remote(2)) == 2  # nothing was submitted by the failed calls


def test_handles_work_in_tasks_and_other_actors(node):
    c = Counter.remote()

    @ember.remote
    def bump(handle, times):
        return ember.get([handle.add.remote(1) for _ in range(times)])[-1]

    @ember.remote
    class Forwarder:
        def __init__(self, target):
            self.target = target

        def forward(self, k):
            return ember.get(self.target.add.remote(k))

    assert ember.get(bump.remote(c, 5)) == 5
    f = Forwarder.remote(c)
    assert ember.get(f.forward.remote(10)) == 15
    assert ember.get(c.add.remote(0)) == 15


def test_named_actors(node):
    a = Counter.options(name="counter").remote(5)
    assert ember.get(ember.get_actor("counter").add.remote(1)) == 6
    with pytest.raises(ValueError, match="already taken"):
        Counter.options(name="counter").remote()
    b = Counter.options(name="counter", get_if_exists=True).remote()
    assert b == a
    with pytest.raises(ValueError, match="Failed to look up actor with name 'missing'"):
        ember.get_actor("missing")
    other = Counter.options(name="counter", namespace="other").remote(100)
    assert ember.get(ember.get_actor("counter", namespace="other").add.remote(1)) == 101
    assert other != a


def test_kill_fails_pending_calls_and_nothing_else(node):
    c = Counter.remote()
    other = Counter.remote()
    assert ember.get(c.add.remote()) == 1
    slow = c.slow.remote(5)
    time.sleep(0.2)
    ember.kill(c)
    with pytest.raises(ActorDiedError) as info:
        ember.get(slow, timeout=10)
    assert isinstance(info.value, ActorError) and isinstance(info.value, RayActorError)
    with pytest.raises(ActorDiedError, match="ember.kill"):
        ember.get(c.add.remote(), timeout=10)
    assert ember.get(other.add.remote()) == 1  # other actors live on

    @ember.remote
    def task():
        return "ok"

    assert ember.get(task.remote()) == "ok"
    with pytest.raises(ValueError):  # a killed named actor is gone
        named = Counter.options(name="n").remote()
        ember.get(named.add.remote())
        ember.kill(named)
        time.sleep(0.3)
        ember.get_actor("n")


def test_an_error_in_init_fails_every_call_with_the_cause(node):
    @ember.remote
    class Broken:
        def __init__(self):
            raise RuntimeError("cannot start")

        def m(self):
            return 1

    b = Broken.remote()
    for _ in range(2):
        with pytest.raises(ActorDiedError, match="cannot start"):
            ember.get(b.m.remote(), timeout=10)


def test_an_exception_in_a_method_is_raised_like_a_tasks(node):
    @ember.remote
    class Picky:
        def check(self, x):
            if x < 0:
                raise ValueError("negative")
            return x

    p = Picky.remote()
    with pytest.raises(ValueError, match="negative"):
        ember.get(p.check.remote(-1))
    assert ember.get(p.check.remote(3)) == 3  # the actor lives on


def test_max_restarts_restarts_a_dead_actor(node):
    c = Counter.options(max_restarts=1).remote(7)
    pid = ember.get(c.pid.remote())
    assert ember.get(c.add.remote()) == 8
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while True:  # the call after the death runs on the restarted actor (state re-initialised)
        try:
            value = ember.get(c.add.remote(), timeout=10)
            break
        except ActorUnavailableError:  # a call caught in flight by the death, as in Ray
            assert time.monotonic() < deadline
    assert value == 8
    assert ember.get(c.pid.remote()) != pid
    os.kill(ember.get(c.pid.remote()), signal.SIGKILL)  # no restarts left
    time.sleep(0.3)
    with pytest.raises(ActorDiedError):
        ember.get(c.add.remote(), timeout=10)


def test_a_call_in_flight_when_its_actor_restarts_is_unavailable_not_dead(node):
    c = Counter.options(max_restarts=1).remote()
    pid = ember.get(c.pid.remote())
    ref = c.slow.remote(5.0)
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(ActorUnavailableError, match="restarting"):
        ember.get(ref, timeout=15)
    assert ember.get(c.pid.remote(), timeout=15) != pid  # it is back


def test_max_task_retries_reruns_the_call_in_flight(node):
    c = Counter.options(max_restarts=1, max_task_retries=1).remote()
    pid = ember.get(c.pid.remote())
    ref = c.slow.remote(1.0)
    time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    assert ember.get(ref, timeout=15) == 0  # re-run on the restarted actor


def test_a_call_with_num_returns_0_returns_none_and_still_runs(node):
    @ember.remote
    class Box:
        def __init__(self):
            self.items = []

        def add(self, x):
            self.items.append(x)

        def items_(self):
            return self.items

    box = Box.remote()
    assert box.add.options(num_returns=0).remote(1) is None
    assert ember.get(box.items_.remote(), timeout=10) == [1]  # calls run in order


def test_exit_actor(node):
    @ember.remote
    class Quitter:
        def quit(self):
            ember.actor.exit_actor()

        def ping(self):
            return "pong"

    q = Quitter.remote()
    assert ember.get(q.ping.remote()) == "pong"
    with pytest.raises(ActorDiedError, match="exit_actor"):
        ember.get(q.quit.remote(), timeout=10)
    with pytest.raises(ActorDiedError):
        ember.get(q.ping.remote(), timeout=10)


def test_sync_methods_of_an_async_actor_run_on_its_loop(node):
    @ember.remote
    class Signal:
        def __init__(self):
            self.event = asyncio.Event()

        def send(self):  # sync: must still wake the loop's waiters
            self.event.set()

        async def wait(self):
            await self.event.wait()
            return "woke"

    s = Signal.remote()
    waiting = s.wait.remote()
    s.send.remote()
    assert ember.get(waiting, timeout=10) == "woke"


def test_sys_exit_in_a_method_ends_the_actor(node):
    @ember.remote
    class Leaver:
        def leave(self):
            sys.exit(0)

        def ping(self):
            return "pong"

    a = Leaver.remote()
    assert ember.get(a.ping.remote()) == "pong"
    with pytest.raises(ActorDiedError):  # not a call left waiting forever
        ember.get(a.leave.remote(), timeout=10)
    with pytest.raises(ActorDiedError):
        ember.get(a.ping.remote(), timeout=10)


def test_threaded_actor_runs_calls_concurrently(node):
    @ember.remote
    class Sleeper:
        def nap(self):
            start = time.monotonic()
            time.sleep(0.3)
            return start, time.monotonic()

    s = Sleeper.options(max_concurrency=3).remote()
    spans = ember.get([s.nap.remote() for _ in range(3)])
    assert max(a for a, _ in spans) < min(b for _, b in spans)  # all three overlapped


def test_a_threaded_actor_has_all_its_threads_from_the_start_and_keeps_them(node):
    @ember.remote
    class Local:
        def __init__(self):
            self.local = threading.local()

        def threads(self):
            return sorted(t.name for t in threading.enumerate() if t.name.startswith("ember-"))

        def mark(self, value):
            seen = getattr(self.local, "value", None)
            self.local.value = value
            return threading.get_ident(), seen

    actor = Local.options(max_concurrency=3, concurrency_groups={"io": 2}).remote()
    assert ember.get(actor.threads.remote(), timeout=10) == [
        "ember-actor-io_0", "ember-actor-io_1", "ember-actor_0", "ember-actor_1", "ember-actor_2"]
    # Each call goes to the thread idle longest: one call at a time visits every thread in
    # turn, and what a call left in threading.local() is there on that thread's next call.
    turns = [ember.get(actor.mark.remote(i), timeout=10) for i in range(6)]
    idents = [ident for ident, _ in turns]
    assert len(set(idents[:3])) == 3 and idents[3:] == idents[:3]
    assert [seen for _, seen in turns] == [None, None, None, 0, 1, 2]


def test_async_actor_keeps_many_calls_in_flight(node):
    @ember.remote
    class Async:
        def __init__(self):
            self.seen = 0

        async def wait_and_count(self, i):
            await asyncio.sleep(0.2)
            self.seen += 1
            return i

        async def seen_count(self):
            return self.seen

    a = Async.remote()
    assert ember.get(a.seen_count.remote()) == 0  # up: the clock measures the calls only
    start = time.monotonic()
    assert ember.get([a.wait_and_count.remote(i) for i in range(40)]) == list(range(40))
    assert time.monotonic() - start < 40 * 0.2 / 4  # far less than one at a time
    assert ember.get(a.seen_count.remote()) == 40


def test_many_actors(node):
    actors = [Counter.remote(i) for i in range(20)]
    assert ember.get([a.add.remote(1) for a in actors]) == list(range(1, 21))


def test_actor_pool(node):
    pool = ActorPool([Counter.remote(), Counter.remote()])
    # map: results in input order even when later inputs finish first.
    assert list(pool.map(lambda a, v: a.slow.remote(0.05 * v), [3, 1, 2])) == [0, 0, 0]
    # map_unordered: every input once; the two counters' totals add up to the inputs' sum.
    out = list(pool.map_unordered(lambda a, v: a.add.remote(v), [1, 2, 3, 4]))
    assert len(out) == 4 and sum(ember.get([a.add.remote(0) for a in pool._idle_actors])) == 10
    assert pool.has_free()
    for v in (5, 6, 7):  # the third waits for a free actor
        pool.submit(lambda a, v: a.slow.remote(0.01), v)
    assert pool.has_next()
    assert len([pool.get_next() for _ in range(3)]) == 3
    assert not pool.has_next()
    idle = pool.pop_idle()
    assert idle is not None
    pool.push(idle)
    with pytest.raises(ValueError):
        pool.push(idle)
    with pytest.raises(StopIteration):
        pool.get_next()


def test_actor_pool_map_submits_at_the_call_and_takes_several_returns(node):
    @ember.remote
    class Pair:
        @ember.method(num_returns=2)
        def pair(self, v):
            return v, -v

    pool = ActorPool([Pair.remote(), Pair.remote()])
    results = pool.map(lambda a, v: a.pair.remote(v), [1, 2, 3])
    assert pool.has_next()  # submitted before a result is read (as in Ray)
    assert list(results) == [[1, -1], [2, -2], [3, -3]]
    for v in (4, 5):
        pool.submit(lambda a, v: a.pair.remote(v), v)
    assert sorted(pool.get_next_unordered(timeout=10) for _ in range(2)) == [[4, -4], [5, -5]]


def test_an_actor_ends_when_its_last_handle_goes(node):
    c = Counter.remote()
    pid = ember.get(c.pid.remote())

    @ember.remote
    def hold(handle):
        time.sleep(0.5)
        return ember.get(handle.add.remote(1))

    ref = hold.remote(c)
    del c  # a task still holds a copy of the handle: the actor lives on
    assert ember.get(ref) == 1
    deadline = time.monotonic() + 5  # now no handle is left anywhere
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid)
    kept = Counter.options(lifetime="detached").remote()
    kept_pid = ember.get(kept.pid.remote())
    del kept
    time.sleep(0.3)
    assert _alive(kept_pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_calls_queued_before_the_actor_is_up_are_never_lost(node):
    @ember.remote
    class Slow:
        def __init__(self):
            time.sleep(0.3)
            self.calls = 0

        def inc(self):
            self.calls += 1
            return self.calls

    a = Slow.remote()
    refs = [a.inc.remote() for _ in range(200)]  # more than an actor's ring holds
    ready, lost = ember.wait(refs, num_returns=200, timeout=20)
    assert lost == []
    assert ember.get(refs) == list(range(1, 201))


def test_calls_submitted_before_the_last_handle_goes_still_run(node):
    for _ in range(5):
        assert ember.get(Counter.remote(3).add.remote(1)) == 4
        c = Counter.remote()
        ref = c.slow.remote(0.2)
        del c
        assert ember.get(ref, timeout=10) == 0


@ember.remote
def make_counter_and_use_it(start):
    c = Counter.remote(start)  # an actor created inside a task
    return ember.get([c.add.remote(1), c.add.remote(2)]), c


@ember.remote
def add_to_named(name, k):
    return ember.get(ember.get_actor(name).add.remote(k))


@ember.remote
def kill_it(handle):
    ember.kill(handle)
    return True


@ember.remote
class Parent:
    def __init__(self):
        self.child = Counter.remote(100)  # an actor made by an actor

    def poke(self):
        return ember.get(self.child.add.remote())


def test_tasks_and_actors_create_look_up_and_kill_actors(node):
    values, handle = ember.get(make_counter_and_use_it.remote(10))
    assert values == [11, 13]
    assert ember.get(handle.add.remote(5)) == 18  # the handle works in the driver too

    named = Counter.options(name="shared").remote(0)
    assert sorted(ember.get([add_to_named.remote("shared", 1) for _ in range(4)])) == [1, 2, 3, 4]
    assert ember.get(named.add.remote(0)) == 4

    parent = Parent.remote()
    assert ember.get([parent.poke.remote() for _ in range(3)]) == [101, 102, 103]

    assert ember.get(kill_it.remote(handle))
    with pytest.raises(ActorDiedError):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the kill goes through the scheduler's ring
            ember.get(handle.add.remote(), timeout=10)
            time.sleep(0.05)


def wait_until_name_is_free(name: str, timeout: float = 10) -> None:
    """Waits until get_actor(name) finds no actor (an end goes through the scheduler)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ember.get_actor(name)
        except ValueError:
            return
        time.sleep(0.05)


def test_a_named_actor_ends_with_its_last_handle_like_rays(node):
    a = Counter.options(name="temp").remote()
    assert ember.get(ember.get_actor("temp").add.remote()) == 1
    del a
    wait_until_name_is_free("temp")
    with pytest.raises(ValueError, match="temp"):
        ember.get_actor("temp")
    again = Counter.options(name="temp").remote(7)  # the name is free again
    assert ember.get(again.add.remote()) == 8


def test_a_task_finds_the_live_actor_of_a_name_not_one_killed_before(node):
    first = Counter.options(name="reborn").remote(0)
    assert ember.get(add_to_named.remote("reborn", 1)) == 1
    ember.kill(first)  # the driver still holds a handle: only the kill says it is dead
    wait_until_name_is_free("reborn")
    second = Counter.options(name="reborn").remote(100)
    assert ember.get(add_to_named.remote("reborn", 1)) == 101  # a worker sees it as well
    assert ember.get(second.add.remote(0)) == 101


def test_a_named_actor_made_in_a_task_outlives_the_task(node):
    @ember.remote
    def make_named(start):
        return Counter.options(name="inner", lifetime="detached").remote(start)

    handle = ember.get(make_named.remote(40))
    assert ember.get(ember.get_actor("inner").add.remote(2)) == 42
    assert ember.get(add_to_named.remote("inner", 1)) == 43
    with pytest.raises(ValueError, match="already taken"):
        Counter.options(name="inner").remote()
    ember.kill(handle)
    wait_until_name_is_free("inner")
    again = Counter.options(name="inner").remote(1)  # a dead actor's name can be taken again
    assert ember.get(ember.get_actor("inner").add.remote()) == 2
    del again


def test_a_detached_actor_is_found_by_name_when_no_handle_is_left(node):
    @ember.remote
    def make_and_drop(start):
        Counter.options(name="lone", lifetime="detached").remote(start)  # handle dropped here
        return os.getpid()

    ember.get(make_and_drop.remote(10))
    time.sleep(0.2)  # a non-detached actor would be ended by now (A5)
    assert ember.get(add_to_named.remote("lone", 1), timeout=10) == 11
    ember.kill(ember.get_actor("lone"))
    # Killed for good: the name is free at once, for the driver and for tasks.
    with pytest.raises(ValueError, match="lone"):
        ember.get_actor("lone")
    fresh = Counter.options(name="lone", lifetime="detached").remote(100)
    assert ember.get(add_to_named.remote("lone", 1), timeout=10) == 101
    ember.kill(fresh)


def test_get_if_exists_from_racing_tasks_makes_one_actor(node):
    @ember.remote
    def get_or_make():
        actor = Counter.options(name="shared", namespace="race", lifetime="detached",
                                get_if_exists=True).remote()
        return ember.get(actor.pid.remote())

    for _ in range(5):
        pids = ember.get([get_or_make.remote() for _ in range(4)], timeout=30)
        assert len(set(pids)) == 1, pids
        ember.kill(ember.get_actor("shared", namespace="race"))


@ember.remote
class Owner:
    def make_child(self, lifetime):
        options = {} if lifetime is None else {"lifetime": lifetime}
        self.child = Counter.options(**options).remote()
        ember.get(self.child.add.remote())
        return self.child

    def pid(self):
        return os.getpid()


def child_after_owner_dies(lifetime) -> str:
    owner = Owner.remote()
    child = ember.get(owner.make_child.remote(lifetime))
    os.kill(ember.get(owner.pid.remote()), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            ember.get(child.add.remote(), timeout=5)
        except ActorDiedError as e:
            assert "owner" in str(e)
            return "dead"
        time.sleep(0.05)
    return "alive"


@pytest.mark.parametrize(("default", "lifetime", "expected"), [
    (None, None, "dead"),
    (None, "detached", "alive"),
    ("detached", None, "alive"),
    ("detached", "non_detached", "dead"),
])
def test_an_actor_fate_shares_with_its_owner_unless_detached(default, lifetime, expected):
    from ember.job_config import JobConfig

    config = JobConfig() if default is None else JobConfig(default_actor_lifetime=default)
    ember.init(num_cpus=2, object_store_memory=STORE_BYTES, job_config=config)
    try:
        assert child_after_owner_dies(lifetime) == expected
    finally:
        ember.shutdown()


def test_a_task_worker_that_owns_an_actor_is_not_retired(node):
    @ember.remote(num_cpus=0)
    def make():
        time.sleep(0.5)  # side by side: the node starts workers beyond num_cpus for them
        return os.getpid(), Counter.remote(5)

    made = ember.get([make.remote() for _ in range(4)])
    assert len({pid for pid, _ in made}) > node.num_cpus
    time.sleep(1.5)  # idle extras are retired after 1 s: not these, their actors would die
    assert ember.get([h.add.remote() for _, h in made], timeout=10) == [6] * 4


def test_job_config_sets_the_namespace_and_refuses_what_ember_cannot_do():
    from ember.job_config import JobConfig

    @ember.remote
    def env_var():
        return os.environ.get("EMBER_TEST_JOB_VAR")

    ember.init(num_cpus=1, object_store_memory=STORE_BYTES,
               job_config=JobConfig(ray_namespace="jobs",
                                    runtime_env={"env_vars": {"EMBER_TEST_JOB_VAR": "1"}}))
    try:
        assert ember.get_runtime_context().namespace == "jobs"
        assert ember.get(env_var.remote(), timeout=60) == "1"
    finally:
        ember.shutdown()
    for config, name in [(JobConfig(metadata={"a": "b"}), "metadata"),
                         (JobConfig(jvm_options=["-Xmx1g"]), "jvm_options")]:
        with pytest.raises(ValueError, match=name):
            ember.init(num_cpus=1, job_config=config)
        assert not ember.is_initialized()
    with pytest.raises(ValueError, match="default_actor_lifetime"):
        JobConfig(default_actor_lifetime="forever")
    with pytest.raises(TypeError, match="job_config must be a JobConfig"):
        ember.init(num_cpus=1, job_config={"ray_namespace": "x"})


class Constants:
    BASE = 2

    @staticmethod
    def doubled(x):
        return 2 * x


@ember.remote
class WithClassAttributes(Constants):
    OWN = 3

    def __init__(self, x=0):
        self.x = x

    @classmethod
    def make(cls, x):
        return cls(x)

    def total(self):  # in the actor, its class name is the ActorClass, as in Ray
        return WithClassAttributes.BASE + WithClassAttributes.OWN + \
            WithClassAttributes.doubled(self.x)


def test_an_actor_class_shows_its_class_attributes(node):
    assert WithClassAttributes.BASE == 2 and WithClassAttributes.doubled(4) == 8
    plain = WithClassAttributes.make(5)  # a class method makes a plain object, as in Ray
    assert isinstance(plain, WithClassAttributes.__dict__["_cls"]) and plain.x == 5
    assert ember.get(WithClassAttributes.remote(1).total.remote()) == 7
    assert {"make", "total", "options", "remote"} <= set(dir(WithClassAttributes))
    with pytest.raises(AttributeError):
        WithClassAttributes.no_such_thing  # noqa: B018
    handle = WithClassAttributes.remote()
    assert "total" in dir(handle) and "__ray_ready__" in dir(handle)


def test_actor_name_and_namespace_options_are_checked():
    with pytest.raises(TypeError, match="name must be a str"):
        Counter.options(name=object())
    with pytest.raises(TypeError, match="namespace must be a str"):
        Counter.options(name="x", namespace=object())
    with pytest.raises(ValueError, match="get_if_exists=True needs a name"):
        Counter.options(get_if_exists=True)


def test_list_actors_shows_each_actor_and_how_it_ended(node):
    from ember.util.state import list_actors

    c = Counter.remote()
    ember.get(c.add.remote())
    pid = ember.get(c.pid.remote())
    (alive,) = [a for a in list_actors(detail=True) if a["actor_id"] == c._actor_id.hex()]
    assert alive["class_name"] == "Counter" and alive["state"] == "ALIVE"
    assert alive["pid"] == pid and alive["death_cause"] == ""
    ember.kill(c)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        (entry,) = list_actors(filters=[("actor_id", "=", c._actor_id.hex())], detail=True)
        if entry["state"] == "DEAD":
            break
        time.sleep(0.02)
    assert entry["state"] == "DEAD" and "kill" in entry["death_cause"]


def test_an_actor_method_passed_to_a_task_can_be_called_there(node):
    @ember.remote
    class Adder:
        def add(self, a, b):
            return a + b

        @ember.method(num_returns=2)
        def pair(self, a):
            return a, -a

    @ember.remote
    def call(method, x):
        return ember.get(method.remote(x, 1))

    @ember.remote
    def call_pair(method):
        return ember.get(method.remote(3))

    adder = Adder.remote()
    assert ember.get(call.remote(adder.add, 41)) == 42
    assert ember.get(call_pair.remote(adder.pair)) == [3, -3]


def test_the_runtime_context_names_the_actor_it_runs_in(node):
    @ember.remote
    class Probe:
        def actor_id(self):
            return ember.get_runtime_context().get_actor_id()

    @ember.remote
    def in_a_task():
        return ember.get_runtime_context().get_actor_id()

    a, b = Probe.remote(), Probe.remote()
    ids = ember.get([a.actor_id.remote(), b.actor_id.remote()])
    assert ids[0] != ids[1]
    assert [f"Actor(Probe, {i})" for i in ids] == [repr(a), repr(b)]
    assert ember.get(in_a_task.remote()) is None
    assert ember.get_runtime_context().get_actor_id() is None  # the driver


def test_calls_are_checked_against_the_signature_at_remote(node):
    @ember.remote
    class Adder:
        def __init__(self, start, *, step=1):
            self.n = start

        def add(self, k, *, twice=False):
            return self.n + k * (2 if twice else 1)

        @staticmethod
        def echo(value):
            return value

    with pytest.raises(TypeError, match="missing a required argument: 'start'"):
        Adder.remote()
    with pytest.raises(TypeError, match="unexpected keyword argument 'stride'"):
        Adder.remote(1, stride=2)
    a = Adder.remote(1)
    with pytest.raises(TypeError, match="too many positional arguments"):
        a.add.remote(1, 2)
    with pytest.raises(TypeError, match="multiple values for argument 'k'"):
        a.add.remote(1, k=2)
    with pytest.raises(TypeError, match="missing a required argument: 'value'"):
        a.echo.remote()
    assert ember.get([a.add.remote(2, twice=True), a.add.remote(k=1), a.echo.remote(7)]) == [
        5, 2, 7]


def test_every_actor_has_rays_built_in_methods(node, tmp_path):
    marker = tmp_path / "atexit"

    @ember.remote
    class Plain:
        def __init__(self, path):
            import atexit  # noqa: PLC0415 (in the actor's process)

            self.x = 3
            atexit.register(lambda: pathlib.Path(path).write_text("ran"))

    a = Plain.remote(str(marker))
    with pytest.raises(TypeError):
        a.__ray_ready__()  # a method is called with .remote()
    assert ember.get(a.__ray_ready__.remote()) is True
    assert ember.get(a.__ray_call__.remote(lambda self, y: self.x * y, y=2)) == 6
    ember.wait([a.__ray_terminate__.remote()], timeout=10)
    deadline = time.monotonic() + 10
    # Until written, not until it exists: write_text() makes the file before it writes.
    while (not marker.exists() or not marker.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == "ran"  # an intended exit runs the actor's atexit handlers
    with pytest.raises(ActorDiedError):
        ember.get(a.__ray_ready__.remote(), timeout=10)


def test_method_takes_rays_options_and_refuses_what_the_node_cannot_do(node):
    @ember.remote
    class Methods:
        @ember.method
        def bare(self):
            return "bare"

        @ember.method(num_returns=2)
        def pair(self):
            return 1, 2

    m = Methods.remote()
    assert ember.get(m.bare.remote()) == "bare"
    assert ember.get(list(m.pair.remote())) == [1, 2]
    assert ember.get(m.pair.options(num_returns=1).remote()) == (1, 2)
    with pytest.raises(ValueError, match="invalid option.*bogus"):
        ember.method(bogus=1)
    with pytest.raises(TypeError, match="keyword 'name'"):
        m.bare.options(name=7)

    @ember.remote
    class Transported:
        @ember.method(tensor_transport="nccl")  # Ray's option: taken by the decorator ...
        def tensor(self):
            return 1

    with pytest.raises(ValueError, match="tensor_transport='nccl' of Transported.tensor"):
        Transported.remote()  # ... and refused by ember's node, which cannot honour it


def test_a_call_named_by_options_shows_its_name_and_runs_its_method(node):
    @ember.remote
    class Named:
        def where(self, x):
            return x, psutil.Process().cmdline()[0], ember.get_runtime_context().get_task_name()

        def fails(self):
            raise ValueError("named call failed")

    a = Named.remote()
    assert ember.get(a.where.options(name="first").remote(1)) == (1, "ember::first", "first")
    renamed = a.where.options(name="second")
    assert ember.get([renamed.remote(2), renamed.remote(3)]) == [
        (2, "ember::second", "second"), (3, "ember::second", "second")]
    # Other options keep the name; the method's own name is the default again without it.
    again = renamed.options(num_returns=1).remote(4)
    assert ember.get(again) == (4, "ember::second", "second")
    assert ember.get(a.where.remote(5)) == (5, "ember::Named.where", "Named.where")
    with pytest.raises(ValueError, match="named call failed") as e:
        ember.get(a.fails.options(name="it failed here").remote())
    assert "ember::it failed here()" in str(e.value)
    wanted = {"first", "second", "Named.where", "it failed here"}
    deadline = time.monotonic() + 10  # a call is listed once its worker has recorded its end
    while not wanted <= {t["name"] for t in list_tasks(filters=[("type", "=", "ACTOR_TASK")],
                                                        limit=1000)}:
        assert time.monotonic() < deadline
        time.sleep(0.05)


@ember.remote(max_task_retries=2)
class Flaky:
    def __init__(self):
        self.runs = {}

    def _run(self, key) -> int:
        self.runs[key] = self.runs.get(key, 0) + 1
        return self.runs[key]

    @ember.method(retry_exceptions=True)
    def fails_twice(self, key):
        if self._run(key) <= 2:
            raise ValueError(key)
        return self.runs[key]

    @ember.method(retry_exceptions=[KeyError], max_task_retries=5)
    def fails_with(self, key, error):
        self._run(key)
        raise error(key)

    def fails(self, key):
        self._run(key)
        raise ValueError(key)

    def runs_of(self, key):
        return self.runs.get(key, 0)

    @ember.method(retry_exceptions=True, max_task_retries=-1)
    async def fails_thrice_async(self, key):
        if self._run(key) <= 3:
            raise ValueError(key)
        return self.runs[key]


def test_a_method_is_run_again_on_exceptions_as_its_options_say(node):
    a = Flaky.remote()
    assert ember.get(a.fails_twice.remote("a")) == 3  # the actor's max_task_retries=2
    with pytest.raises(ValueError):
        ember.get(a.fails_twice.options(max_task_retries=1).remote("b"))  # the call's own
    with pytest.raises(ValueError):
        ember.get(a.fails_twice.options(retry_exceptions=False).remote("c"))
    with pytest.raises(KeyError):
        ember.get(a.fails_with.remote("k", KeyError))  # the method's own retries: 5
    with pytest.raises(TypeError):
        ember.get(a.fails_with.remote("t", TypeError))  # not one it retries on
    with pytest.raises(ValueError):
        ember.get(a.fails.remote("plain"))  # no retry_exceptions: once
    with pytest.raises(ValueError):
        ember.get(a.fails.options(retry_exceptions=True).remote("asked"))
    assert ember.get([a.runs_of.remote(k) for k in ("b", "c", "k", "t", "plain", "asked")]) == [
        2, 1, 6, 1, 1, 3]
    assert ember.get(a.fails_thrice_async.remote("async")) == 4  # -1: until it returns
    # A call's own classes: only those, over the method's; a list then True goes back to them.
    with pytest.raises(ValueError):
        ember.get(a.fails.options(retry_exceptions=[ValueError]).remote("listed"))
    with pytest.raises(TypeError):
        ember.get(a.fails_with.options(retry_exceptions=[TypeError]).remote("t2", TypeError))
    with pytest.raises(KeyError):
        ember.get(a.fails_with.options(retry_exceptions=[TypeError], name="named").remote(
            "k2", KeyError))
    with pytest.raises(KeyError):
        listed = a.fails_with.options(retry_exceptions=[TypeError])
        ember.get(listed.options(retry_exceptions=True).remote("k3", KeyError))
    assert ember.get([a.runs_of.remote(k) for k in ("listed", "t2", "k2", "k3")]) == [
        3, 6, 1, 6]
    with pytest.raises(ValueError, match="max_task_retries"):
        a.fails.options(max_task_retries=-2)


def test_a_methods_own_max_task_retries_reruns_it_after_a_restart(node, tmp_path):
    @ember.remote(max_restarts=1)
    class DiesOnce:
        @ember.method(max_task_retries=1)
        def dies_once(self, marker):
            if not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(1)
            return "ran again"

    assert ember.get(DiesOnce.remote().dies_once.remote(str(tmp_path / "m")),
                     timeout=60) == "ran again"

    @ember.remote
    class Streams:
        @ember.method(retry_exceptions=True)
        def items(self):
            yield 1

    with pytest.raises(ValueError, match="generator method is not retried"):
        Streams.remote()


def _overlapping(spans) -> int:
    """The most spans (start, end) running at one moment."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_concurrency_groups_limit_each_group_on_its_own(node):
    @ember.remote(concurrency_groups={"io": 2, "compute": 1})
    class Service:
        def __init__(self):
            self.gate = threading.Event()

        @ember.method(concurrency_group="io")
        def io(self, seconds):
            start = time.monotonic()
            time.sleep(seconds)
            return start, time.monotonic()

        def default(self):  # the default group: max_concurrency (1)
            return "default"

        @ember.method(concurrency_group="compute")
        def blocked(self):
            self.gate.wait(20)
            return "released"

        def release(self):
            self.gate.set()
            return "set"

    s = Service.remote()
    spans = ember.get([s.io.remote(0.3) for _ in range(4)], timeout=30)
    assert _overlapping(spans) == 2  # io: two at a time
    held = s.blocked.remote()  # fills the compute group ...
    assert ember.get(s.default.remote(), timeout=10) == "default"  # ... not the others
    # A call may go to another group than its method's.
    compute_spans = ember.get([s.io.options(concurrency_group="compute").remote(0.1)
                               for _ in range(2)] + [s.release.remote()], timeout=30)
    assert ember.get(held, timeout=10) == "released"
    assert compute_spans[-1] == "set"
    assert compute_spans[0][1] <= compute_spans[1][0] or compute_spans[1][1] <= compute_spans[0][0]
    with pytest.raises(ValueError, match="no concurrency group 'gpu'"):
        s.io.options(concurrency_group="gpu")


def test_concurrency_groups_of_an_async_actor(node):
    @ember.remote(concurrency_groups={"one": 1})
    class AsyncService:
        @ember.method(concurrency_group="one")
        async def single(self):
            start = time.monotonic()
            await asyncio.sleep(0.2)
            return start, time.monotonic()

        async def many(self):
            start = time.monotonic()
            await asyncio.sleep(0.2)
            return start, time.monotonic()

        @ember.method(concurrency_group="one")
        async def hog(self, seconds):
            time.sleep(seconds)  # blocks its group's loop, not the others'
            return "hogged"

    a = AsyncService.remote()
    assert _overlapping(ember.get([a.single.remote() for _ in range(3)], timeout=30)) == 1
    assert _overlapping(ember.get([a.many.remote() for _ in range(3)], timeout=30)) == 3
    hog = a.hog.remote(3)
    start = time.monotonic()
    assert ember.get(a.many.remote(), timeout=10)  # the default group's loop runs on
    assert time.monotonic() - start < 2.5
    assert ember.get(hog, timeout=10) == "hogged"


def test_a_method_in_an_undefined_group_is_an_error(node):
    @ember.remote(concurrency_groups={"io": 1})
    class Wrong:
        @ember.method(concurrency_group="disk")
        def read(self):
            return 1

    with pytest.raises(ValueError, match="concurrency group 'disk'.*does not define"):
        Wrong.remote()
    with pytest.raises(ValueError, match="concurrency_groups must be a dict"):
        Wrong.options(concurrency_groups=["io"])


def test_max_pending_calls_bounds_the_calls_in_flight_through_a_handle(node):
    @ember.remote(max_pending_calls=2)
    class Slow:
        def nap(self, seconds):
            time.sleep(seconds)
            return seconds

    with pytest.raises(ValueError, match="max_pending_calls must be"):
        Slow.options(max_pending_calls=0)
    slow = Slow.remote()
    first, second = slow.nap.remote(0.5), slow.nap.remote(0.5)
    with pytest.raises(ember.exceptions.PendingCallsLimitExceeded, match="2 calls pending"):
        slow.nap.remote(0)
    assert ember.get([first, second], timeout=20) == [0.5, 0.5]
    assert ember.get(slow.nap.remote(0), timeout=20) == 0  # they finished: room again


def test_list_named_actors_of_this_namespace_and_of_all(node):
    from ember.util import list_named_actors

    kept = [Counter.options(name="listed").remote(),
            Counter.options(name="elsewhere", namespace="other").remote(), Counter.remote()]
    gone = Counter.options(name="gone").remote()
    ember.kill(gone)
    assert list_named_actors() == ["listed"]
    assert sorted(list_named_actors(all_namespaces=True), key=lambda d: d["name"]) == [
        {"name": "elsewhere", "namespace": "other"}, {"name": "listed", "namespace": "default"}]
    assert ember.get(add_to_named.remote("listed", 1)) == 1
    del kept


def test_util_state_get_actor_finds_an_actor_by_its_id(node):
    from ember.util.state import get_actor

    a = Counter.remote()
    assert ember.get(a.add.remote(1), timeout=60) == 1
    hex_id = a._ray_actor_id.hex()
    assert hex_id in repr(a)
    found = get_actor(hex_id)
    assert (found.actor_id, found.class_name, found.state) == (hex_id, "Counter", "ALIVE")
    ember.kill(a)
    deadline = time.monotonic() + 30
    while get_actor(hex_id).state != "DEAD" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert get_actor(hex_id).state == "DEAD"
    assert get_actor("ff" * 16) is None
    with pytest.raises(ValueError, match="not the hex of an ActorID"):
        get_actor("nope")


@ember.remote
class Echo:
    def echo(self, x):
        return x


@ember.remote
class AsyncEcho:
    async def echo(self, x):
        return x


@ember.remote
def ready_after(seconds):
    time.sleep(seconds)


@pytest.mark.parametrize(("cls", "options", "passes"), [
    (Echo, {"max_concurrency": 2}, True),  # threaded: as its arguments come, as in Ray
    (AsyncEcho, {}, True),                 # async: the same
    (Echo, {}, False),                     # one thread: in order
    (Echo, {"allow_out_of_order_execution": True}, True),
], ids=["threaded", "async", "one-thread", "one-thread-asked"])
def test_a_call_waiting_for_its_argument_holds_up_only_in_order_actors(node, cls, options,
                                                                       passes):
    actor = cls.options(**options).remote()
    assert ember.get(actor.echo.remote(0)) == 0  # up
    actor.echo.remote(ready_after.remote(2.0))  # waits 2 s for its argument
    later = actor.echo.remote(2)
    ready, _ = ember.wait([later], timeout=1.0)
    assert bool(ready) == passes
    assert ember.get(later, timeout=10) == 2


@ember.remote
def call_echo(actor, x):
    return ember.get(actor.echo.remote(x))


def test_a_call_waiting_for_its_argument_holds_up_no_other_callers_call(node):
    actor = Echo.remote()  # in order: per caller, as in Ray
    assert ember.get(actor.echo.remote(0)) == 0  # up
    actor.echo.remote(ready_after.remote(3.0))  # the driver's call waits 3 s for its argument
    from_a_task = call_echo.remote(actor, 1)  # another caller's: passes it
    ready, _ = ember.wait([from_a_task], timeout=2.0)
    assert ready and ember.get(from_a_task) == 1


def test_allow_out_of_order_execution_false_is_refused_for_concurrent_actors(node):
    for cls, options in ((Echo, {"max_concurrency": 2}), (Echo, {"concurrency_groups": {"io": 2}}),
                         (AsyncEcho, {})):
        with pytest.raises(ValueError, match="allow_out_of_order_execution=False"):
            cls.options(allow_out_of_order_execution=False, **options).remote()
    with pytest.raises(ValueError, match="must be a bool"):
        Echo.options(allow_out_of_order_execution="yes").remote()
    in_order = Echo.options(allow_out_of_order_execution=False).remote()
    assert ember.get(in_order.echo.remote(1)) == 1


@ember.remote
class Batcher:
    """Each call waits until `size` calls have come: all of them run at once."""

    def __init__(self, size):
        self.batch = []
        self.size = size
        self.full = None

    async def add(self, x):
        if self.full is None:
            self.full = asyncio.Event()
        self.batch.append(x)
        if len(self.batch) >= self.size:
            self.full.set()
        await self.full.wait()
        return len(self.batch)


def test_an_async_actor_runs_more_waiting_calls_at_once_than_its_ring_holds(node):
    size = 300  # the actor's ring holds 64: the calls that wait must not hold its room
    batcher = Batcher.remote(size)
    assert ember.get([batcher.add.remote(i) for i in range(size)], timeout=60) == [size] * size
