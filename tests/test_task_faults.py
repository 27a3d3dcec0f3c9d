"""Tasks that fail: a crash matrix, dying workers, retries, impossible requests, timeouts, and
what a killed or shut-down driver leaves behind.

Every test runs on a node of at most 2 CPUs with small data and finishes in a few seconds;
the module's timeout is tighter than the suite's so a hang fails fast instead of stalling CI.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import psutil
import pytest

import ember
from ember.exceptions import (
    GetTimeoutError,
    RayTaskError,
    TaskError,
    UnserializableException,
    WorkerCrashedError,
)

from .conftest import STORE_BYTES, open_fds, segment_mappings

pytestmark = pytest.mark.timeout(30)


# --- helpers --------------------------------------------------------------------------


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02):
    """Polls `predicate` until it returns something truthy (returned) or `timeout` passes
    (returns the last falsy value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def alive(pid: int) -> bool:
    """True if `pid` runs (a zombie waiting for its reaper does not count)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def children() -> list[psutil.Process]:
    """This process's living descendants."""
    return [p for p in psutil.Process().children(recursive=True) if alive(p.pid)]


def pool_is_full(node, num_cpus: int, gone: int | None = None) -> list[int] | None:
    pids = node.scheduler.worker_pids()
    if len(pids) == num_cpus and gone not in pids and all(alive(p) for p in pids):
        return pids
    return None


def count_lines(path) -> int:
    try:
        with open(path) as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def submitted(node) -> tuple[int, int]:
    stats = node.scheduler.stats()
    return stats["dispatched"], stats["queued"]


def thread_ids() -> set[str]:
    return set(os.listdir("/proc/self/task"))


def objects(node) -> int:
    return node.store.stats()["num_objects"]


def assert_store_settles(node, baseline: int) -> None:
    """Every object the test's tasks made (function, arguments, returns, errors) is freed
    once the test drops its refs; ExceptionInfo cycles hold refs until a collection."""
    gc.collect()
    assert wait_for(lambda: objects(node) == baseline, 2), (objects(node), baseline)


def shm_paths_of(pid: int) -> set[str]:
    """The /dev/shm files a process has mapped or open."""
    paths = set()
    try:
        with open(f"/proc/{pid}/maps") as f:
            paths |= {line.split()[-1] for line in f if "/dev/shm/" in line}
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("/dev/shm/"):
                paths.add(target)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return paths


# --- task bodies (module level: workers import them by reference) ---------------------


def add_one(x):
    return x + 1


def takes_arg(x):
    return x


def raises_value_error():
    raise ValueError("the task body failed on purpose")


def returns_a_lock():
    return threading.Lock()


class CodedError(Exception):
    """A user exception with an attribute of its own, and one that cannot be pickled."""

    def __init__(self, code):
        super().__init__(f"failed with code {code}")
        self.code = code


class UnpicklableError(Exception):
    def __reduce__(self):
        raise TypeError("this exception refuses to be pickled")


def raises_coded_error():
    raise CodedError(42)


def raises_an_unpicklable_error():
    raise UnpicklableError("the original text")


def returns_one_value():
    return 1


def _refuse_to_unpickle():
    raise RuntimeError("this argument refuses to be unpickled")


class FailsToUnpickle:
    """Pickles fine in the driver; unpickling it (in the worker) raises."""

    def __reduce__(self):
        return _refuse_to_unpickle, ()


class ResultFailsToUnpickle:
    def __reduce__(self):
        return _refuse_to_unpickle, ()


def returns_an_unreadable_result():
    return ResultFailsToUnpickle()


def die(how: str, marker: str):
    print(marker, file=sys.stderr, flush=True)
    if how == "exit":
        os._exit(3)
    elif how == "sys_exit":  # SystemExit through the worker's loop: Ray's WorkerCrashedError
        sys.exit(4)
    elif how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif how == "segfault":
        ctypes.string_at(0)  # reads address 0 in C: SIGSEGV
    time.sleep(10)  # not reached


def crash_until(path: str, crashes: int):
    """Appends a line to `path` per attempt; the first `crashes` attempts kill the worker."""
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    attempt = count_lines(path)
    if attempt <= crashes:
        os._exit(1)
    return attempt


def raise_counted(path: str):
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    raise ValueError(f"failed on attempt {count_lines(path)}")


def sleep_then(seconds: float, value):
    time.sleep(seconds)
    return value


def touch_then_sleep(path: str, seconds: float):
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(seconds)


# --- 1. the crash matrix --------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    function: Callable
    args: tuple = ()
    options: dict = field(default_factory=dict)
    point: str = "run"  # pickle / unpickle / run / result pickle / result unpickle / returns
    error: type[BaseException] | tuple = TaskError
    message: str = ""  # a regex the error's message must match
    also: tuple = ()  # classes the error is an instance of as well; the first is its cause


CRASH_MATRIX = {
    # (a) an argument that cannot be pickled: TypeError at .remote(), naming the function
    # and the argument; nothing reaches the scheduler.
    "pickle-arg": Case(
        takes_arg, (threading.Lock(),), point="pickle", error=TypeError,
        message=r"^Could not serialize the argument <unlocked _thread.lock object at \w+> for "
                r"a task or actor [\w.]*takes_arg:\n"),
    # (b) the body raises: TaskError and the task's own class, with the remote traceback.
    "run": Case(
        raises_value_error, error=TaskError, also=(ValueError, RayTaskError),
        message=r"(?s)^ember::raises_value_error\(\) \(pid=\d+, ip=127\.0\.0\.1\)\n"
                r".*in raises_value_error.*ValueError: the task body failed on purpose$"),
    # (c) the result cannot be pickled: the error says the result could not be stored.
    "result-pickle": Case(
        returns_a_lock, error=TaskError, also=(TypeError,),
        message=r"(?s)^ember::returns_a_lock\(\).*While storing the result of this task:"
                r".*cannot pickle"),
    # (c2) the exception itself cannot be pickled: UnserializableException, with its text.
    "exception-pickle": Case(
        raises_an_unpicklable_error, error=TaskError, also=(UnserializableException,),
        message=r"(?s)^ember::raises_an_unpicklable_error\(\).*"
                r"UnpicklableError: the original text"),
    # (d) num_returns=2 but one value: a clear error on every return ref.
    "num-returns": Case(
        returns_one_value, options={"num_returns": 2}, point="returns", error=TaskError,
        also=(ValueError,), message=r"num_returns=2 but returned an? int"),
    # (e) an argument that fails to unpickle in the worker: TaskError with that cause.
    "unpickle-arg": Case(
        takes_arg, (FailsToUnpickle(),), point="unpickle", error=TaskError, also=(RuntimeError,),
        message=r"(?s)_refuse_to_unpickle.*this argument refuses to be unpickled"),
    # (f) the result fails to unpickle in the driver: get raises that error, no hang.
    "result-unpickle": Case(
        returns_an_unreadable_result, point="result unpickle", error=RuntimeError,
        message=r"this argument refuses to be unpickled"),
}


@pytest.mark.parametrize("case", CRASH_MATRIX.values(), ids=CRASH_MATRIX.keys())
def test_crash_matrix(node, case):
    baseline = objects(node)
    f = ember.remote(case.function).options(**case.options)
    before = submitted(node)
    if case.point == "pickle":
        with pytest.raises(case.error, match=case.message):
            f.remote(*case.args)
        assert submitted(node) == before  # nothing was submitted
        del f
        assert_store_settles(node, baseline)
        return
    refs = f.remote(*case.args)
    refs = refs if isinstance(refs, list) else [refs]
    for ref in refs:  # each return ref carries the failure
        with pytest.raises(case.error, match=case.message) as info:
            ember.get(ref, timeout=10)
        for cls in case.also:
            assert isinstance(info.value, cls), (cls, type(info.value).__mro__)
        if isinstance(info.value, TaskError):
            assert info.value.pid not in (0, os.getpid())  # it names the worker
        if case.also:  # the task's own exception is the cause
            assert isinstance(info.value.cause, case.also[0]), info.value.cause
    # The failure cost no worker: the node still runs tasks; and nothing stays in the store.
    g = ember.remote(add_one)
    assert ember.get(g.remote(1), timeout=10) == 2
    del f, g, refs, ref, info
    assert_store_settles(node, baseline)


# --- a task's function outlives its RemoteFunction ------------------------------------


@pytest.mark.parametrize("how", ["options", "temporary"])
def test_a_queued_task_keeps_its_function_alive(node, how):
    # The first call of a remote function through .options() (a Ray idiom), or a
    # RemoteFunction made and dropped in one expression: the object that put the pickled
    # function dies before a worker reads it, so the task must hold the function itself.
    baseline = objects(node)
    busy = ember.remote(sleep_then)
    blockers = [busy.remote(0.5, None) for _ in range(node.num_cpus)]  # so the task queues
    if how == "options":
        ref = ember.remote(add_one).options(num_returns=1).remote(1)
    else:
        ref = ember.remote(add_one).remote(1)
    assert ember.get(ref, timeout=10) == 2
    assert ember.get(blockers, timeout=10) == [None] * node.num_cpus
    del busy, blockers, ref
    assert_store_settles(node, baseline)  # and lets go of it when done


# --- 2. a worker dies during a task ---------------------------------------------------


@pytest.mark.parametrize(
    "how, expected",
    [("exit", r"exited with code 3"), ("sys_exit", r"exited with code 4"),
     ("sigkill", r"SIGKILL"), ("segfault", r"SIGSEGV")],
)
def test_a_dying_worker_raises_worker_crashed_and_is_replaced(node, how, expected):
    baseline = objects(node)
    marker = f"last words of a {how} worker"
    f = ember.remote(max_retries=0)(die)
    ref = f.remote(how, marker)
    with pytest.raises(WorkerCrashedError, match=expected) as info:
        ember.get(ref, timeout=10)
    message = str(info.value)
    assert marker in message  # the last lines the worker wrote
    dead = int(re.search(r"worker pid=(\d+)", message).group(1))
    assert wait_for(lambda: not alive(dead), 2)
    # The node keeps working, and the pool is back to num_cpus workers.
    g = ember.remote(add_one)
    assert ember.get(g.remote(41), timeout=10) == 42
    assert wait_for(lambda: pool_is_full(node, 2, gone=dead), 5), node.scheduler.worker_pids()
    del f, g, ref, info
    assert_store_settles(node, baseline)  # the dead worker's holds were released


# --- 3. retries -----------------------------------------------------------------------


def test_a_task_that_crashes_once_succeeds_on_its_retry(node, tmp_path):
    attempts = tmp_path / "attempts"
    f = ember.remote(max_retries=1)(crash_until)
    ref = f.remote(str(attempts), 1)
    assert ember.get(ref, timeout=10) == 2
    assert count_lines(attempts) == 2
    assert node.scheduler.stats()["retried"] == 1


def test_a_task_that_always_crashes_runs_max_retries_plus_one_times(node, tmp_path):
    attempts = tmp_path / "attempts"
    f = ember.remote(max_retries=2)(crash_until)
    ref = f.remote(str(attempts), 100)
    with pytest.raises(WorkerCrashedError, match="exited with code 1"):
        ember.get(ref, timeout=10)
    assert count_lines(attempts) == 3
    pids = attempts.read_text().split()
    assert len(set(pids)) == 3  # each attempt ran in a fresh worker
    assert node.scheduler.stats()["retried"] == 2
    assert wait_for(lambda: pool_is_full(node, 2), 5)


def test_retry_exceptions_retries_then_raises(node, tmp_path):
    attempts = tmp_path / "attempts"
    f = ember.remote(max_retries=2, retry_exceptions=True)(raise_counted)
    ref = f.remote(str(attempts))
    with pytest.raises(ValueError, match="failed on attempt 3") as info:
        ember.get(ref, timeout=10)
    assert isinstance(info.value, TaskError)
    assert count_lines(attempts) == 3


@pytest.mark.parametrize(("retry_on", "attempts_made"), [
    ([ValueError], 3), ([KeyError, ArithmeticError], 1), ([Exception], 3)], ids=str)
def test_retry_exceptions_with_a_list_retries_only_those(node, tmp_path, retry_on,
                                                         attempts_made):
    attempts = tmp_path / "attempts"
    f = ember.remote(max_retries=2)(raise_counted).options(retry_exceptions=retry_on)
    with pytest.raises(ValueError, match=f"failed on attempt {attempts_made}"):
        ember.get(f.remote(str(attempts)), timeout=10)
    assert count_lines(attempts) == attempts_made
    assert ember.get(ember.remote(add_one).options(retry_exceptions=[ValueError]).remote(1)) == 2


def test_retry_exceptions_takes_a_bool_or_exception_classes():
    for bad in ([], ["ValueError"], [int], ValueError):
        with pytest.raises(ValueError, match="retry_exceptions must be"):
            ember.remote(retry_exceptions=bad)(add_one)


def test_exceptions_are_not_retried_by_default(node, tmp_path):
    attempts = tmp_path / "attempts"
    f = ember.remote(max_retries=2)(raise_counted)
    ref = f.remote(str(attempts))
    with pytest.raises(ValueError, match="failed on attempt 1"):
        ember.get(ref, timeout=10)
    assert count_lines(attempts) == 1


def stamped_until(path: str, failures: int, crash: bool) -> int:
    """Appends the time to `path` per attempt; the first `failures` attempts crash the
    worker (or raise)."""
    with open(path, "a") as f:
        f.write(f"{time.monotonic()}\n")
    attempt = count_lines(path)
    if attempt <= failures:
        if crash:
            os._exit(1)
        raise ValueError(f"attempt {attempt}")
    return attempt


class Stamper:
    def run(self, path: str, failures: int, crash: bool) -> int:
        return stamped_until(path, failures, crash)


def test_task_retry_delay_ms_spaces_every_kind_of_retry(tmp_path):
    ember.init(num_cpus=1, object_store_memory=STORE_BYTES,
               _system_config={"task_retry_delay_ms": 400})
    try:
        crashed, raised, call, call_raised = (tmp_path / name for name in "abcd")
        task = ember.remote(max_retries=1, retry_exceptions=True)(stamped_until)
        assert ember.get(task.remote(str(crashed), 1, True), timeout=20) == 2
        assert ember.get(task.remote(str(raised), 1, False), timeout=20) == 2
        actor = ember.remote(max_restarts=1, max_task_retries=1)(Stamper).remote()
        assert ember.get(actor.run.remote(str(call), 1, True), timeout=20) == 2  # a restart
        method = actor.run.options(retry_exceptions=True)
        assert ember.get(method.remote(str(call_raised), 1, False), timeout=20) == 2
        for path in (crashed, raised, call, call_raised):
            first, second = map(float, path.read_text().split())
            assert second - first >= 0.4, path.name
    finally:
        ember.shutdown()
    with pytest.raises(ValueError, match="task_retry_delay_ms must be an int"):
        ember.init(num_cpus=1, _system_config={"task_retry_delay_ms": -1})


# --- 3b. workers killed at random while work runs ----------------------------------------


@pytest.mark.timeout(90)
def test_random_sigkill_of_workers_loses_no_result(node):
    # Defined here, so they go by value: a new worker runs them at once instead of importing
    # this module (and pytest), ~0.75 s on a loaded CI machine, which a storm of kills every
    # few tens of ms would never let it finish.
    def squared(i):  # a result inline (an int) or in the store (an array): both are killed in
        time.sleep(0.001)
        return np.full(4096, i * i) if i % 7 == 0 else i * i

    task = ember.remote(squared).options(max_retries=-1)

    def squared_by_a_child(i):  # the parent may die blocked in get, or its child under it
        out = ember.get(task.remote(i))
        return out if i % 7 else np.full(4096, int(out[0]))

    class Echo:
        def echo(self, i):
            time.sleep(0.001)
            return np.full(4096, i) if i % 5 == 0 else i

    parent = ember.remote(squared_by_a_child).options(max_retries=-1)
    actors = [ember.remote(Echo).options(max_restarts=-1, max_task_retries=-1).remote()
              for _ in range(2)]
    stop = threading.Event()
    kills = []

    def kill_at_random() -> None:
        # A worker (of tasks or an actor) every 10-50 ms, 150 in all: an endless storm only
        # slows the work down (each kill re-runs a task and starts a worker; a killed parent
        # re-runs its child), and what is tested is that nothing is lost or wrong.
        rng = random.Random(0)
        while not stop.wait(rng.uniform(0.01, 0.05)) and len(kills) < 150:
            pids = sorted(node.scheduler.worker_pids())
            if pids:
                pid = rng.choice(pids)
                try:
                    os.kill(pid, signal.SIGKILL)
                    kills.append(pid)
                except ProcessLookupError:
                    pass

    killer = threading.Thread(target=kill_at_random)
    killer.start()
    try:
        refs = [task.remote(i) for i in range(1800)] + [parent.remote(i) for i in range(200)]
        calls = [actors[i % 2].echo.remote(i) for i in range(500)]
        results = ember.get(refs, timeout=60)
        replies = ember.get(calls, timeout=60)
    finally:
        stop.set()
        killer.join()
    plain = [int(r[0]) if isinstance(r, np.ndarray) else r for r in results]
    assert plain == [i * i for i in range(1800)] + [i * i for i in range(200)]
    assert [int(r[0]) if isinstance(r, np.ndarray) else r for r in replies] == list(range(500))
    assert len(kills) >= 20, "too few kills to mean anything"
    del refs, calls, results, replies
    node.store.check()  # the table and allocator agree after the kills (locks repaired)
    # Every result array (32 KiB) is freed: none is held by a dead worker or a lost count.
    def arrays_left() -> list[dict]:
        return [o for o in ember.util.state.list_objects() if o["object_size"] >= 4096 * 8]

    assert wait_for(lambda: not arrays_left(), 5), arrays_left()


# --- 3c. workers that close or flood their output -------------------------------------


def close_python_streams():
    sys.stdout.close()
    sys.stderr.close()
    return os.getpid()


def close_stream_fds():
    os.close(1)
    os.close(2)
    return os.getpid()


def say(word):
    print(word)
    return os.getpid()


@pytest.mark.parametrize("close", [close_python_streams, close_stream_fds],
                         ids=["sys.stdout.close", "os.close(1)"])
def test_a_worker_that_closes_its_output_keeps_working_and_printing(capfd, close):
    # One CPU: the next tasks run in the worker that closed its output.
    ember.init(num_cpus=1, object_store_memory=STORE_BYTES)
    try:
        pid = ember.get(ember.remote(close).remote(), timeout=20)
        assert ember.get([ember.remote(say).remote(f"after-{i}") for i in range(3)],
                         timeout=20) == [pid] * 3
        out = ""
        deadline = time.monotonic() + 5
        while "after-2" not in out and time.monotonic() < deadline:
            time.sleep(0.05)
            out += capfd.readouterr().out
        assert f"(say pid={pid}) after-2" in out
    finally:
        ember.shutdown()


def flood(megabytes):
    block = (b"x" * 1023 + b"\n") * 1024
    for _ in range(megabytes):
        os.write(1, block)
    return os.getpid()


def test_a_worker_flooding_its_output_neither_stalls_the_node_nor_the_printer(capfd):
    from ember import _logs

    ember.init(num_cpus=2, object_store_memory=STORE_BYTES)
    try:
        node = ember._node.current()
        ref = ember.remote(flood).remote(100)  # 100 MB, while other tasks run beside it
        assert ember.get([ember.remote(add_one).remote(i) for i in range(50)],
                         timeout=20) == list(range(1, 51))
        pid = ember.get(ref, timeout=30)
        log = os.path.join(node.log_dir, f"worker-{pid}.out")
        assert os.path.getsize(log) >= 100 << 20  # the file keeps all of it
        tail = node.log_printer.tails[os.path.basename(log)]
        # The printer skips what it cannot print and catches up with the file's end at once.
        assert wait_for(lambda: tail.offset == os.path.getsize(log), 20)
        printed = capfd.readouterr().out
        assert f"of output skipped: printing cannot keep up; all of it is in {log}" in printed
        assert len(printed) < 3 * _logs.MAX_BEHIND  # not 100 MB
        assert ember.get(ember.remote(say).remote("still here"), timeout=20)
    finally:
        ember.shutdown()


# --- 4. requests the node can never satisfy -------------------------------------------


@pytest.mark.parametrize(
    "options, names",
    [
        ({"num_cpus": 3}, r"add_one needs 3 CPU but this node has 2"),
        ({"num_gpus": 1}, r"add_one needs 1 GPU but this node has 0"),
        ({"resources": {"x": 1}}, r"resource 'x', which this node does not have"),
    ],
    ids=["cpus", "gpus", "custom"],
)
def test_an_infeasible_request_fails_at_submit(node, options, names):
    f = ember.remote(add_one).options(**options)
    before = submitted(node)
    started = time.monotonic()
    with pytest.raises(ValueError, match=names):
        f.remote(1)
    assert time.monotonic() - started < 1.0  # an immediate error, not a hang
    assert submitted(node) == before
    g = ember.remote(add_one)
    assert ember.get(g.remote(1), timeout=10) == 2


# --- 5. get with a timeout ------------------------------------------------------------


def test_get_timeout_raises_in_time_and_the_task_still_finishes(node):
    f = ember.remote(sleep_then)
    ref = f.remote(2.0, "done")
    started = time.monotonic()
    with pytest.raises(GetTimeoutError) as info:
        ember.get(ref, timeout=0.1)
    elapsed = time.monotonic() - started
    assert isinstance(info.value, TimeoutError)
    assert 0.09 <= elapsed < 1.0, elapsed
    assert not ember.wait([ref], timeout=0)[0]  # it raised early, not after the task ended
    assert ember.get(ref, timeout=10) == "done"


# --- 6. kill -9 (or SIGTERM) of the driver --------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_driver_leaves_no_process_and_no_file_but_its_logs(tmp_path, sig):
    shm_before = set(os.listdir("/dev/shm"))
    started = tmp_path / "started"
    driver = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import json, os, time, numpy as np, ember
                from ember import _node
                from tests.test_task_faults import touch_then_sleep
                info = ember.init(num_cpus=2, object_store_memory=32 << 20,
                                  include_dashboard=True, dashboard_port=0,
                                  _temp_dir={str(tmp_path / "root")!r},
                                  _system_config={{"object_spilling_threshold": 1.0}})
                f = ember.remote(touch_then_sleep)
                refs = [f.remote({str(started)!r}, 60) for _ in range(4)]
                node = _node.current()
                spilled = [ember.put(np.ones(1 << 20)) for _ in range(6)]  # 48 MiB into 32
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    pids = node.scheduler.worker_pids()
                    if len(pids) == 2 and os.path.exists({str(started)!r}):
                        with open({str(started)!r}) as fh:
                            if len(fh.read().split()) == 2:
                                break
                    time.sleep(0.02)
                print("PIDS", json.dumps({{"forkserver": node.forkserver.pid, "workers": pids,
                                          "session": node.session_dir,
                                          "spill": os.listdir(node.spill_dir),
                                          "dashboard": info.dashboard_url}}), flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    try:
        line = driver.stdout.readline()
        while line and not line.startswith("PIDS "):
            line = driver.stdout.readline()
        assert line, "the driver died before printing its pids"
        pids = json.loads(line[len("PIDS "):])
        assert len(pids["workers"]) == 2
        running = [pids["forkserver"], *pids["workers"]]
        assert all(alive(p) for p in running)
        assert sorted(int(p) for p in started.read_text().split()) == sorted(pids["workers"])
        assert pids["spill"], "nothing was spilled"
        held = set().union(*(shm_paths_of(p) for p in [driver.pid, *running]))
    finally:
        driver.send_signal(sig)
        driver.wait(timeout=10)
    assert driver.returncode == -sig
    still = wait_for(lambda: not any(alive(p) for p in running), 2)
    assert still, [p for p in running if alive(p)]
    # Of the session's files only the logs stay (what a user reads after a crash); spilled
    # objects go with the forkserver.
    session = pids["session"]
    assert wait_for(lambda: os.listdir(session) == ["logs"], 2), os.listdir(session)
    assert all(re.fullmatch(r"worker-\d+\.(out|err)", n)
               for n in os.listdir(os.path.join(session, "logs")))
    with pytest.raises(OSError):  # the dashboard went with the driver
        urllib.request.urlopen(pids["dashboard"], timeout=2)
    # Nothing in /dev/shm: ember's segment is a memfd. Other programs on a shared CI machine
    # may create entries meanwhile, so only the files ember's processes held or named for
    # ember count.
    new = set(os.listdir("/dev/shm")) - shm_before
    assert [e for e in new if "ember" in e.lower()] == []
    assert [p for p in held if os.path.exists(p)] == []


# --- 7. many nodes in one process -----------------------------------------------------


def test_init_shutdown_cycles_with_tasks_leak_nothing():
    # 20 cycles, not 100: enough to show a per-cycle leak of a process, fd, thread or mapping
    # while keeping CI short.
    gc.collect()  # nodes of earlier tests held by exception cycles still map their segment
    fds, threads = open_fds(), thread_ids()
    assert not segment_mappings()
    f = ember.remote(add_one)
    for i in range(20):
        ember.init(num_cpus=2, object_store_memory=STORE_BYTES)
        assert ember.get(f.remote(i), timeout=10) == i + 1
        ember.shutdown()
        assert children() == [], f"cycle {i}"
    assert open_fds() == fds
    # Compared as sets of thread ids: pytest's faulthandler watchdog of the previous test may
    # still be exiting when the baseline is taken, so only new threads count.
    assert thread_ids() - threads == set()
    assert not segment_mappings()


# --- 8. shutdown with tasks running ---------------------------------------------------


def test_shutdown_while_tasks_run_is_prompt_and_leaves_no_child(tmp_path):
    started = tmp_path / "started"
    ember.init(num_cpus=2, object_store_memory=STORE_BYTES)
    try:
        f = ember.remote(touch_then_sleep)
        refs = [f.remote(str(started), 60) for _ in range(4)]
        assert wait_for(lambda: count_lines(started) == 2, 5)
        workers = [int(p) for p in started.read_text().split()]
    finally:
        begun = time.monotonic()
        ember.shutdown()
        took = time.monotonic() - begun
    assert took < 5, took
    assert children() == []
    assert not any(alive(p) for p in workers)
    del refs


def test_workers_that_cannot_start_fail_the_tasks_instead_of_hanging(monkeypatch):
    monkeypatch.setenv("EMBER_TEST_WORKER_START_FAILS", "1")
    ember.init(num_cpus=1, object_store_memory=64 << 20)
    try:

        @ember.remote
        def never():
            return 1

        with pytest.raises(ember.exceptions.WorkerCrashedError, match="before they start"):
            ember.get(never.remote(), timeout=30)
    finally:
        ember.shutdown()


def test_the_raised_exception_keeps_its_own_attributes_through_dependents(node):
    failing = ember.remote(max_retries=0)(raises_coded_error).remote()

    @ember.remote
    def passes_on(value):
        return value

    for ref in (failing, passes_on.remote(failing)):  # a dependent fails with the same class
        with pytest.raises(CodedError) as info:
            ember.get(ref)
        assert info.value.code == 42 and isinstance(info.value, TaskError)
