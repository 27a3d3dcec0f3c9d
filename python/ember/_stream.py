"""Generator tasks: a streaming generator's items, from the worker that yields them to the
ObjectRefGenerator that hands them out (store.h, "Streams").

    worker (producer)                          caller (consumer)
    for value in fn(...):                      ObjectRefGenerator(done)
      stream_slot(k)   item k+1 promised        wait for item k or `done`
      put_stream_item(k)  item k sealed ───►    take item k: an ObjectRef
    `done` = the item count (or the failure)    `done` sealed and k == count: StopIteration

- Item k has an id made from the task's one return (`done`) and k: producer, consumer and a
  retry of the task name it without telling each other.
- The consumer owns the items: it takes one count per item it hands out, and gives back the
  rest when it is closed or dropped; the producer then finds its next item gone and stops the
  generator (abandoning a generator ends its task).
- A retry (a worker that died mid-stream) runs the generator again from the start and writes
  only the items still promised: what the consumer already has is not written twice.
- An exception in the generator is item k (get() raises it) and ends the stream, as in Ray.
- ``num_returns="dynamic"`` runs the generator to its end and returns one object, a
  DynamicObjectRefGenerator holding a ref per item.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ember import _core, _node, _objects
from ember.exceptions import GetTimeoutError
from ember.serialization import serialize

ObjectRef = _core.ObjectRef

# Store::StreamSlot: what the producer finds at item k.
_WRITE, _PRODUCED, _MISSING = 0, 1, 2


class ObjectRefGenerator:
    """What ``.remote()`` of a generator function or method returns: an iterator (and async
    iterator) over ObjectRefs to the values it yields, each available as soon as it is
    yielded. ``ember.wait([gen])`` says whether the next one is ready; ``ember.cancel(gen)``
    cancels the task; ``completed()`` is a ref ready when the task is done."""

    def __init__(self, done: ObjectRef):
        self._done = done  # the task's return: the item count, or its failure
        self._store = _node.current().store
        self._next = 0  # the index of the next item to hand out
        self._count: int | None = None  # how many items there are, once the task is done
        self._closed = False

    def __iter__(self) -> ObjectRefGenerator:
        return self

    def __next__(self) -> ObjectRef:
        return self._next_sync(None)

    def __aiter__(self) -> ObjectRefGenerator:
        return self

    async def __anext__(self) -> ObjectRef:
        # The wait runs on a thread, so the event loop goes on while the item is made; a ready
        # item is taken at once, without the hop.
        try:
            ref = self._next_sync(0)
        except GetTimeoutError:
            ref = None
        except StopIteration:
            raise StopAsyncIteration from None
        if ref is not None:
            return ref
        try:
            return await asyncio.get_running_loop().run_in_executor(None, self._next_sync, None)
        except StopIteration:
            raise StopAsyncIteration from None

    def _next_sync(self, timeout_s: float | None = None) -> ObjectRef:
        """The next item's ObjectRef, waiting up to `timeout_s` seconds for it (None: as long as
        it takes; GetTimeoutError after). StopIteration at the end of the stream."""
        store = self._store
        worker = _node.current().worker
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            if self._closed or (self._count is not None and self._next >= self._count):
                self.close()
                raise StopIteration
            item = store.stream_item(self._done, self._next, False)
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if self._count is None:
                ready = store.wait([item, self._done], 1, remaining, worker)
            else:  # the task is done and sealed item `_next` before it ended
                ready = store.wait([item], 1, remaining, worker)
            if ready[0]:
                ref = store.stream_item(self._done, self._next, True)
                self._next += 1
                return ref
            if not any(ready):
                raise GetTimeoutError(
                    f"item {self._next} of the generator was not ready after {timeout_s} s")
            try:
                self._count = _objects.get(self._done)
            except Exception:  # noqa: BLE001 (the task failed before item _next: that is the item)
                self._count = self._next
                self.close()
                return self._done

    def next_ready(self) -> bool:
        """True if ``next()`` would not wait: the next item is ready, or the stream ended."""
        if self._closed or (self._count is not None and self._next >= self._count):
            return True
        item = self._store.stream_item(self._done, self._next, False)
        return any(self._store.wait([item, self._done], 1, 0, None))

    def is_finished(self) -> bool:
        """True once every item was handed out (next() raises StopIteration)."""
        if self._closed:
            return True
        if self._count is None and self._store.contains(self._done):
            try:
                self._count = _objects.get(self._done)
            except Exception:  # noqa: BLE001 (a failed task still has its failure to hand out)
                return False
        return self._count is not None and self._next >= self._count

    def completed(self) -> ObjectRef:
        """An ObjectRef that is ready when the task has ended (get() raises its failure)."""
        return self._done

    def close(self) -> None:
        """Lets the stream go: items not handed out yet are freed and the task stops at its
        next yield."""
        if not self._closed:
            self._closed = True
            self._store.stream_close(self._done, self._next)

    def __del__(self):
        if not self.__dict__.get("_closed", True):
            self.close()

    def _waitable(self) -> tuple[ObjectRef, ...]:
        """What ember.wait() waits on for this generator: ready when one of them is."""
        if self._closed or (self._count is not None and self._next >= self._count):
            return (self._done,)
        return (self._store.stream_item(self._done, self._next, False), self._done)

    def __reduce__(self):
        raise TypeError("an ObjectRefGenerator cannot be pickled or passed to another task: "
                        "pass the ObjectRefs it yields instead")

    def __repr__(self) -> str:
        return f"ObjectRefGenerator({self._done.hex()}, next={self._next})"


class DynamicObjectRefGenerator:
    """The value of a ``num_returns="dynamic"`` task: the ObjectRefs of what it yielded."""

    def __init__(self, refs: list[ObjectRef]):
        self._refs = refs

    def __iter__(self):
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)


class StreamWriter:
    """The producer's side of one task's stream, in the worker."""

    def __init__(self, runtime, index: int, resumed: bool):
        self.runtime = runtime
        self.index = index
        self.k = 0  # the next item's index
        # False while a retry replays what an earlier attempt wrote: until it reaches the
        # first item still promised, a missing item is one the consumer already took.
        self.resumed = resumed

    def put(self, value: Any) -> bool:
        """Writes the next item; False once the consumer let the stream go (stop yielding)."""
        slot = self.runtime.stream_slot(self.index, self.k)
        if slot == _WRITE:
            self.resumed = True
            if not self.runtime.put_stream_item(self.index, self.k, *serialize(value), False):
                return False
        elif slot == _MISSING and self.resumed:
            return False
        self.k += 1
        return True

    def put_error(self, parts: tuple) -> None:
        """Writes a failure (serialize()'s parts) as the next item: the stream's last."""
        if self.runtime.stream_slot(self.index, self.k) == _WRITE:
            self.runtime.put_stream_item(self.index, self.k, *parts, True)
        self.k += 1


def write_stream(writer: StreamWriter, generator) -> BaseException | None:
    """Runs `generator` into the stream; returns what it raised (None at its end)."""
    try:
        for value in generator:
            if not writer.put(value):
                generator.close()
                return None
    except Exception as e:  # noqa: BLE001 (the caller stores it as the failing item)
        return e
    return None


async def write_async_stream(writer: StreamWriter, generator) -> BaseException | None:
    """write_stream for an async generator (a method of an async actor)."""
    try:
        async for value in generator:
            if not writer.put(value):
                await generator.aclose()
                return None
    except Exception as e:  # noqa: BLE001 (the caller stores it as the failing item)
        return e
    return None


def dynamic_refs(store, generator) -> DynamicObjectRefGenerator:
    """num_returns="dynamic": every value the generator yields, put in the store."""
    return DynamicObjectRefGenerator([store.put(*serialize(v)) for v in generator])
