"""Pool: a drop-in for ``multiprocessing.Pool`` whose processes are ember actors (Ray's
``ray.util.multiprocessing``).

    Pool.map(f, items) ─ chunks ─► round robin ─► _PoolWorker actors (initializer run once each)
            ◄────────── ObjectRefs per chunk ◄──── results in order (imap_unordered: as done)

- Work is cut into chunks (``chunksize``; by default about four per process, as the standard
  library does) and each chunk is one actor call, so per-item cost stays small.
- ``maxtasksperchild``: after that many chunks a worker's handle is dropped and a fresh actor
  takes its place; the old one finishes what it was given and then ends.
- Errors are the standard library's: ``ValueError("Pool not running")`` after ``close`` or
  ``terminate``, ``multiprocessing.TimeoutError`` from ``get``/``next`` with a timeout; as in
  Ray's Pool, ``imap``/``imap_unordered`` yield a failing item's exception as its result, and
  the constructor returns once every process has run its initializer.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from multiprocessing import JoinableQueue, TimeoutError
from typing import Any

from ember import api
from ember.actor import kill
from ember.exceptions import GetTimeoutError

__all__ = ["JoinableQueue", "Pool", "TimeoutError"]

_PRUNE_AT = 1024  # Pool._track: the list's length at which done calls are first dropped


class _PoolWorker:
    """One process of the pool: runs the initializer once, then chunks of calls."""

    def __init__(self, initializer: Callable | None, initargs: tuple):
        if initializer is not None:
            initializer(*initargs)

    def ready(self) -> bool:
        return True

    def run(self, func: Callable, chunk: Sequence, star: bool, errors_as_results: bool) -> list:
        if not errors_as_results:  # map/starmap: a third faster than a comprehension
            return list(itertools.starmap(func, chunk) if star else map(func, chunk))
        out = []
        for args in chunk:  # imap: an item's exception is its result, as in Ray's Pool
            try:
                out.append(func(*args) if star else func(args))
            except Exception as e:  # noqa: BLE001
                out.append(e)
        return out

    def apply(self, func: Callable, args: tuple, kwds: dict):
        return func(*args, **kwds)


def _flatten(chunks: list) -> list:
    return list(itertools.chain.from_iterable(chunks))  # 4x a comprehension's speed


class _Callbacks:
    """The pool's one thread that runs the callbacks of its results, each as soon as its calls
    are done, one at a time (as the standard library's result thread does). A thread per
    result cost ~100 us to start, and joblib makes a result per batch."""

    def __init__(self):
        self._cv = threading.Condition()
        self._pending: list = []  # (result, callback, error_callback), oldest first
        self._thread: threading.Thread | None = None

    def add(self, result: AsyncResult, callback, error_callback) -> None:
        with self._cv:
            self._pending.append((result, callback, error_callback))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ember-pool-callbacks",
                                                daemon=True)
                self._thread.start()
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._pending:
                    self._cv.wait()
                pending = list(self._pending)
            refs = [ref for result, _, _ in pending for ref in result._refs]
            try:
                if all(refs for refs in (entry[0]._refs for entry in pending)):
                    api.wait(refs, num_returns=1, timeout=0.5)  # (else one is ready already)
                done = [entry for entry in pending if _all_ready(entry[0]._refs)]
            except Exception:  # noqa: BLE001 (the node is gone: each result says so)
                done = pending
            for entry in done:
                with self._cv:
                    self._pending.remove(entry)
                entry[0]._report(entry[1], entry[2])


def _all_ready(refs: list) -> bool:
    return not refs or len(api.wait(refs, num_returns=len(refs), timeout=0)[0]) == len(refs)


class AsyncResult:
    """The result of ``apply_async``/``map_async``/``starmap_async`` (the stdlib's API)."""

    def __init__(self, refs: list, single: bool, callback=None, error_callback=None,
                 callbacks: _Callbacks | None = None):
        self._refs = refs
        self._single = single  # apply: one value, not a list of chunks
        self._done = threading.Event()
        self._value = None
        self._error: BaseException | None = None
        if callback is not None or error_callback is not None:
            callbacks.add(self, callback, error_callback)

    def _settle(self, timeout: float | None) -> None:
        if self._done.is_set():
            return
        try:
            values = self._values(timeout)
        except GetTimeoutError:
            raise TimeoutError("the result was not ready in time") from None
        except Exception as e:  # noqa: BLE001 (the task's error is the result's)
            self._error = e
        else:
            self._value = values[0] if self._single else _flatten(values)
        self._done.set()

    def _values(self, timeout: float | None) -> list:
        """The chunks' results, each read as soon as it is ready: the first chunks are
        unpickled while the last still run (as the standard library's result thread does)."""
        if len(self._refs) == 1 or timeout is not None:
            return api.get(self._refs, timeout=timeout)
        return [api.get(ref) for ref in self._refs]

    def _report(self, callback, error_callback) -> None:
        try:
            self._settle(None)
        except TimeoutError as e:  # the node shut down under the wait: that is the result
            self._error = e
            self._done.set()
        if self._error is None:
            if callback is not None:
                callback(self._value)
        elif error_callback is not None:
            error_callback(self._error)

    def get(self, timeout: float | None = None):
        """The value, waiting up to `timeout` s (then ``multiprocessing.TimeoutError``);
        raises the error of a call that failed."""
        self._settle(timeout)
        if self._error is not None:
            raise self._error
        return self._value

    def wait(self, timeout: float | None = None) -> None:
        api.wait(self._refs, num_returns=len(self._refs), timeout=timeout)

    def ready(self) -> bool:
        if self._done.is_set():
            return True
        ready, _ = api.wait(self._refs, num_returns=len(self._refs), timeout=0)
        return len(ready) == len(self._refs)

    def successful(self) -> bool:
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        self._settle(None)
        return self._error is None


class IMapIterator:
    """What ``imap`` returns: results in order, ``next(timeout)`` as the stdlib's."""

    def __init__(self, refs: list):
        self._refs = refs  # chunks not yet taken
        self._buffer: list = []  # values of the chunk being handed out

    def __iter__(self) -> Iterator:
        return self

    def _take_chunk(self, timeout: float | None) -> list:
        """Removes the next chunk to hand out from self._refs; returns its values."""
        try:
            values = api.get(self._refs[0], timeout=timeout)
        except GetTimeoutError:
            raise TimeoutError("the next result was not ready in time") from None
        del self._refs[0]
        return values

    def next(self, timeout: float | None = None):
        while not self._buffer:
            if not self._refs:
                raise StopIteration
            self._buffer = list(reversed(self._take_chunk(timeout)))
        return self._buffer.pop()

    __next__ = next


class IMapUnorderedIterator(IMapIterator):
    """What ``imap_unordered`` returns: results as their chunks finish."""

    def _take_chunk(self, timeout: float | None) -> list:
        ready, _ = api.wait(self._refs, num_returns=1, timeout=timeout)
        if not ready:
            raise TimeoutError("no result was ready in time")
        self._refs.remove(ready[0])
        return api.get(ready[0])


class Pool:
    """``multiprocessing.Pool`` on ember: ``processes`` actors (default: the node's CPUs),
    each running ``initializer(*initargs)`` once. ``ray_remote_args`` are the actors'
    ``.options()``. Starts a node if none runs, as Ray's Pool does."""

    def __init__(self, processes: int | None = None, initializer: Callable | None = None,
                 initargs: Iterable | None = None, maxtasksperchild: int | None = None,
                 context: Any = None, ray_address: str | None = None,
                 ray_remote_args: dict | None = None):
        if context is not None:
            raise ValueError("Pool(context=...) chooses how the standard library starts "
                             "processes; ember's pool processes are actors: leave it out")
        if ray_address not in (None, "auto", "local"):
            raise ValueError(f"Pool(ray_address={ray_address!r}): ember runs on this machine "
                             "only; use EMBER_BACKEND=ray with a Ray cluster instead")
        if not api.is_initialized():
            api.init()
        if processes is None:
            processes = max(1, int(api.cluster_resources().get("CPU", 1)))
        if not isinstance(processes, int) or processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if maxtasksperchild is not None and (
                not isinstance(maxtasksperchild, int) or maxtasksperchild < 1):
            raise ValueError("maxtasksperchild must be a positive int or None")
        self._processes = processes
        self._worker_args = (initializer, tuple(initargs or ()))
        self._max_tasks = maxtasksperchild
        cls = api.remote(_PoolWorker)
        self._cls = cls.options(**ray_remote_args) if ray_remote_args else cls
        self._actors = [self._new_actor() for _ in range(processes)]
        # Up (every initializer has run, or its error is raised here), as Ray's Pool is.
        api.get([a.ready.remote() for a in self._actors])
        self._tasks_run = [0] * processes
        self._next = itertools.cycle(range(processes))
        self._outstanding: list = []  # refs of the calls made and maybe not done, for join()
        self._prune_at = _PRUNE_AT
        self._running = True
        self._lock = threading.Lock()
        self._callbacks = _Callbacks()  # the thread that runs apply_async's callbacks

    def _new_actor(self):
        return self._cls.remote(*self._worker_args)

    def _actor_for_next_call(self):
        with self._lock:
            i = next(self._next)
            actor = self._actors[i]
            self._tasks_run[i] += 1
            if self._max_tasks is not None and self._tasks_run[i] >= self._max_tasks:
                # This actor's last call: later ones go to a fresh process; the old one ends
                # once its calls are done and its handle is gone.
                self._actors[i] = self._new_actor()
                self._tasks_run[i] = 0
            return actor

    def _check_running(self) -> None:
        if not self._running:
            raise ValueError("Pool not running")

    def _chunks(self, func: Callable, iterable: Iterable, chunksize: int | None,
                star: bool, errors_as_results: bool = False) -> list:
        self._check_running()
        # A list, tuple or range is cut as it is (no copy; a range's chunks are ranges, which
        # pickle in a few bytes); any other iterable is read into a list first.
        items = iterable if isinstance(iterable, (list, tuple, range)) else list(iterable)
        if chunksize is None:
            chunksize, extra = divmod(len(items), self._processes * 4)
            chunksize += 1 if extra else 0
        chunksize = max(1, chunksize)
        refs = [self._actor_for_next_call().run.remote(func, items[i:i + chunksize], star,
                                                        errors_as_results)
                for i in range(0, len(items), chunksize)]
        self._track(refs)
        return refs

    def _track(self, refs: list) -> None:
        """Remembers `refs` for join(), forgetting those already done once the list has
        doubled: a long-lived pool (joblib's) keeps neither the list nor its results."""
        with self._lock:
            self._outstanding.extend(refs)
            if len(self._outstanding) < self._prune_at:
                return
            outstanding = list(self._outstanding)
        _, left = api.wait(outstanding, num_returns=len(outstanding), timeout=0)
        with self._lock:
            self._outstanding = left + self._outstanding[len(outstanding):]
            self._prune_at = max(_PRUNE_AT, 2 * len(self._outstanding))

    # --- the standard library's API ---

    def apply(self, func: Callable, args: tuple = (), kwds: dict | None = None):
        return self.apply_async(func, args, kwds).get()

    def apply_async(self, func: Callable, args: tuple = (), kwds: dict | None = None,
                    callback=None, error_callback=None) -> AsyncResult:
        self._check_running()
        ref = self._actor_for_next_call().apply.remote(func, tuple(args), dict(kwds or {}))
        self._track([ref])
        return AsyncResult([ref], True, callback, error_callback, self._callbacks)

    def map(self, func: Callable, iterable: Iterable, chunksize: int | None = None) -> list:
        return self.map_async(func, iterable, chunksize).get()

    def map_async(self, func: Callable, iterable: Iterable, chunksize: int | None = None,
                  callback=None, error_callback=None) -> AsyncResult:
        return AsyncResult(self._chunks(func, iterable, chunksize, False), False, callback,
                           error_callback, self._callbacks)

    def starmap(self, func: Callable, iterable: Iterable, chunksize: int | None = None) -> list:
        return self.starmap_async(func, iterable, chunksize).get()

    def starmap_async(self, func: Callable, iterable: Iterable, chunksize: int | None = None,
                      callback=None, error_callback=None) -> AsyncResult:
        return AsyncResult(self._chunks(func, iterable, chunksize, True), False, callback,
                           error_callback, self._callbacks)

    def imap(self, func: Callable, iterable: Iterable, chunksize: int = 1) -> IMapIterator:
        """Results in order; an item whose call raised yields its exception (Ray's rule)."""
        return IMapIterator(self._chunks(func, iter(iterable), chunksize, False, True))

    def imap_unordered(self, func: Callable, iterable: Iterable,
                       chunksize: int = 1) -> IMapUnorderedIterator:
        """Results as they finish; an item whose call raised yields its exception."""
        return IMapUnorderedIterator(self._chunks(func, iter(iterable), chunksize, False, True))

    def close(self) -> None:
        """No more work may be submitted; what was submitted still runs."""
        self._running = False

    def terminate(self) -> None:
        """Stops the pool's processes at once; unfinished results fail."""
        self._running = False
        for actor in self._actors:
            kill(actor)
        self._actors = []
        self._outstanding = []

    def join(self) -> None:
        """Waits for everything submitted; only after ``close`` or ``terminate``."""
        if self._running:
            raise ValueError("Pool is still running")
        if self._outstanding:
            api.wait(self._outstanding, num_returns=len(self._outstanding))

    def __enter__(self) -> Pool:
        self._check_running()
        return self

    def __exit__(self, *exc) -> None:
        self.terminate()  # the standard library's rule for `with Pool() as p`
