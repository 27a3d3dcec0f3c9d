"""ActorPool: spread work over a fixed set of actors, with Ray's methods and semantics."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ember import api


class ActorPool:
    """Runs ``fn(actor, value)`` on whichever actor is free, keeping results in order for
    ``get_next`` (and in completion order for ``get_next_unordered``)."""

    def __init__(self, actors: list):
        self._idle_actors = list(actors)
        self._future_to_actor: dict = {}  # ref -> (submission index, actor)
        self._index_to_future: dict = {}  # submission index -> ref
        self._next_task_index = 0
        self._next_return_index = 0
        self._pending_submits: list = []  # (fn, value) waiting for a free actor

    def map(self, fn: Callable, values: Iterable) -> Iterable[Any]:
        """Results of fn over values, in order. Every value is submitted here, at the call
        (as in Ray), not as the results are read."""
        self._submit_all(fn, values)
        return self._results(self.get_next)

    def map_unordered(self, fn: Callable, values: Iterable) -> Iterable[Any]:
        """Results of fn over values, as they complete (submitted at the call, as map's)."""
        self._submit_all(fn, values)
        return self._results(self.get_next_unordered)

    def _submit_all(self, fn: Callable, values: Iterable) -> None:
        while self.has_next():  # drop what an earlier map left unread, as Ray does
            self.get_next_unordered()
        for v in values:
            self.submit(fn, v)

    def _results(self, take: Callable) -> Iterable[Any]:
        while self.has_next():
            yield take()

    def submit(self, fn: Callable, value: Any) -> None:
        """Schedules fn(actor, value) on a free actor, or when one frees up."""
        if self._idle_actors:
            actor = self._idle_actors.pop()
            future = fn(actor, value)
            if isinstance(future, list):  # a method with num_returns > 1: its refs, as one
                future = tuple(future)
            self._future_to_actor[future] = (self._next_task_index, actor)
            self._index_to_future[self._next_task_index] = future
            self._next_task_index += 1
        else:
            self._pending_submits.append((fn, value))

    def has_next(self) -> bool:
        """Whether any submitted work has results left to read."""
        return bool(self._future_to_actor) or bool(self._pending_submits)

    def get_next(self, timeout: float | None = None, ignore_if_timedout: bool = False) -> Any:
        """The next result in submission order."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        if self._next_return_index >= self._next_task_index:
            raise ValueError("It is not allowed to call get_next() after get_next_unordered().")
        future = self._index_to_future[self._next_return_index]
        refs = _refs(future)
        if timeout is not None:
            _, not_ready = api.wait(refs, num_returns=len(refs), timeout=timeout)
            if not_ready:
                if ignore_if_timedout:
                    return None
                raise TimeoutError("Timed out waiting for result")
        del self._index_to_future[self._next_return_index]
        self._next_return_index += 1
        _, actor = self._future_to_actor.pop(future)
        self._return_actor(actor)
        return api.get(refs) if isinstance(future, tuple) else api.get(future)

    def get_next_unordered(self, timeout: float | None = None,
                           ignore_if_timedout: bool = False) -> Any:
        """Any next result, whichever finishes first."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        # A call with several returns counts as done when its first one is.
        by_first = {_refs(future)[0]: future for future in self._future_to_actor}
        ready, _ = api.wait(list(by_first), num_returns=1, timeout=timeout)
        if not ready:
            if ignore_if_timedout:
                return None
            raise TimeoutError("Timed out waiting for result")
        future = by_first[ready[0]]
        index, actor = self._future_to_actor.pop(future)
        self._index_to_future.pop(index, None)
        self._next_return_index = max(self._next_return_index, index + 1)
        self._return_actor(actor)
        return api.get(list(future)) if isinstance(future, tuple) else api.get(future)

    def _return_actor(self, actor) -> None:
        self._idle_actors.append(actor)
        if self._pending_submits:
            self.submit(*self._pending_submits.pop(0))

    def has_free(self) -> bool:
        """Whether an actor is idle and nothing waits for one."""
        return bool(self._idle_actors) and not self._pending_submits

    def pop_idle(self):
        """Removes and returns an idle actor, or None."""
        return self._idle_actors.pop() if self.has_free() else None

    def push(self, actor) -> None:
        """Adds an actor to the pool."""
        busy = [a for _, a in self._future_to_actor.values()]
        if actor in self._idle_actors or actor in busy:
            raise ValueError("Actor already belongs to current ActorPool")
        self._return_actor(actor)


def _refs(future) -> list:
    """The refs of one submission: its ref, or those of a call with several returns."""
    return list(future) if isinstance(future, tuple) else [future]
