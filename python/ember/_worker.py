"""The worker process's main loop: take a task, run it, store its results.

    inbound ring ──next_task() (C++, GIL released)──► run_task ──put_return()──► store
                                                        └─ finish(): DONE, doorbell

- Functions arrive as ObjectRefs to their pickled bytes and are unpickled once per worker.
- Top-level ObjectRef arguments are replaced by their values (Ray's rule); refs nested in
  containers stay refs.
- An exception in the task becomes a TaskError object in its returns; an exception while
  storing the result is reported the same way, so ``get`` never hangs on a broken task.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import time
import types

from ember import _core, _names, _node, _objects, _runtime_env, _stream
from ember._core import LOG_MARKER  # marks a change of task name; the log printer hides it
from ember._task_errors import (
    ArgumentFailed,
    actor_labels,
    error_parts,
    half_made_instance,
    task_error,
)
from ember.exceptions import EmberError, TaskCancelledError, TaskError
from ember.serialization import deserialize, serialize

#: A worker's process title is this and what it runs ("ember::f", "ember::IDLE"), as Ray's
#: workers show "ray::f" in ps and top ("ray::f" here too for a program that knows ember as
#: ray: see ember._names).
TITLE_PREFIX = f"{_names.runtime()}::"

#: The worker's CUDA_VISIBLE_DEVICES before any task set it (GPU tasks set their own ids).
_INHERITED_CUDA = os.environ.get("CUDA_VISIBLE_DEVICES")


class _WorkerState:
    def __init__(self, node: _node.Node):
        self.node = node
        self.runtime = node.worker
        self.functions: dict[bytes, object] = {}  # function id -> function
        self.calls: dict[bytes, int] = {}  # function id -> its calls here (with a max_calls)
        self.last_name = ""

    def function(self, fid: bytes):
        fn = self.functions.get(fid)
        if fn is None:
            store = self.node.store
            fn = deserialize(*store.get(store.ref_from_binary(fid)))
            self.functions[fid] = fn
        return fn

    def arguments(self, args, inline: bool):
        """The call's (args, kwargs) as stored (for an actor's creation, with its setup)."""
        if args is None:
            return (), {}
        if inline:
            return deserialize(args, None)
        store = self.node.store
        return deserialize(*store.get(store.ref_from_binary(args)))

    def resolved_arguments(self, args, inline: bool):
        """(args, kwargs) with top-level ObjectRefs replaced by their values (Ray's rule).
        Raises ArgumentFailed if an argument's task failed."""
        a, kw = self.arguments(args, inline)
        try:
            return _resolve_all(a, kw)
        except TaskError as e:
            raise ArgumentFailed(e) from None

    def mark_name(self, name: str) -> None:
        if sys.stdout.closed or sys.stderr.closed:  # an earlier task closed them
            _reopen_streams()
        if name != self.last_name:
            self.last_name = name
            _core.set_process_title(f"{TITLE_PREFIX}{name}")
            for which in ("stdout", "stderr"):
                try:
                    getattr(sys, which).write(f"{LOG_MARKER}{name}\n")
                except (OSError, ValueError):  # its fd was closed (os.close(1)) by a task
                    _reopen_streams()
                    getattr(sys, which).write(f"{LOG_MARKER}{name}\n")

    def call_actor(self, index, name, num_returns, args, inline, task_id, fid, flags,
                   retry_info) -> bool:
        """Hands an actor call to the actor's state (ember._actor_runtime): which method it
        runs, and how many more runs an exception of it may have (None: no retry)."""
        method, retry_on = name.rsplit(".", 1)[-1], None
        if flags & _core.SPEC_RENAMED_CALL:
            method = self.described_call(fid)
            if isinstance(method, tuple):
                method, retry_on = method
        state = self.node.actor_state
        attempt, max_retries, retry_exceptions = retry_info
        retries = None
        if retry_exceptions:
            limit = max_retries if flags & _core.SPEC_OWN_RETRIES else state.max_task_retries
            retries = -1 if limit < 0 else max(0, limit - attempt)
        return state.call(self, index, name, method, num_returns, args, inline, task_id,
                          retries, retry_on)

    def described_call(self, fid: bytes):
        """What a call given a name or exception classes by ``.options()`` runs: its spec's
        name is the call's own, and its function object (SPEC_RENAMED_CALL) holds the
        method's name, or (name, the classes it retries on)."""
        store = self.node.store
        return deserialize(*store.get(store.ref_from_binary(fid)))

    def run(self, index: int) -> bool:
        """Runs one task or actor call; False if it was handed to another thread, which then
        finishes it."""
        rt = self.runtime
        (fid, name, num_returns, args, inline, attempt, max_retries, retry_exceptions, gpu_mask,
         task_id, flags, actor_id, max_calls) = rt.task_info(index)
        self.mark_name(name)
        if flags & _core.SPEC_ACTOR_CREATE:  # its title is Class.__init__ (as in Ray)
            _core.set_process_title(f"{TITLE_PREFIX}{name}.__init__")
        _node.current_call.set((name, task_id, index, fid))
        if flags & _core.SPEC_ACTOR_METHOD:  # an actor keeps the GPUs (and group) of its creation
            return self.call_actor(index, name, num_returns, args, inline, task_id, fid, flags,
                                   (attempt, max_retries, retry_exceptions))
        self.node.placement = rt.task_placement(index) if flags & _core.SPEC_PLACED else None
        if gpu_mask:
            self.node.gpu_ids = [i for i in range(32) if gpu_mask >> i & 1]
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in self.node.gpu_ids)
        else:  # most tasks: no 32-bit scan
            self.node.gpu_ids = []
            if _INHERITED_CUDA is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = _INHERITED_CUDA
        if flags & _core.SPEC_ACTOR_CREATE:
            self.node.actor_id = actor_id
            self.node.actor_reconstructed = attempt > 0  # a restart runs __init__ again
            self.node.actor_resources = (self.runtime.task_resources(index)
                                         if flags & _core.SPEC_HOLD_RESOURCES else None)
            self.create_actor(index, name, fid, args, inline, task_id)
            return True
        tries = 0
        fn = None  # retry_on: a RetryOn function's exception classes, else every Exception
        while True:
            try:
                fn = self.function(fid)
                a, kw = self.resolved_arguments(args, inline)
                result = fn(*a, **kw)
                break
            except Exception as e:  # noqa: BLE001 (every task failure goes to its caller)
                if retry_exceptions and (max_retries < 0 or tries < max_retries) and \
                        isinstance(e, getattr(fn, "retry_on", Exception)) and \
                        not isinstance(e, ArgumentFailed):  # would fail the same way again
                    tries += 1
                    time.sleep(self.node.task_retry_delay_s)  # _system_config's; 0 by default
                    continue
                self.store_error(index, num_returns, name, e)
                return True
            except KeyboardInterrupt:  # ember.cancel() of a running task
                self.store_cancelled(index, num_returns, name)
                return True
        if max_calls:  # before the result is seen: its caller's next call then goes elsewhere
            self.count_call(fid, max_calls)
        self.store_result(index, num_returns, name, result)
        return True

    def count_call(self, fid: bytes, max_calls: int) -> None:
        """max_calls: after that many calls of one function this worker asks to go; the
        scheduler hands it nothing more and retires it once it has run what it was handed
        already (a fresh worker takes over)."""
        n = self.calls.get(fid, 0) + 1
        self.calls[fid] = n
        if n >= max_calls:
            self.runtime.ask_retire()

    def store_result(self, index, num_returns, name, result) -> None:
        rt = self.runtime
        if type(result) is types.GeneratorType:
            self.store_generator(index, num_returns, name, result)
            return
        try:
            if num_returns == 1:
                rt.put_return(index, 0, *serialize(result), False)
            else:
                values = _split(result, num_returns, name)
                for i, value in enumerate(values):
                    rt.put_return(index, i, *serialize(value), False)
        except Exception as e:  # noqa: BLE001
            self.store_error(index, num_returns, name, e, what="storing the result of")

    def store_generator(self, index, num_returns, name, generator) -> None:
        """A generator's values: a stream, a DynamicObjectRefGenerator, or num_returns values
        (a generator with num_returns=N yields N values, as in Ray)."""
        info = self.runtime.task_info(index)
        flags, attempt = info[10], info[5]
        if flags & _core.SPEC_STREAMING:
            writer = _stream.StreamWriter(self.runtime, index, resumed=attempt == 0)
            self.end_stream(index, name, writer, _stream.write_stream(writer, generator))
            return
        try:
            if flags & _core.SPEC_DYNAMIC:
                values = [_stream.dynamic_refs(self.node.store, generator)]
            else:
                values = _first_yielded(generator, num_returns, name)
        except Exception as e:  # noqa: BLE001 (raised by the generator: the task's failure)
            self.store_error(index, num_returns, name, e)
            return
        self.store_result(index, num_returns, name, values[0] if num_returns == 1 else values)

    async def store_async_generator(self, index, num_returns, name, generator) -> None:
        """store_generator for an async generator (a method of an async actor)."""
        info = self.runtime.task_info(index)
        if info[10] & _core.SPEC_STREAMING:
            writer = _stream.StreamWriter(self.runtime, index, resumed=info[5] == 0)
            self.end_stream(index, name, writer,
                            await _stream.write_async_stream(writer, generator))
            return
        try:
            values = [v async for v in generator]
        except Exception as e:  # noqa: BLE001 (raised by the generator: the call's failure)
            self.store_error(index, num_returns, name, e)
            return
        self.store_generator(index, num_returns, name, iter(values))

    def end_stream(self, index, name, writer, raised) -> None:
        """A stream's end: what the generator raised is its last item; the task's return
        holds the number of items."""
        if raised is not None:
            writer.put_error(error_parts(name, raised, actor=self.actor_labels()))
        self.runtime.put_return(index, 0, *serialize(writer.k), False)

    def store_exception(self, index, num_returns, exc) -> None:
        """Stores an ember exception (not wrapped in TaskError) as every return."""
        parts = serialize(exc)
        for i in range(num_returns):
            try:
                self.runtime.put_return(index, i, *parts, True)
            except Exception:  # noqa: BLE001, S112
                continue

    def create_actor(self, index, name, fid, args, inline, ready_id) -> None:
        # Not at the top: its asyncio and concurrent.futures take ~35 ms to import, which a
        # task's worker never needs (the forkserver imports it ahead for the actors it forks).
        from ember._actor_runtime import ActorState  # noqa: PLC0415
        from ember.actor import _ActorExit  # noqa: PLC0415

        self.node.actor_state = ActorState(self.node, {})  # until the setup is read
        cls = None
        try:
            cls = self.function(fid)
            a, kw, setup = self.arguments(args, inline)
            own_env = setup.get("runtime_env")
            if own_env:  # the actor's, over the job's: the actor has a process of its own
                _runtime_env.put_on_for_life(own_env, self.node.runtime_env)
            a, kw = _resolve_all(a, kw)
            state = ActorState(self.node, setup)
            state.identity = (cls, fid, ready_id)
            self.node.actor_state = state
            state.instance = cls(*a, **kw)
        except _ActorExit:  # exit_actor() in __init__: the actor ends as from a method
            self.node.actor_state.exit_now(self, index, 1)
        except Exception as e:  # noqa: BLE001 (the actor is dead; every call says why)
            labels = actor_labels(self.node.actor_id, half_made_instance(e, cls)) \
                if isinstance(cls, type) else None
            creation = f"{name}.__init__"
            self.node.actor_state.init_error = (
                "The actor died because of an error raised in its creation task, "
                f"{task_error(creation, e, actor=labels)}")
            self.store_error(index, 1, creation, e, actor=labels)
            return
        # EmberError: a restart, whose first incarnation already marked the actor ready.
        with contextlib.suppress(EmberError):
            self.runtime.put_return(index, 0, *serialize(None), False)

    def store_cancelled(self, index, num_returns, name) -> None:
        self.store_exception(index, num_returns, TaskCancelledError(f"task {name} was cancelled"))

    def actor_labels(self) -> tuple[str, str] | None:
        """(id hex, repr) of the actor this process is, for its calls' errors; else None."""
        state = self.node.actor_state
        if state is None or state.instance is None:
            return None
        return actor_labels(self.node.actor_id, state.instance)

    def store_error(self, index, num_returns, name, exc, what="", actor=None) -> None:
        parts = error_parts(name, exc, what, actor or self.actor_labels())
        for i in range(num_returns):
            try:
                self.runtime.put_return(index, i, *parts, True)
            except Exception:  # noqa: BLE001, S112 (already written, or the store is closed)
                continue


