"""Queue: a first-in first-out queue that tasks, actors and the driver share (Ray's
``ray.util.queue``).

    driver / task / actor ── Queue (a handle, picklable) ──calls──► _QueueActor (async actor)
                                                                      asyncio.Queue(maxsize)

- The items live in one async actor; blocking ``put``/``get`` wait inside the actor
  (``asyncio.wait_for``), so many callers can wait at once without holding threads.
- A ``Queue`` can be passed to tasks and actors: it travels as its actor's handle.
- ``Empty`` and ``Full`` derive from the standard library's ``queue.Empty``/``queue.Full``.
"""

from __future__ import annotations

import asyncio
import queue as _stdlib_queue
from collections.abc import Iterable
from typing import Any

from ember import api
from ember.actor import kill

__all__ = ["Empty", "Full", "Queue"]


class Empty(_stdlib_queue.Empty):
    """``get`` found the queue empty (non-blocking) or nothing came within the timeout."""


class Full(_stdlib_queue.Full):
    """``put`` found the queue full (non-blocking) or no room came within the timeout."""


class _QueueActor:
    """Holds the items; every method runs on the actor's event loop, so none races another."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self.items: asyncio.Queue = asyncio.Queue(maxsize)

    async def qsize(self) -> int:
        return self.items.qsize()

    async def empty(self) -> bool:
        return self.items.empty()

    async def full(self) -> bool:
        return self.items.full()

    async def put(self, item, timeout: float | None = None) -> None:
        try:
            await asyncio.wait_for(self.items.put(item), timeout)
        except asyncio.TimeoutError:
            raise Full(f"no room in the queue (maxsize {self.maxsize}) within {timeout} s") \
                from None

    async def get(self, timeout: float | None = None):
        try:
            return await asyncio.wait_for(self.items.get(), timeout)
        except asyncio.TimeoutError:
            raise Empty(f"nothing came into the queue within {timeout} s") from None

    async def put_nowait(self, item) -> None:
        try:
            self.items.put_nowait(item)
        except asyncio.QueueFull:
            raise Full(f"the queue is full (maxsize {self.maxsize})") from None

    async def put_nowait_batch(self, items: list) -> None:
        # All or nothing: a batch that does not fit leaves the queue as it was.
        if self.maxsize > 0 and len(items) + self.items.qsize() > self.maxsize:
            raise Full(f"cannot add {len(items)} items to a queue holding "
                       f"{self.items.qsize()} with maxsize {self.maxsize}")
        for item in items:
            self.items.put_nowait(item)

    async def get_nowait(self):
        try:
            return self.items.get_nowait()
        except asyncio.QueueEmpty:
            raise Empty("the queue is empty") from None

    async def get_nowait_batch(self, num_items: int) -> list:
        if num_items > self.items.qsize():
            raise Empty(f"cannot get {num_items} items from a queue holding "
                        f"{self.items.qsize()}")
        return [self.items.get_nowait() for _ in range(num_items)]


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
        return api.get(self._handle().get.remote(timeout))

    async def get_async(self, block: bool = True, timeout: float | None = None) -> Any:
        """``get`` for asyncio code: awaits instead of blocking the thread."""
        if not block:
            return await self._handle().get_nowait.remote()
        _check_timeout(timeout)
        return await self._handle().get.remote(timeout)

    def put_nowait(self, item: Any) -> None:
        api.get(self._handle().put_nowait.remote(item))

    def put_nowait_batch(self, items: Iterable) -> None:
        """Adds all of `items` at once, or raises ``Full`` and adds none."""
        if not isinstance(items, Iterable):
            raise TypeError("Argument 'items' must be an Iterable")
        api.get(self._handle().put_nowait_batch.remote(list(items)))

    def get_nowait(self) -> Any:
        return api.get(self._handle().get_nowait.remote())

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
