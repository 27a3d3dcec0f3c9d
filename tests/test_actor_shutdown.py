"""How an actor ends: __ray_shutdown__ and atexit handlers on every intended end (the last
handle gone, __ray_terminate__, exit_actor() in a method or in __init__), neither on a kill;
the graceful end's time limit; exit_actor() outside an actor."""

from __future__ import annotations

import atexit
import os
import time

import psutil
import pytest

import ember
from ember._private.test_utils import generate_system_config_map
from ember.exceptions import ActorDiedError


def _wait_for(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class Recorder:
    """Writes what ran, in order, into a file of its own."""

    def __init__(self, path: str):
        self.path = path
        atexit.register(self._note, "atexit")

    def _note(self, what: str) -> None:
        with open(self.path, "a") as f:
            f.write(what + "\n")

    def __ray_shutdown__(self):
        self._note("shutdown")

    def pid(self):
        return os.getpid()

    def leave(self):
        ember.actor.exit_actor()
        self._note("after exit_actor")  # never runs


def _lines(path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@pytest.fixture
def node():
    ember.init(num_cpus=2, object_store_memory=64 << 20)
    yield
    ember.shutdown()


@pytest.mark.parametrize("how", ["last handle gone", "__ray_terminate__", "exit_actor"])
def test_an_intended_end_runs_shutdown_then_atexit(node, tmp_path, how):
    log = tmp_path / "log"
    actor = ember.remote(Recorder).remote(str(log))
    pid = ember.get(actor.pid.remote())
    if how == "last handle gone":
        del actor
    elif how == "__ray_terminate__":
        actor.__ray_terminate__.remote()
    else:
        with pytest.raises(ActorDiedError, match="exit_actor"):
            ember.get(actor.leave.remote(), timeout=10)
    assert _wait_for(lambda: _gone(pid))
    assert _lines(log) == ["shutdown", "atexit"]


def test_a_kill_runs_neither(node, tmp_path):
    log = tmp_path / "log"
    actor = ember.remote(Recorder).remote(str(log))
    pid = ember.get(actor.pid.remote())
    ember.kill(actor)
    assert _wait_for(lambda: _gone(pid))
    time.sleep(0.2)
    assert _lines(log) == []


class AsyncRecorder(Recorder):
    async def pid(self):  # an async method: every call runs on the actor's loop
        return os.getpid()


class BrokenShutdown(Recorder):
    def __ray_shutdown__(self):
        self._note("shutdown")
        raise ValueError("cleanup failed")


@pytest.mark.parametrize("cls", [AsyncRecorder, BrokenShutdown], ids=lambda c: c.__name__)
def test_an_async_actor_or_a_failing_shutdown_still_ends_in_order(node, tmp_path, cls):
    log = tmp_path / "log"
    actor = ember.remote(cls).remote(str(log))
    pid = ember.get(actor.pid.remote())
    del actor
    assert _wait_for(lambda: _gone(pid))
    assert _lines(log) == ["shutdown", "atexit"]


def test_an_actor_whose_init_failed_ends_when_its_last_handle_goes(node, tmp_path):
    pid_file = tmp_path / "pid"

    @ember.remote
    class Fails:
        def __init__(self):
            pid_file.write_text(str(os.getpid()))
            raise RuntimeError("no")

        def ping(self):
            return "pong"

    actor = Fails.remote()
    with pytest.raises(ActorDiedError):
        ember.get(actor.ping.remote(), timeout=10)
    pid = int(pid_file.read_text())
    assert not _gone(pid)  # its process stays while a handle does
    del actor
    assert _wait_for(lambda: _gone(pid))


def test_a_shutdown_that_outstays_the_timeout_is_killed(tmp_path):
    ember.init(num_cpus=1, object_store_memory=64 << 20,
               **generate_system_config_map(actor_graceful_shutdown_timeout_ms=300))
    try:
        log = tmp_path / "log"

        @ember.remote
        class Hangs(Recorder):
            def __ray_shutdown__(self):
                self._note("shutdown")
                time.sleep(60)
                self._note("finished")

        actor = Hangs.remote(str(log))
        pid = ember.get(actor.pid.remote())
        del actor
        assert _wait_for(lambda: _gone(pid), timeout=10)
        assert _lines(log) == ["shutdown"]  # killed: neither the rest nor atexit ran
    finally:
        ember.shutdown()


def test_the_graceful_timeout_must_be_milliseconds():
    with pytest.raises(ValueError, match="actor_graceful_shutdown_timeout_ms"):
        ember.init(num_cpus=1, _system_config={"actor_graceful_shutdown_timeout_ms": 1.5})
    with pytest.raises(ValueError, match="no such setting"):
        ember.init(num_cpus=1, **generate_system_config_map(not_a_setting=1))
    assert not ember.is_initialized()


def test_exit_actor_in_init_ends_the_actor(node, tmp_path):
    log = tmp_path / "log"

    @ember.remote
    class LeavesAtOnce(Recorder):
        def __init__(self, path):
            super().__init__(path)
            ember.actor.exit_actor()
            self._note("after exit_actor")  # never runs

    actor = LeavesAtOnce.remote(str(log))
    with pytest.raises(ActorDiedError, match="exit_actor"):
        ember.get(actor.pid.remote(), timeout=10)
    assert _wait_for(lambda: _lines(log) == ["atexit"])  # no instance: no __ray_shutdown__


def test_exit_actor_outside_an_actor_is_a_type_error(tmp_path):
    with pytest.raises(TypeError, match="non-actor worker"):
        ember.actor.exit_actor()  # no node at all
    ember.init(num_cpus=1, object_store_memory=64 << 20)
    try:
        with pytest.raises(TypeError, match="non-actor worker"):
            ember.actor.exit_actor()

        @ember.remote
        def task():
            ember.actor.exit_actor()

        with pytest.raises(TypeError, match="non-actor worker"):
            ember.get(task.remote(), timeout=10)
    finally:
        ember.shutdown()


def test_an_invocation_decorator_wraps_the_call(node):
    def invocation(submit):
        def call(args, kwargs):  # doubles the argument; hands the keywords back
            return submit((args[0], args[0]), {}), kwargs
        return call

    def execution(method):
        def run(self, a, b):
            return method(self, a + b)
        run.__ray_invocation_decorator__ = invocation
        return run

    @ember.remote
    class Adder:
        @execution
        def add_one(self, x):
            return x + 1

    actor = Adder.remote()
    ref, extra = actor.add_one.remote(3, flag=True)
    assert extra == {"flag": True}
    assert ember.get(ref, timeout=10) == 7
    ref, _ = actor.add_one.options(name="renamed").remote(5)  # kept by .options()
    assert ember.get(ref, timeout=10) == 11


def test_handles_from_get_actor_and_current_actor_are_weak(node):
    @ember.remote
    class Named:
        def pid(self):
            return os.getpid()

        def me(self):
            return ember.get_runtime_context().current_actor

    @ember.remote
    class Holder:
        def hold(self, handle):
            self.handle = handle

    actor = Named.options(name="weakly").remote()
    pid = ember.get(actor.pid.remote())
    found = ember.get_actor("weakly")
    assert ember.get(found.pid.remote(), timeout=10) == pid
    holder = Holder.remote()
    ember.get(holder.hold.remote(ember.get(actor.me.remote())), timeout=10)  # passed on
    ember.get(holder.hold.remote(found), timeout=10)
    del actor  # the one strong handle
    assert _wait_for(lambda: _gone(pid))
    with pytest.raises(ValueError, match="weakly"):
        ember.get_actor("weakly")
    del found, holder


def test_a_detached_actor_found_by_name_outlives_every_handle(node):
    @ember.remote
    class Kept:
        def pid(self):
            return os.getpid()

    actor = Kept.options(name="kept", lifetime="detached").remote()
    pid = ember.get(actor.pid.remote())
    del actor
    time.sleep(0.3)
    found = ember.get_actor("kept")
    assert ember.get(found.pid.remote(), timeout=10) == pid
    ember.kill(found)