#: (log_dir, pid) of this worker's log files, as the forkserver opened them (None outside a
#: node's worker).
_log_prefix: tuple[str, int] | None = None


def log_path(log_dir: str, pid: int, suffix: str) -> str:
    """Where worker `pid` writes its stdout ("out") or stderr ("err")."""
    return f"{log_dir}/worker-{pid}.{suffix}"


def _reopen_streams() -> None:
    """A task closed the worker's stdout or stderr (the file object, or fd 1 or 2): open them
    again on the worker's log files, so that ember's markers and the next tasks' prints do not
    fail and take the worker (and the task it runs) down."""
    for fd, name, suffix in ((1, "stdout", "out"), (2, "stderr", "err")):
        try:
            os.fstat(fd)
            fd_open = True
        except OSError:
            fd_open = False
        if not fd_open:
            path = log_path(*_log_prefix, suffix) if _log_prefix else os.devnull
            log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
            if log != fd:
                os.dup2(log, fd)
                os.close(log)
        stream = getattr(sys, name)
        if not fd_open or stream is None or stream.closed:
            setattr(sys, name, open(fd, "w", buffering=1, closefd=False,  # noqa: SIM115
                                    errors="backslashreplace"))


def _resolve_all(args, kwargs):
    return [_resolve(x) for x in args], {k: _resolve(v) for k, v in kwargs.items()}


