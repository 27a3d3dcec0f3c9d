"""Queue: a first-in first-out queue that tasks, actors and the driver share (Ray's
``ray.util.queue``).

    driver / task / actor ── Queue (a handle, picklable) ──calls──► _QueueActor (async actor)
                                                      items + waiters, under one lock

- The items live in one async actor. A ``put`` or ``get`` first tries at once (a quick call
  that runs on the actor's main thread as it arrives: a round trip of a one-thread actor);
  only when it must wait does it wait on the actor's event loop (``asyncio.wait_for``), so
  many callers can wait at once without holding threads.
- A ``Queue`` can be passed to tasks and actors: it travels as its actor's handle.
- ``Empty`` and ``Full`` derive from the standard library's ``queue.Empty``/``queue.Full``.
"""

from __future__ import annotations

import asyncio
import collections
import queue as _stdlib_queue
import threading
from collections.abc import Iterable
from typing import Any

from ember import api
from ember._actor_runtime import INLINE
from ember.actor import kill

__all__ = ["Empty", "Full", "Queue"]


class Empty(_stdlib_queue.Empty):
    """``get`` found the queue empty (non-blocking) or nothing came within the timeout."""


class Full(_stdlib_queue.Full):
    """``put`` found the queue full (non-blocking) or no room came within the timeout."""


def _inline(method):
    """Marks a quick, non-blocking, thread-safe method: it runs on the actor's main thread as
    soon as it is read, without the hand-over to the event loop (ember._actor_runtime)."""
    setattr(method, INLINE, True)
    return method


