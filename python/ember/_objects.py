"""Objects on this process's node: put, get and wait, with their checks of the arguments.

The public ``ember.put/get/wait`` call these through the backend (ember.api); code below the
public API that needs an object's value (a worker resolving its arguments, a future's helper
thread, the actor-name registry) calls them directly: it always runs on an ember node.
"""

from __future__ import annotations

import time
from typing import Any

from ember import _core, _node, _serializability
from ember.exceptions import GetTimeoutError, _BadArgument
from ember.serialization import deserialize, serialize

ObjectRef = _core.ObjectRef


def put(value: Any) -> ObjectRef:
    store = _node.current().store
    if isinstance(value, ObjectRef):
        raise _BadArgument(
            "Calling 'put' on an ObjectRef is not allowed. If you really want to do this, you "
            "can wrap the ObjectRef in a list and call 'put' on it."
        )
    try:
        parts = serialize(value)
    except TypeError as e:
        raise TypeError(_serializability.error(f"the put value {value!r}", value)) from e
    return store.put(*parts)


def get(object_refs: ObjectRef | list[ObjectRef], timeout: float | None = None) -> Any:
    node = _node.current()
    single = isinstance(object_refs, ObjectRef)
    refs = [object_refs] if single else object_refs
    if not isinstance(refs, list):
        raise _BadArgument(
            "ember.get() takes an ObjectRef or a list of ObjectRefs, not a "
            f"{type(object_refs).__name__}"
        )
    for i, ref in enumerate(refs):
        if not isinstance(ref, ObjectRef):
            raise _BadArgument(
                f"ember.get() takes an ObjectRef or a list of ObjectRefs; item {i} of the "
                f"list is a {type(ref).__name__}"
            )
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be None or >= 0, got {timeout}")
    parts = node.store.get_many(refs, timeout, node.worker)
    _raise_first_failure(parts)  # as Ray: a failure is raised without waiting for the rest
    missing = sum(p is None for p in parts)
    if missing:
        raise GetTimeoutError(
            f"Get timed out: {missing} of {len(refs)} object(s) not ready after {timeout} s")
    values = [deserialize(*p) for p in parts]
    return values[0] if single else values


def _raise_first_failure(parts: list) -> None:
    """Raises the failure stored in the first fetched object that is one (FLAG_ERROR)."""
    for p in parts:
        if p is not None and p[2] & _core.FLAG_ERROR:
            deserialize(*p)


def wait(object_refs: list[ObjectRef], num_returns: int = 1, timeout: float | None = None,
         fetch_local: bool = True) -> tuple[list[ObjectRef], list[ObjectRef]]:
    del fetch_local  # one node: every object is local
    node = _node.current()
    if isinstance(object_refs, ObjectRef) or not isinstance(object_refs, list):
        raise _BadArgument(
            f"wait() expected a list of ObjectRefs, got {type(object_refs).__name__}")
    groups = False  # ObjectRefGenerators: each ready when one of its _waitable() refs is
    for i, ref in enumerate(object_refs):
        if not isinstance(ref, ObjectRef):
            if hasattr(ref, "_waitable"):
                groups = True
                continue
            raise _BadArgument(f"wait() expected a list of ObjectRefs; item {i} is a "
                               f"{type(ref).__name__}")
    if not object_refs:
        return [], []  # as Ray: whatever num_returns asks for
    if len(set(object_refs)) != len(object_refs):
        raise ValueError("Wait requires a list of unique object refs.")
    if not isinstance(num_returns, int) or num_returns < 0:
        raise ValueError(f"num_returns must be a non-negative int, got {num_returns!r}")
    if num_returns > len(object_refs):
        raise ValueError("num_returns cannot be greater than the number of objects provided.")
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be None or >= 0, got {timeout}")
    if groups:
        ready = _wait_groups(node, object_refs, num_returns, timeout)
    else:
        ready = node.store.wait(object_refs, num_returns, timeout, node.worker)
    done, pending = [], []
    for ref, ok in zip(object_refs, ready):
        (done if ok and len(done) < num_returns else pending).append(ref)
    return done, pending


def _wait_groups(node, items: list, num_returns: int, timeout: float | None) -> list[bool]:
    """wait() of a list with ObjectRefGenerators: one bool per item, each True when any of
    its refs is ready (an ObjectRef's: itself)."""
    store, worker = node.store, node.worker
    flat, owner = [], []
    for i, item in enumerate(items):
        refs = (item,) if isinstance(item, ObjectRef) else item._waitable()
        flat.extend(refs)
        owner.extend([i] * len(refs))
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        ready_flat = store.wait(flat, 0, 0, worker)
        ready = [False] * len(items)
        for i, ok in zip(owner, ready_flat):
            ready[i] = ready[i] or ok
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if sum(ready) >= num_returns or remaining == 0:
            return ready
        # One more ref than is ready now: each round wakes on one new seal.
        store.wait(flat, sum(ready_flat) + 1, remaining, worker)
