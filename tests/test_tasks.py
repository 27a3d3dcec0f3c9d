"""Remote functions: Ray's task API on worker processes."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest

import ember
from ember.exceptions import GetTimeoutError, TaskError

from .conftest import STORE_BYTES, run_python


@pytest.fixture(scope="module")
def cluster():
    """One node for the whole module (starting workers costs ~0.1 s)."""
    ember.init(num_cpus=2, object_store_memory=STORE_BYTES, resources={"disk": 1})
    yield ember._node.current()
    ember.shutdown()


@ember.remote
def double(x):
    return 2 * x


@ember.remote
def add(a, b=0, *, c=0):
    return a + b + c


@ember.remote
def sleep_and_return(seconds, value=None):
    time.sleep(seconds)
    return value


@ember.remote
def pid():
    return os.getpid()


def test_decorator_forms_and_results(cluster):
    assert ember.get(double.remote(21)) == 42
    assert ember.get(add.remote(1, 2, c=3)) == 6

    def triple(x):
        return 3 * x

    assert ember.get(ember.remote(triple).remote(2)) == 6
    assert ember.get(ember.remote(num_cpus=1)(triple).remote(3)) == 9
    assert ember.get(ember.remote(lambda: "lambda").remote()) == "lambda"


def test_calling_a_remote_function_directly_raises_rays_message(cluster):
    with pytest.raises(TypeError) as info:
        double(1)
    name = f"{double.__module__}.double"
    assert str(info.value) == (
        f"Remote functions cannot be called directly. Instead of running '{name}()', "
        f"try '{name}.remote()'.")


def test_tasks_run_in_other_processes(cluster):
    pids = set(ember.get([pid.remote() for _ in range(20)]))
    assert os.getpid() not in pids
    assert pids <= set(cluster.scheduler.worker_pids())


@pytest.mark.parametrize("n", [0, 2, 3])
def test_num_returns(cluster, n):
    @ember.remote(num_returns=n)
    def many():
        return tuple(range(n)) if n else None

    refs = many.remote()
    if n == 0:  # as in Ray: nothing to wait for
        assert refs is None
    else:
        assert isinstance(refs, list) and len(refs) == n
        assert ember.get(refs) == list(range(n))
    assert ember.get(many.options(num_returns=1).remote()) == (tuple(range(n)) if n else None)


def test_an_invocation_decorator_wraps_remote(cluster):
    def invocation(submit):
        def call(args, kwargs):  # reverses the arguments; hands the keywords back
            return submit(args[::-1], {"d": 5}), kwargs
        return call

    def collect(a, b, c, d=None):
        return a, b, c, d

    collect.__ray_invocation_decorator__ = invocation
    task = ember.remote(collect)
    ref, extra = task.remote(1, 2, 3, d=4)
    assert extra == {"d": 4}
    assert ember.get(ref) == (3, 2, 1, 5)
    ref, _ = task.options(num_cpus=0).remote(1, 2, 3)  # kept by .options()
    assert ember.get(ref) == (3, 2, 1, 5)


def test_top_level_refs_are_resolved_nested_refs_are_not(cluster):
    ref = ember.put(10)

    @ember.remote
    def inspect(top, nested):
        return type(top).__name__, type(nested[0]).__name__, ember.get(nested[0])

    assert ember.get(inspect.remote(ref, [ref])) == ("int", "ObjectRef", 10)
    assert ember.get(double.remote(double.remote(2))) == 8  # a pending ref is waited for


def test_a_ref_argument_outlives_its_driver_ref(cluster):
    # f.remote(ember.put(x)): the only ref dies at once; the task must still see the object.
    ref = double.remote(ember.put(np.arange(5)))
    assert ember.get(ref).tolist() == [0, 2, 4, 6, 8]


def test_large_arguments_and_results_are_zero_copy(cluster):
    array = np.arange(1 << 20, dtype=np.float64)

    @ember.remote
    def info(a):
        return a.sum(), a.flags.writeable

    assert ember.get(info.remote(array)) == (array.sum(), False)  # a view in the worker
    ref = ember.put(array)
    assert ember.get(info.remote(ref)) == (array.sum(), False)

    @ember.remote
    def make():
        return np.ones(1 << 20)

    out = ember.get(make.remote())
    lo, hi = cluster.store.segment_range
    assert lo <= out.__array_interface__["data"][0] < hi  # the result lives in the store


def test_nested_tasks_do_not_deadlock(cluster):
    @ember.remote
    def fan(n):
        return sum(ember.get([double.remote(i) for i in range(n)]))

    @ember.remote
    def fan_of_fans(k):
        return sum(ember.get([fan.remote(5) for _ in range(k)]))

    # 2 CPUs, 4 tasks blocked in get at once: blocked workers give their CPU back.
    assert ember.get(fan_of_fans.remote(4)) == 4 * 20


def test_exception_is_both_task_error_and_the_original(cluster):
    @ember.remote
    def fail():
        raise KeyError("missing")

    with pytest.raises(KeyError) as info:
        ember.get(fail.remote())
    assert isinstance(info.value, TaskError)
    assert isinstance(info.value, ember.exceptions.RayTaskError)
    text = str(info.value)  # Ray's form: the task's title, its frames, the exception
    assert text.startswith("ember::fail() (pid=") and text.endswith("KeyError: 'missing'")
    assert "in fail" in text
    with pytest.raises(TaskError):  # every get raises it again
        ember.get(fail.remote())


def test_get_timeout(cluster):
    ref = sleep_and_return.remote(1.0, "late")
    start = time.monotonic()
    with pytest.raises(GetTimeoutError) as info:
        ember.get(ref, timeout=0.1)
    assert isinstance(info.value, TimeoutError)
    assert time.monotonic() - start < 0.9
    assert ember.get(ref) == "late"


def test_wait_returns_ready_refs_in_input_order(cluster):
    slow = sleep_and_return.remote(0.5, "slow")
    fast = [sleep_and_return.remote(0.01, i) for i in range(3)]
    refs = [slow, *fast]
    ready, not_ready = ember.wait(refs, num_returns=3, timeout=5)
    assert ready == fast
    assert not_ready == [slow]
    ready, not_ready = ember.wait(refs, num_returns=4)
    assert ready == refs and not_ready == []
    assert ember.wait(refs, num_returns=0) == ([], refs)


def test_waiting_for_all_reports_every_ready_ref_when_it_times_out(cluster):
    # Waiting for all of them walks the list in order; one late ref first must not hide the
    # ready ones after it.
    slow = sleep_and_return.remote(1.0, "slow")
    fast = [sleep_and_return.remote(0, i) for i in range(3)]
    assert ember.get(fast) == [0, 1, 2]
    refs = [slow, *fast]
    ready, not_ready = ember.wait(refs, num_returns=4, timeout=0.2)
    assert ready == fast and not_ready == [slow]
    with pytest.raises(GetTimeoutError, match="1 of 4 object"):
        ember.get(refs, timeout=0.2)
    assert ember.get(refs) == ["slow", 0, 1, 2]


def test_wait_timeout_and_bad_input(cluster):
    slow = sleep_and_return.remote(0.5)
    ready, not_ready = ember.wait([slow], timeout=0.05)
    assert ready == [] and not_ready == [slow]
    with pytest.raises(ValueError, match="unique"):
        ember.wait([slow, slow])
    with pytest.raises(ValueError):
        ember.wait([slow], num_returns=2)
    with pytest.raises(TypeError):
        ember.wait(slow)
    assert ember.wait([]) == ([], [])  # as Ray, whatever num_returns says
    assert ember.wait([], num_returns=3) == ([], [])


def test_drain_with_wait(cluster):
    refs = [sleep_and_return.remote(0.001 * (i % 3), i) for i in range(60)]
    seen = []
    while refs:
        ready, refs = ember.wait(refs, num_returns=1)
        seen += ember.get(ready)
    assert sorted(seen) == list(range(60))


def test_fan_out_uses_every_cpu(cluster):
    # The seed's example: 0.3 s sleeps on 2 CPUs. Not a timing test: it asserts that no task
    # waited behind another while a CPU was free (at most 2 run at once, and 2 did).
    @ember.remote
    def span(t):
        start = time.monotonic()
        time.sleep(t)
        return start, time.monotonic()

    spans = ember.get([span.remote(0.2) for _ in range(6)])
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running, peak = 0, 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak == 2


def test_a_task_sees_what_its_node_has_left(cluster):
    # available_resources() in a worker is the node's, as of the scheduler's last round: a
    # task that holds both CPUs sees none left (Ray leaves out what is all taken).
    def cpus_left_once_below(limit):
        deadline = time.monotonic() + 10  # the round that leased may still be ending
        while ember.available_resources().get("CPU", 0.0) >= limit and \
                time.monotonic() < deadline:
            time.sleep(0.01)
        return ember.available_resources().get("CPU", 0.0)

    both = ember.remote(num_cpus=2)(cpus_left_once_below)
    one = ember.remote(num_cpus=1)(cpus_left_once_below)
    assert ember.get(both.remote(1.0), timeout=30) == 0.0
    assert ember.get(one.remote(2.0), timeout=30) == 1.0


def test_resources_and_options(cluster):
    resources = ember.cluster_resources()
    assert resources.pop("memory") > 0  # what the store leaves of the memory, as in Ray
    assert resources == {"CPU": 2.0, "disk": 1.0}

    @ember.remote(num_cpus=0)
    def free():
        return "zero-cpu"

    @ember.remote(resources={"disk": 1})
    def uses_disk():
        return "disk"

    @ember.remote(num_cpus=0.5)
    def half():
        return "half"

    assert ember.get([free.remote(), uses_disk.remote(), half.remote(), half.remote()]) == [
        "zero-cpu", "disk", "half", "half"]
    with pytest.raises(ValueError, match="invalid option"):
        double.options(bogus=1)
    with pytest.raises(ValueError, match="num_cpus"):
        double.options(num_cpus=-1)


def test_a_zero_cpu_task_starts_behind_a_long_backlog(cluster):
    @ember.remote(num_cpus=0)
    def no_cpu():
        return "ran"

    blockers = [sleep_and_return.remote(2.0, i) for i in range(2)]  # both CPUs
    backlog = [double.remote(i) for i in range(600)]  # waits for a CPU
    start = time.monotonic()
    assert ember.get(no_cpu.remote(), timeout=10) == "ran"
    assert time.monotonic() - start < 1.5  # before the CPUs free up
    assert ember.get(blockers) == [0, 1]
    assert ember.get(backlog)[-1] == 1198


def test_cancel(cluster):
    running = sleep_and_return.remote(5)
    queued = [sleep_and_return.remote(5) for _ in range(4)]
    time.sleep(0.2)
    for ref in [running, *queued]:
        ember.cancel(ref)
    for ref in [running, *queued]:
        with pytest.raises(ember.exceptions.TaskCancelledError):
            ember.get(ref, timeout=5)
    assert ember.get(double.remote(1)) == 2  # the node goes on


@ember.remote
def tells_whether_cancelled(mailbox):
    before = ember.get_runtime_context().is_canceled()
    try:
        ember.get(mailbox.put.remote("started"))
        time.sleep(30)
        return "not cancelled"
    except KeyboardInterrupt:  # the cancel; the task may still answer, as in Ray
        return before, ember.get_runtime_context().is_canceled()


@ember.remote
def is_canceled_now():
    return ember.get_runtime_context().is_canceled()


def test_a_cancelled_task_knows_it(cluster):
    mailbox = Mailbox.remote()
    ref = tells_whether_cancelled.remote(mailbox)
    deadline = time.monotonic() + 10
    while not ember.get(mailbox.take.remote()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    ember.cancel(ref)
    assert ember.get(ref, timeout=10) == (False, True)
    # Later tasks (on that worker too: each record's flag starts clear) are not cancelled.
    assert ember.get([is_canceled_now.remote() for _ in range(4)]) == [False] * 4
    with pytest.raises(RuntimeError, match="not in the driver"):
        ember.get_runtime_context().is_canceled()


@ember.remote
class Mailbox:
    def __init__(self):
        self.items = []

    def put(self, item):
        self.items.append(item)

    def take(self):
        return self.items


@ember.remote
def parent_of_sleepers(mailbox, seconds):
    children = [sleep_and_return.remote(seconds, i) for i in range(2)]
    ember.get(mailbox.put.remote(children))  # (a list: the refs travel, not their values)
    return ember.get(children)


def children_of(mailbox):
    deadline = time.monotonic() + 10
    while not (items := ember.get(mailbox.take.remote())):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return items[0]


@pytest.mark.parametrize("recursive", [True, False])
def test_cancel_reaches_the_tasks_a_task_submitted_unless_told_not_to(cluster, recursive):
    mailbox = Mailbox.remote()
    assert ember.get(mailbox.take.remote()) == []  # up, with its CPU, before the sleepers
    parent = parent_of_sleepers.remote(mailbox, 30 if recursive else 0.5)
    children = children_of(mailbox)
    time.sleep(0.1)  # the children are running
    start = time.monotonic()
    ember.cancel(parent, recursive=recursive)
    with pytest.raises(ember.exceptions.TaskCancelledError):
        ember.get(parent, timeout=10)
    if recursive:
        for child in children:
            with pytest.raises(ember.exceptions.TaskCancelledError):
                ember.get(child, timeout=10)
        assert time.monotonic() - start < 10  # not the 30 s they would have slept
    else:
        assert ember.get(children, timeout=10) == [0, 1]  # left to finish
    assert ember.get(double.remote(1)) == 2


def cancel_a_child(seconds):
    child = sleep_and_return.remote(seconds, "slept")
    time.sleep(0.2)  # running
    ember.cancel(child)
    try:
        return ember.get(child, timeout=10)
    except ember.exceptions.TaskCancelledError:
        return "cancelled"


def test_cancel_from_inside_a_task_and_an_actor(cluster):
    assert ember.get(ember.remote(cancel_a_child).remote(30), timeout=20) == "cancelled"

    @ember.remote
    class Canceller:
        def run(self):
            return cancel_a_child(30)

    c = Canceller.remote()
    assert ember.get(c.run.remote(), timeout=30) == "cancelled"


def test_runtime_context(cluster):
    @ember.remote
    def ctx():
        c = ember.get_runtime_context()
        return c.get_task_id(), c.worker_pid, c.get_node_id()

    task_id, worker_pid, node_id = ember.get(ctx.remote())
    assert task_id is not None and worker_pid != os.getpid()
    assert node_id == ember.get_runtime_context().get_node_id()
    assert ember.get_runtime_context().get_task_id() is None


def test_worker_output_reaches_the_driver(cluster, capfd):
    @ember.remote
    def speak():
        print("hello from a worker")
        return os.getpid()

    worker = ember.get(speak.remote())
    deadline = time.monotonic() + 5
    out = ""
    while time.monotonic() < deadline and "hello from a worker" not in out:
        time.sleep(0.05)
        out += capfd.readouterr().out
    assert f"(speak pid={worker}) hello from a worker" in out
    log = os.path.join(cluster.log_dir, f"worker-{worker}.out")
    with open(log) as f:
        assert "hello from a worker" in f.read()


def test_output_without_a_newline_reaches_the_driver_too(cluster, capfd):
    @ember.remote
    def count():
        for i in range(5):
            print(i, end=" ")  # no newline, no flush: as Ray, the driver still shows it
            print(100 + i, end=" ", file=sys.stderr)
        return os.getpid()

    worker = ember.get(count.remote())
    deadline = time.monotonic() + 5
    out = err = ""
    while time.monotonic() < deadline and not ("4 " in out and "104 " in err):
        time.sleep(0.05)
        captured = capfd.readouterr()
        out, err = out + captured.out, err + captured.err
    assert f"(count pid={worker}) 0 1 2 3 4 " in out
    assert f"(count pid={worker}) 100 101 102 103 104 " in err


@pytest.mark.parametrize(("variable", "value"), [("RAY_LOG_TO_DRIVER", "0"),
                                                 ("EMBER_LOG_TO_DRIVER", "false")])
def test_the_environment_can_keep_worker_output_out_of_the_driver(variable, value):
    code = """
        import ember
        ember.init(num_cpus=1)

        @ember.remote
        def speak():
            print("from the worker")

        ember.get(speak.remote())
        import time; time.sleep(0.5)
        ember.shutdown()
        print("done")
    """
    quiet = run_python(code, env={**os.environ, variable: value})
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == "done\n"
    loud = run_python(code.replace("num_cpus=1", "num_cpus=1, log_to_driver=True"),
                      env={**os.environ, variable: value})
    assert "from the worker" in loud.stdout  # init's own argument says otherwise


def test_init_info(cluster):
    info = cluster.info
    assert info.num_cpus == 2
    assert info.session_dir.startswith(f"/tmp/ember-{os.getuid()}/session_")
    assert os.path.isdir(os.path.join(info.session_dir, "logs"))
    assert info["node_id"] == info.node_id



def test_timeline_shows_each_finished_task_on_its_worker(cluster, tmp_path):
    before = len(ember.timeline())
    refs = [sleep_and_return.remote(0.05, i) for i in range(4)]
    assert ember.get(refs) == [0, 1, 2, 3]
    deadline = time.monotonic() + 5  # a worker marks its task done just after the result
    while True:
        mine = [e for e in ember.timeline()[before:] if e["name"] == "sleep_and_return"]
        if len(mine) >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert len(mine) == 4
    assert all(e["ph"] == "X" and e["dur"] >= 50_000 * 0.9 for e in mine)  # us
    pids = {e["args"]["worker_pid"] for e in mine}
    assert pids <= set(cluster.scheduler.worker_pids()) and pids
    path = tmp_path / "trace.json"
    assert ember.timeline(str(path)) is None
    import json

    assert len(json.loads(path.read_text())) >= before + 4


def test_refs_can_be_awaited_and_turned_into_futures(cluster):
    import asyncio

    async def gather():
        return await asyncio.gather(*[double.remote(i) for i in range(20)])

    assert asyncio.run(gather()) == [2 * i for i in range(20)]
    assert double.remote(21).future().result(timeout=10) == 42
    # A callback when the object is ready: its value, or its task's exception (Ray's).
    import queue

    seen = queue.SimpleQueue()
    double.remote(4)._on_completed(seen.put)
    assert seen.get(timeout=10) == 8
    failing = ember.remote(lambda: 1 / 0).remote()
    failing._on_completed(seen.put)
    assert isinstance(seen.get(timeout=10), ZeroDivisionError)

    @ember.remote
    class Summer:
        async def total(self, refs):
            return sum(await asyncio.gather(*refs))  # an async actor awaits refs

    summer = Summer.remote()
    assert ember.get(summer.total.remote([double.remote(i) for i in range(5)])) == 20

    @ember.remote(max_retries=0)
    def fails():
        raise KeyError("nope")

    async def awaited_error():
        return await fails.remote()

    with pytest.raises(KeyError):
        asyncio.run(awaited_error())


def test_gpu_ids_and_nodes(cluster):
    assert ember.get_gpu_ids() == []  # the driver, and this node has no GPUs

    @ember.remote
    def ids():
        return ember.get_gpu_ids()

    assert ember.get(ids.remote()) == []
    (node,) = ember.nodes()
    assert node["Alive"] and node["Resources"] == ember.cluster_resources()


def test_list_tasks_says_what_each_unfinished_task_waits_for(cluster):
    from ember.util.state import list_tasks

    blockers = [sleep_and_return.remote(1.0, i) for i in range(2)]  # both CPUs
    deadline = time.monotonic() + 10  # on a fresh node the first workers are still starting
    def states_of(refs):
        return {t["state"] for t in list_tasks() if t["task_id"] in {task_id(r) for r in refs}}

    while states_of(blockers) != {"RUNNING"} and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.15)  # running for a while: running_s > 0.1 below
    waiting = double.remote(blockers[0])  # its argument is not ready
    states = {t["task_id"]: t for t in list_tasks(detail=True)}
    running = [states[task_id(b)] for b in blockers]
    assert {t["state"] for t in running} <= {"RUNNING", "QUEUED_ON_WORKER"}
    assert any(t["state"] == "RUNNING" and t["running_s"] > 0.1 and t["worker_pid"] > 0
               for t in running)
    assert states[task_id(waiting)]["state"] == "PENDING_ARGS"
    assert states[task_id(waiting)]["name"] == "double"
    assert ember.get(waiting) == 0
    ember.get(blockers)
    deadline = time.monotonic() + 5  # a worker marks its task done just after the result
    while states_of(blockers) != {"FINISHED"}:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def task_id(ref) -> str:
    """The task id list_tasks() gives the task that returns `ref` (its first return)."""
    return "00" * 8 + ref.hex()


def test_list_tasks_shows_finished_and_failed_tasks_and_actor_calls(cluster):
    from ember.util.state import list_tasks

    @ember.remote
    def fails():
        raise ValueError("no")

    @ember.remote
    class Echo:
        def say(self):
            return ember.get_runtime_context().get_task_id()

    echo = Echo.remote()
    call_id = ember.get(echo.say.remote())
    ok, bad = double.remote(1), fails.remote()
    ember.wait([ok, bad], num_returns=2)
    deadline = time.monotonic() + 5  # records are read back once their worker is done
    while True:
        rows = {}
        for t in list_tasks(detail=True, limit=1000):  # unfinished first: finished win
            rows[t["task_id"]] = t
        if all(rows.get(task_id(r), {}).get("state") in ("FINISHED", "FAILED")
               for r in (ok, bad)) and call_id in rows:
            break
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert (rows[task_id(ok)]["state"], rows[task_id(ok)]["type"]) == ("FINISHED", "NORMAL_TASK")
    assert rows[task_id(bad)]["state"] == "FAILED"
    assert (rows[call_id]["name"], rows[call_id]["type"]) == ("Echo.say", "ACTOR_TASK")
    assert "ACTOR_CREATION_TASK" in {t["type"] for t in rows.values()}


def test_a_task_call_is_checked_against_the_signature_at_remote(cluster):
    @ember.remote
    def f(a, b=1, *rest, key, **extra):
        return a + b + len(rest) + key + len(extra)

    @ember.remote
    def positional_only(a, /):
        return a

    with pytest.raises(TypeError, match="missing a required argument: 'a'"):
        f.remote(key=1)
    with pytest.raises(TypeError, match="missing a required argument: 'key'"):
        f.remote(1)
    with pytest.raises(TypeError, match="multiple values for argument 'b'"):
        f.remote(1, 2, b=3, key=0)
    with pytest.raises(TypeError, match="'a' parameter is positional only"):
        positional_only.remote(a=1)
    with pytest.raises(TypeError, match="too many positional arguments"):
        positional_only.remote(1, 2)
    assert ember.get([f.remote(1, 2, 3, 4, key=5, x=6), positional_only.remote(9)]) == [11, 9]


def test_rays_older_call_form_remote_with_options(cluster):
    @ember.remote
    def upto(n, step=1):
        return list(range(0, n, step))

    @ember.remote
    class Pair:
        def __init__(self, x, y=0):
            self.xy = (x, y)

        def both(self, a, b=0):
            return (*self.xy, a, b)

    assert ember.get(upto._remote(args=[4], kwargs={"step": 2})) == [0, 2]
    first, second = upto._remote(args=[2], num_returns=2)
    assert ember.get([first, second]) == [0, 1]
    pair = Pair._remote(args=[1], kwargs={"y": 2}, num_cpus=0)
    assert ember.get(pair.both._remote(args=["a"], kwargs={"b": "b"})) == (1, 2, "a", "b")
    assert ember.get(list(pair.both._remote(args=["c"], num_returns=4))) == [1, 2, "c", 0]
    with pytest.raises(ValueError, match="bogus"):
        upto._remote(args=[1], bogus=True)