class _QueueActor:
    """Holds the items. The quick calls (try_put, try_get, sizes, batches) run on the worker's
    main thread, the waiting ones (put, get) on the event loop; the lock guards the items and
    the waiters between them. A waiter is a future of the loop; it is given its item (or its
    room) under the lock and woken on the loop; one that gives up leaves the waiters under the
    same lock, so it is either served or gone, never both (_wait)."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self.items: collections.deque = collections.deque()
        self.lock = threading.Lock()
        self.getters: collections.deque = collections.deque()  # futures waiting for an item
        self.putters: collections.deque = collections.deque()  # (future, item) waiting for room
        self.loop = asyncio.get_event_loop()  # the actor's loop (set before __init__ runs)

    def _full(self) -> bool:
        return 0 < self.maxsize <= len(self.items)

    def _settle(self) -> None:
        """Under the lock: items to waiting getters, room to waiting putters, oldest first; each
        woken on the loop (a served waiter is never one that gave up: _wait)."""
        while self.putters and not self._full():
            future, item = self.putters.popleft()
            self.items.append(item)
            self.loop.call_soon_threadsafe(future.set_result, None)
        while self.getters and self.items:
            future = self.getters.popleft()
            item = self.items.popleft()
            self.loop.call_soon_threadsafe(future.set_result, item)
            while self.putters and not self._full():  # that item made room
                future, waiting = self.putters.popleft()
                self.items.append(waiting)
                self.loop.call_soon_threadsafe(future.set_result, None)

    @_inline
    def qsize(self) -> int:
        with self.lock:
            return len(self.items)

    @_inline
    def empty(self) -> bool:
        with self.lock:
            return not self.items

    @_inline
    def full(self) -> bool:
        with self.lock:
            return self._full()

    @_inline
    def try_put(self, item) -> bool:
        """Adds `item` if there is room (False, and nothing added, if the queue is full)."""
        with self.lock:
            if self._full() or self.putters:  # putters waiting for room go first
                return False
            self.items.append(item)
            self._settle()
            return True

    @_inline
    def try_get(self) -> tuple[bool, Any]:
        """(True, the oldest item) or (False, None) if the queue is empty."""
        with self.lock:
            if not self.items or self.getters:  # getters waiting go first
                return False, None
            item = self.items.popleft()
            self._settle()
            return True, item

    async def put(self, item, timeout: float | None = None) -> None:
        with self.lock:
            if not self._full() and not self.putters:
                self.items.append(item)
                self._settle()
                return
            future = self.loop.create_future()
            self.putters.append((future, item))
        if not await self._wait(future, self.putters, (future, item), timeout):
            raise Full(f"no room in the queue (maxsize {self.maxsize}) within {timeout} s")

    async def get(self, timeout: float | None = None):
        with self.lock:
            if self.items and not self.getters:
                item = self.items.popleft()
                self._settle()
                return item
            future = self.loop.create_future()
            self.getters.append(future)
        if not await self._wait(future, self.getters, future, timeout):
            raise Empty(f"nothing came into the queue within {timeout} s")
        return future.result()

    async def _wait(self, future, waiters: collections.deque, entry, timeout) -> bool:
        """Waits for `future` (listed in `waiters` as `entry`); False if the time ran out
        first. Given up (timeout, or the call cancelled) while still listed, it leaves the
        list; once served (its item or its room already given under the lock), what it was
        given is kept: a timeout then waits the last moment for the wake-up, and a cancel
        puts a received item back first in line."""
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
            return True
        except (asyncio.TimeoutError, asyncio.CancelledError) as e:
            with self.lock:
                if entry in waiters:
                    waiters.remove(entry)
                    future.cancel()
                    if isinstance(e, asyncio.CancelledError):
                        raise
                    return False
            await future  # served just now: its wake-up is on the way
            if isinstance(e, asyncio.CancelledError):
                if waiters is self.getters:  # the item must not go with the cancelled call
                    with self.lock:
                        self.items.appendleft(future.result())
                        self._settle()
                raise
            return True

    @_inline
    def put_nowait(self, item) -> None:
        if not self.try_put(item):
            raise Full(f"the queue is full (maxsize {self.maxsize})")

    @_inline
    def put_nowait_batch(self, items: list) -> None:
        # All or nothing: a batch that does not fit leaves the queue as it was.
        with self.lock:
            if self.putters or (self.maxsize > 0 and len(items) + len(self.items) > self.maxsize):
                raise Full(f"cannot add {len(items)} items to a queue holding "
                           f"{len(self.items)} with maxsize {self.maxsize}")
            self.items.extend(items)
            self._settle()

    @_inline
    def get_nowait(self):
        ok, item = self.try_get()
        if not ok:
            raise Empty("the queue is empty")
        return item

    @_inline
    def get_nowait_batch(self, num_items: int) -> list:
        with self.lock:
            if self.getters or num_items > len(self.items):
                raise Empty(f"cannot get {num_items} items from a queue holding "
                            f"{len(self.items)}")
            out = [self.items.popleft() for _ in range(num_items)]
            self._settle()
            return out


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")


class Queue:
    """A FIFO queue shared by the driver, tasks and actors; ``maxsize <= 0``: unbounded.

    ``actor_options`` are the ``.options()`` of the actor holding the items (e.g.
    ``{"num_cpus": 0}`` or custom resources).
    """

    def __init__(self, maxsize: int = 0, actor_options: dict | None = None) -> None:
        self.maxsize = maxsize
        cls = api.remote(_QueueActor)
        if actor_options:
            cls = cls.options(**actor_options)
        self.actor = cls.remote(maxsize)

    def _handle(self):
        if self.actor is None:
            raise RuntimeError("this Queue was shut down (Queue.shutdown()); make a new one")
        return self.actor

    def __len__(self) -> int:
        return self.size()

    def size(self) -> int:
        """The number of items in the queue."""
        return api.get(self._handle().qsize.remote())

    qsize = size

    def empty(self) -> bool:
        return api.get(self._handle().empty.remote())

    def full(self) -> bool:
        return api.get(self._handle().full.remote())

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Adds `item`; if the queue is full, waits (up to `timeout` s) for room, or with
        ``block=False`` raises ``Full`` at once."""
        if not block:
            return self.put_nowait(item)
        _check_timeout(timeout)
        if api.get(self._handle().try_put.remote(item)):  # room now: no wait on the loop
            return None
        api.get(self._handle().put.remote(item, timeout))
        return None

    async def put_async(self, item: Any, block: bool = True,
                        timeout: float | None = None) -> None:
        """``put`` for asyncio code: awaits instead of blocking the thread."""
        if not block:
            await self._handle().put_nowait.remote(item)
            return
        _check_timeout(timeout)
        await self._handle().put.remote(item, timeout)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Removes and returns the oldest item; if the queue is empty, waits (up to `timeout`
        s) for one, or with ``block=False`` raises ``Empty`` at once."""
        if not block:
            return self.get_nowait()
        _check_timeout(timeout)
        ok, item = api.get(self._handle().try_get.remote())  # an item now: no wait on the loop
        if ok:
            return item
        return api.get(self._handle().get.remote(timeout))

    async def get_async(self, block: bool = True, timeout: float | None = None) -> Any:
        """``get`` for asyncio code: awaits instead of blocking the thread."""
        if not block:
            return await self._handle().get_nowait.remote()
        _check_timeout(timeout)
        return await self._handle().get.remote(timeout)

    def put_nowait(self, item: Any) -> None:
        if not api.get(self._handle().try_put.remote(item)):
            raise Full(f"the queue is full (maxsize {self.maxsize})")

    def put_nowait_batch(self, items: Iterable) -> None:
        """Adds all of `items` at once, or raises ``Full`` and adds none."""
        if not isinstance(items, Iterable):
            raise TypeError("Argument 'items' must be an Iterable")
        api.get(self._handle().put_nowait_batch.remote(list(items)))

    def get_nowait(self) -> Any:
        ok, item = api.get(self._handle().try_get.remote())
        if not ok:
            raise Empty("the queue is empty")
        return item

    def get_nowait_batch(self, num_items: int) -> list:
        """Removes and returns the `num_items` oldest items, or raises ``Empty`` (taking none)
        if there are fewer."""
        if not isinstance(num_items, int) or isinstance(num_items, bool):
            raise TypeError("Argument 'num_items' must be an int")
        if num_items < 0:
            raise ValueError("'num_items' must be nonnegative")
        return api.get(self._handle().get_nowait_batch.remote(num_items))

    def shutdown(self, force: bool = False, grace_period_s: int = 5) -> None:
        """Ends the queue's actor. Without `force`, calls already made are given up to
        `grace_period_s` seconds to finish first. The items are lost."""
        if self.actor is None:
            return
        actor, self.actor = self.actor, None
        if not force:
            # Calls from this process reach the actor in order: once this one is answered,
            # those made before it have started (and non-blocking ones have finished).
            api.wait([actor.qsize.remote()], timeout=grace_period_s)
        kill(actor, no_restart=True)
