"""Every wait can be interrupted: Python's signal handlers run while get/wait sleep in C++,
and the node stays usable afterwards."""

from __future__ import annotations

import signal
import time

import psutil
import pytest

import ember
from ember.exceptions import TaskCancelledError

from .conftest import STORE_BYTES, run_python


class Alarm(Exception):
    pass


@pytest.fixture
def alarm():
    """signal.setitimer(ITIMER_REAL, s) raises Alarm in the main thread, as pytest-timeout's
    signal method does."""

    def on_alarm(signum, frame):
        raise Alarm

    old = signal.signal(signal.SIGALRM, on_alarm)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def node():
    ember.init(num_cpus=2, object_store_memory=STORE_BYTES)
    try:
        yield
    finally:
        ember.shutdown()


@ember.remote
def sleeper(seconds, value=None):
    time.sleep(seconds)
    return value


@ember.remote
def waits_on(ref_list):
    return ember.get(ref_list[0])


@pytest.mark.parametrize("how", ["get", "wait", "get_list", "actor_call"])
def test_a_signal_handler_interrupts_a_wait(node, alarm, how):
    @ember.remote
    class Slow:
        def call(self, s):
            time.sleep(s)
            return "late"

    actor = Slow.remote() if how == "actor_call" else None
    ref = actor.call.remote(2) if actor else sleeper.remote(2, "late")
    start = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    with pytest.raises(Alarm):
        if how == "get":
            ember.get(ref)
        elif how == "wait":
            ember.wait([ref], timeout=None)
        elif how == "get_list":
            ember.get([ref, sleeper.remote(2)])
        else:
            ember.get(ref)
    assert time.monotonic() - start < 1.5  # long before the result
    # The interrupted ref can be waited on again, and the node runs new work.
    assert ember.get(ref, timeout=30) == "late"
    assert ember.get(sleeper.remote(0, 7), timeout=30) == 7


def test_cancel_reaches_a_task_blocked_in_get(node):
    inner = sleeper.remote(60)
    outer = waits_on.remote([inner])
    time.sleep(0.5)  # let it block in get
    start = time.monotonic()
    ember.cancel(outer, recursive=False)
    with pytest.raises(TaskCancelledError):
        ember.get(outer, timeout=30)
    assert time.monotonic() - start < 10  # not after the inner task's minute
    ember.cancel(inner)
    assert ember.get(sleeper.remote(0, 1), timeout=30) == 1


def test_ctrl_c_during_get_of_a_task_that_never_ends_then_clean_shutdown():
    code = """
        import os, signal, threading, time
        import ember
        ember.init(num_cpus=1, object_store_memory=64 << 20)

        @ember.remote
        def forever():
            while True:
                time.sleep(1)

        ref = forever.remote()
        ember.get(ember.remote(lambda: 1).options(num_cpus=0).remote())  # workers up
        print("pids", *ember._node.current().scheduler.worker_pids(), flush=True)
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        start = time.monotonic()
        try:
            ember.get(ref)
        except KeyboardInterrupt:
            print("interrupted", time.monotonic() - start - 0.3, flush=True)
        ember.shutdown()
        print("shutdown", flush=True)
    """
    result = run_python(code, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = dict(line.partition(" ")[::2] for line in result.stdout.splitlines())
    assert "shutdown" in result.stdout
    assert float(lines["interrupted"]) < 5
    pids = [int(p) for p in lines["pids"].split()]
    assert pids
    deadline = time.monotonic() + 5
    while any(psutil.pid_exists(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if psutil.pid_exists(p)]
