"""An actor's process: runs its calls in order, on threads (max_concurrency) or on an asyncio
loop (async def methods), and handles exit_actor().

    main thread: next_task() ──► call() ─┬─ inline (the default: one call at a time, in order)
                                         ├─ threads (max_concurrency > 1)
                                         └─ asyncio loop thread (async actors: every method)
    whoever runs a call stores its results and calls finish() for it.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import functools
import inspect
import os
import queue
import sys
import threading
import time
import traceback
import types

from ember import _node
from ember.actor import ActorHandle, _ActorExit, _methods_of
from ember.exceptions import ActorDiedError


def _ready() -> bool:
    return True


def _call_with_instance(instance, fn, *args, **kwargs):
    return fn(instance, *args, **kwargs)


def _terminate() -> None:
    raise _ActorExit()


#: An attribute ember's own actors set on a method that is quick, never blocks and is safe to
#: run on the worker's main thread while other calls run on the actor's threads or loop
#: (util.queue's try_put/try_get): such a call runs where it is read from the ring, without
#: the ~60 us hand-over to another thread. Not for user code: nothing checks the promise.
INLINE = "_ember_inline"


class _Loop:
    """An asyncio loop on a thread of its own, fed calls in batches: one wake-up of the loop
    thread per batch rather than per call (run_coroutine_threadsafe costs a pipe write and a
    concurrent Future each). Deque appends and the flag are atomic under the GIL."""

    def __init__(self, thread_name: str):
        self.loop = asyncio.new_event_loop()
        self.pending = collections.deque()
        self.drain_scheduled = False
        threading.Thread(target=self.loop.run_forever, name=thread_name, daemon=True).start()

    def submit(self, coroutine_function, args: tuple) -> None:
        """Runs coroutine_function(*args) on the loop, after the calls submitted before."""
        self.pending.append((coroutine_function, args))
        if not self.drain_scheduled:
            self.drain_scheduled = True
            self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        """In the loop thread: starts every call handed over so far, in order."""
        self.drain_scheduled = False  # first: a call appended from now on schedules a drain
        while self.pending:
            coroutine_function, args = self.pending.popleft()
            self.loop.create_task(coroutine_function(*args))


class _Threads:
    """A threaded actor's (or concurrency group's) max_concurrency threads, all started with
    the actor as Ray's are, each living as long as the actor (what a call leaves in
    threading.local() is there for the next call on that thread). A call is handed to a
    thread that is idle, the one idle longest, so calls that arrive together run on as many
    threads, however late those wake up; with none idle it waits in the backlog, which a
    thread drains before it counts itself idle. (ThreadPoolExecutor starts threads only as
    calls find none idle, and its threads share one queue, so a burst could share a thread.)
    """

    def __init__(self, n: int, name: str):
        self.lock = threading.Lock()
        self.idle: collections.deque = collections.deque()  # idle threads' own queues
        self.backlog: collections.deque = collections.deque()
        for i in range(n):
            own = queue.SimpleQueue()
            self.idle.append(own)
            threading.Thread(target=self._serve, args=(own,), name=f"{name}_{i}",
                             daemon=True).start()

    def submit(self, fn, *args) -> None:
        with self.lock:
            if not self.idle:
                self.backlog.append((fn, args))
                return
            own = self.idle.popleft()
        own.put((fn, args))

    def _serve(self, own: queue.SimpleQueue) -> None:
        call = own.get()
        while True:
            fn, args = call
            try:
                fn(*args)
            except BaseException:  # noqa: BLE001 (the call stored its own failure; keep serving)
                traceback.print_exc()
            with self.lock:
                if self.backlog:
                    call = self.backlog.popleft()
                    continue
                self.idle.append(own)
            call = own.get()


class ActorState:
    def __init__(self, node, setup: dict):
        self.node = node
        self.instance = None
        self.init_error: str | None = None
        self.max_concurrency = setup.get("max_concurrency", 1)
        self.max_task_retries = setup.get("max_task_retries", 0)  # -1: forever
        self.is_async = setup.get("is_async", False)
        node.actor_name = setup.get("name")
        self.identity = None  # (class, its object's id, the creation's return id)
        # Concurrency groups: each limits its own calls (its threads, or its semaphore on an
        # async actor's loop); the default group is max_concurrency, as without groups.
        groups = setup.get("concurrency_groups") or {}
        self.group_names = tuple(groups)  # a call's group index - 1 names one of these
        self.method_groups = setup.get("method_groups") or {}  # method -> its group
        self.group_pools = {}
        self.group_slots = {}
        self.pool = None
        self.loop = None
        self.slots = None
        if self.is_async:
            # Each group has a loop (and thread) of its own, as in Ray: a call that blocks its
            # loop (time.sleep in an async def) holds up its own group only.
            self.loops = {None: _Loop("ember-actor-loop")}
            self.loops.update((name, _Loop(f"ember-actor-{name}")) for name in groups)
            self.loop = self.loops[None].loop
            # The default loop is also this (the worker's main) thread's current one, where
            # __init__ runs: Python 3.9's asyncio.Event() and friends bind the current loop
            # when made, and must belong to the loop the methods run on.
            asyncio.set_event_loop(self.loop)
            self.slots = threading.BoundedSemaphore(self.max_concurrency)
            self.group_sizes = dict(groups)  # each group's semaphore is made on its loop
        elif self.max_concurrency > 1 or groups:
            # With groups every call runs on its group's threads, the default group's too,
            # so a busy group never holds up another (nor the loop that takes calls).
            self.pool = _Threads(self.max_concurrency, "ember-actor")
            self.group_pools = {
                name: _Threads(n, f"ember-actor-{name}")
                for name, n in groups.items()}

    def call(self, worker_state, index, name, method_name, num_returns, args, inline,
             task_id, retries: int | None = None, retry_on: tuple | None = None) -> bool:
        """Runs call `index` (named `name`: Class.method unless .options(name=) named it) of
        method `method_name`, again on an exception (one of `retry_on`, else of the method's
        own list, else any) up to `retries` more times (-1: until it returns; None: never);
        False when another thread will finish it."""
        if self.init_error is not None and method_name != "__ray_terminate__":
            worker_state.store_exception(index, num_returns, ActorDiedError(self.init_error))
            return True
        method = self._method(method_name)
        quick = getattr(method, INLINE, False)
        if retries:
            method = self._retrying(method, method_name, retries, retry_on)
        if quick:  # ember's own quick methods: no hand-over
            self._run(worker_state, index, name, num_returns, args, inline, method, task_id)
            return True
        group = self._group(index, method_name)
        # In an async actor every method runs on its event loop, sync ones too (as in Ray):
        # they may touch loop objects (asyncio.Event.set() wakes no waiter from another thread).
        if self.loop is not None:
            if group is None:
                self.slots.acquire()  # at most max_concurrency calls in flight
            self.loops[group].submit(self._run_async, (
                worker_state, index, name, num_returns, args, inline, method, task_id, group))
            return False
        if self.pool is not None:
            self.group_pools.get(group, self.pool).submit(
                self._run_and_finish, worker_state, index, name, num_returns, args, inline,
                method, task_id)
            return False
        self._run(worker_state, index, name, num_returns, args, inline, method, task_id)
        return True

    def _group(self, index: int, method_name: str) -> str | None:
        """The call's concurrency group: the one it was called with, else its method's; None
        for the default group."""
        if not self.group_names:
            return None
        chosen = self.node.worker.concurrency_group(index)
        if chosen:
            return self.group_names[chosen - 1]
        return self.method_groups.get(method_name)

    def own_handle(self) -> ActorHandle:
        """A new, weak handle to this actor (get_runtime_context().current_actor), as in Ray:
        a handle that kept the actor alive would keep it alive forever once stored in itself
        or passed to another actor."""
        cls, class_id, ready_id = self.identity
        return ActorHandle(self.node.actor_id, cls.__name__, _methods_of(cls),
                           self.node.store.ref_from_binary(class_id), ready_id,
                           self.group_names)

    def _retrying(self, method, method_name: str, retries: int, retry_on: tuple | None):
        """`method`, run again when it raises one of the exceptions `retry_on` (the call's)
        or else its @method's retry_exceptions names (every Exception for True), up to
        `retries` more times (-1: no limit)."""
        if retry_on is None:
            retry_on = getattr(getattr(self.identity[0], method_name, None),
                               "__ember_method_options__", {}).get("retry_exceptions")
            retry_on = tuple(retry_on) if isinstance(retry_on, list) else Exception

        def again(e: BaseException, tries: int) -> bool:
            return isinstance(e, retry_on) and (retries < 0 or tries < retries)

        delay = self.node.task_retry_delay_s  # _system_config's task_retry_delay_ms

        if inspect.iscoroutinefunction(method):
            async def retrying_async(*args, **kwargs):
                tries = 0
                while True:
                    try:
                        return await method(*args, **kwargs)
                    except Exception as e:  # the last one goes to the caller
                        if not again(e, tries):
                            raise
                        tries += 1
                    if delay:
                        await asyncio.sleep(delay)
            return retrying_async

        def retrying(*args, **kwargs):
            tries = 0
            while True:
                try:
                    return method(*args, **kwargs)
                except Exception as e:  # the last one goes to the caller
                    if not again(e, tries):
                        raise
                    tries += 1
                if delay:
                    time.sleep(delay)
        return retrying

    def _method(self, name: str):
        """The callable a call of `name` runs: the instance's method, or a built-in one
        (ember.actor.BUILTIN_METHODS)."""
        if name == "__ray_ready__":
            return _ready
        if name == "__ray_call__":
            return functools.partial(_call_with_instance, self.instance)
        if name == "__ray_terminate__":
            return _terminate
        return getattr(self.instance, name)

    def _run_and_finish(self, *a) -> None:
        try:
            self._run(*a)
        finally:
            self.node.worker.finish(a[1])

    def _run(self, ws, index, name, num_returns, args, inline, method, task_id) -> None:
        _node.current_call.set((name, task_id, index, method))  # this thread's call
        try:
            a, kw = ws.resolved_arguments(args, inline)
            result, raised = method(*a, **kw), None
        except BaseException as e:  # noqa: BLE001 (sorted out by _store)
            result, raised = None, e
        self._store(ws, index, name, num_returns, result, raised)

    async def _run_async(self, ws, index, name, num_returns, args, inline, method,
                         task_id, group) -> None:
        _node.current_call.set((name, task_id, index, method))  # this asyncio task's call
        try:
            if group is None:
                await self._call_async(ws, index, name, num_returns, args, inline, method)
            else:
                slots = self.group_slots.get(group)
                if slots is None:  # first call: made here, on the group's own loop
                    slots = self.group_slots[group] = asyncio.Semaphore(self.group_sizes[group])
                async with slots:  # the group's max_concurrency
                    await self._call_async(ws, index, name, num_returns, args, inline, method)
        finally:
            if group is None:
                self.slots.release()
            self.node.worker.finish(index)

    async def _call_async(self, ws, index, name, num_returns, args, inline, method) -> None:
        try:
            a, kw = ws.resolved_arguments(args, inline)
            result, raised = method(*a, **kw), None
            if inspect.isawaitable(result):
                result = await result
            elif type(result) is types.AsyncGeneratorType:
                await ws.store_async_generator(index, name=name, num_returns=num_returns,
                                               generator=result)
                return
        except BaseException as e:  # noqa: BLE001 (sorted out by _store)
            result, raised = None, e
        self._store(ws, index, name, num_returns, result, raised)

    def _store(self, ws, index, name, num_returns, result, raised) -> None:
        """Stores a call's result or what it raised; exit_actor() ends the process here."""
        if raised is None:
            ws.store_result(index, num_returns, name, result)
        elif isinstance(raised, _ActorExit):
            self.exit_now(ws, index, num_returns)
        elif isinstance(raised, Exception):
            ws.store_error(index, num_returns, name, raised)
        else:  # KeyboardInterrupt, SystemExit: not the call's to report
            raise raised

    def exit_now(self, ws, index, num_returns) -> None:
        """Ends the actor on purpose, from call `index` (exit_actor() in a method or in
        __init__, __ray_terminate__): the call's returns say so, the process exits."""
        ws.store_exception(index, num_returns, ActorDiedError(
            "The actor exited intentionally with exit_actor()"))
        worker = self.node.worker
        worker.mark_exit_intended()
        worker.finish(index)
        # An intended exit (exit_actor(), __ray_terminate__, the last handle gone) runs the
        # actor's __ray_shutdown__ and then its atexit handlers, as in Ray (a kill runs
        # neither); then os._exit, which does not wait for the threads of calls still running.
        self._shutdown_method()
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    def _shutdown_method(self) -> None:
        """Runs the instance's __ray_shutdown__() if its class has one; what it raises is
        printed (the driver shows it) and the exit goes on."""
        shutdown = getattr(self.instance, "__ray_shutdown__", None)
        if shutdown is None:
            return
        try:
            result = shutdown()
            if inspect.isawaitable(result):
                close = getattr(result, "close", None)
                if close is not None:
                    close()
                raise TypeError("__ray_shutdown__ must be a plain (not async) method; its "
                                "coroutine was not run")
        except Exception:  # noqa: BLE001 (the actor ends all the same, as in Ray)
            print(f"{type(self.instance).__name__}.__ray_shutdown__ raised; the actor exits "
                  f"all the same:\n{traceback.format_exc()}", file=sys.stderr, end="")