def _resolve(value):
    if isinstance(value, _core.ObjectRef):
        return _objects.get(value)
    return value


def _split(result, n: int, name: str):
    try:
        values = list(result)
    except TypeError:
        raise ValueError(
            f"task {name} has num_returns={n} but returned a {type(result).__name__}, "
            "not a sequence") from None
    if len(values) != n:
        raise ValueError(f"task {name} returned {len(values)} values but num_returns={n}")
    return values


def _next_task(worker) -> int:
    """The next task's index; -1 after a second without one, -2 when the node shuts down.
    Before it waits, the worker flushes what its tasks printed without a newline."""
    index = worker.next_task(0)
    if index == -1:
        _flush_output()
        index = worker.next_task(1000)
    return index


def _flush_output() -> None:
    """Writes out what the worker's stdout and stderr hold (a print(end=" ") has no newline
    to flush it), so the driver shows it, as Ray's workers do after their tasks."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed by a task: reopened on use
            stream.flush()


def _first_yielded(generator, n: int, name: str) -> list:
    """A generator task's num_returns=n values: the first n it yields, as in Ray (which
    stores each as it comes). Fewer fail the task; more are said on the worker's stderr (the
    driver prints it) and the generator is closed there."""
    values = list(itertools.islice(generator, n))
    if len(values) < n:
        raise ValueError(f"task {name} yielded {len(values)} values but num_returns={n}")
    for _ in generator:
        print(f"task {name} yielded more than num_returns={n} values: its returns are the "
              f"first {n}, and the generator was closed", file=sys.stderr)
        if hasattr(generator, "close"):  # not the list an async generator's values are in
            generator.close()
        break
    return values


def main(store_fd: int, slot: int, log_dir: str = "") -> None:
    global _log_prefix
    if os.environ.get("EMBER_TEST_WORKER_START_FAILS"):  # tests: a broken worker environment
        raise SystemExit(7)
    if log_dir:
        _log_prefix = (log_dir, os.getpid())
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    node = _node.connect(store_fd, worker_slot=slot)
    _runtime_env.put_on_for_life(node.runtime_env)  # the job's
    state = _WorkerState(node)
    node.worker_state = state
    if log_dir:
        node.session_dir = os.path.dirname(log_dir)  # <session>/logs
    node.worker.announce(os.getpid())
    _core.set_process_title(f"{TITLE_PREFIX}IDLE")
    parent = os.getppid()
    while True:
        try:
            index = _next_task(node.worker)
            if index == -2:
                return
            if index == -1:  # a second without a task
                if os.getppid() != parent:
                    return
                if node.actor_state is None and state.last_name != "":
                    state.last_name = ""  # the next task sets its title again
                    _core.set_process_title(f"{TITLE_PREFIX}IDLE")
                continue
            # SystemExit (sys.exit() in the task) and other BaseExceptions end the process with
            # the task unfinished, so the scheduler retries it or fails it with
            # WorkerCrashedError, as Ray does: finishing it would leave its returns unwritten.
            try:
                done = state.run(index)
            except KeyboardInterrupt:  # a cancel that landed outside the task's own code
                info = node.worker.task_info(index)
                state.store_cancelled(index, num_returns=info[2], name=info[1])
                done = True
            if done:
                node.worker.finish(index)
        except KeyboardInterrupt:
            # A cancel (SIGINT) that landed between claiming a task and running it: that task
            # must still end, as cancelled, or its caller would wait forever.
            index = node.worker.current_task()
            if index >= 0:
                info = node.worker.task_info(index)
                state.store_cancelled(index, num_returns=info[2], name=info[1])
                node.worker.finish(index)
            continue
