"""The public API: init, shutdown, is_initialized, put, get."""

from __future__ import annotations

import atexit
import os
from typing import Any

from ember import _node
from ember.exceptions import _BadArgument
from ember.object_ref import ObjectRef
from ember.serialization import deserialize, serialize

__all__ = ["get", "init", "is_initialized", "put", "shutdown"]


def init(
    num_cpus: int | None = None,
    object_store_memory: int | None = None,
    *,
    ignore_reinit_error: bool = False,
    **_ray_options: Any,
) -> _node.NodeInfo:
    """Starts the node on this machine and returns a description of it.

    Args:
        num_cpus: CPUs the node may use (default: the machine's logical CPUs).
        object_store_memory: bytes of shared memory for objects (default: 30% of the
            available memory, as in Ray).
        ignore_reinit_error: return the running node instead of raising if already started.
    """
    if _node.is_running():
        if ignore_reinit_error:
            return _node.current().info
    if num_cpus is None:
        num_cpus = os.cpu_count() or 1
    if not isinstance(num_cpus, int) or isinstance(num_cpus, bool) or num_cpus < 0:
        raise ValueError(f"num_cpus must be a non-negative int, got {num_cpus!r}")
    if object_store_memory is None:
        object_store_memory = int(_node.memory_limit() * _node.DEFAULT_STORE_FRACTION)
    elif not isinstance(object_store_memory, int) or object_store_memory < (1 << 20):
        raise ValueError(
            f"object_store_memory must be an int of at least 1 MiB, got {object_store_memory!r}"
        )
    return _node.start(num_cpus, object_store_memory).info


def shutdown() -> None:
    """Stops the node. Safe to call when it is not running."""
    _node.stop()


def is_initialized() -> bool:
    """True between init() and shutdown()."""
    return _node.is_running()


def put(value: Any) -> ObjectRef:
    """Stores `value` in the node's object store and returns an ObjectRef to it.

    Large buffers (numpy arrays, bytes) are copied once into shared memory; ``get`` returns
    them as zero-copy read-only views.
    """
    store = _node.current().store
    if isinstance(value, ObjectRef):
        raise _BadArgument(
            "Calling 'put' on an ObjectRef is not allowed. If you really want to do this, you "
            "can wrap the ObjectRef in a list and call 'put' on it."
        )
    return store.put(*serialize(value))


def get(object_refs: ObjectRef | list[ObjectRef], *, timeout: float | None = None) -> Any:
    """Returns the object(s) behind one ObjectRef or a list of them.

    numpy arrays come back as read-only views on the shared segment (no copy); each view
    keeps its object alive.
    """
    store = _node.current().store
    if isinstance(object_refs, ObjectRef):
        return deserialize(*store.get(object_refs))
    if isinstance(object_refs, list):
        for i, ref in enumerate(object_refs):
            if not isinstance(ref, ObjectRef):
                raise _BadArgument(
                    f"ember.get() takes an ObjectRef or a list of ObjectRefs; item {i} of the "
                    f"list is a {type(ref).__name__}"
                )
        return [deserialize(*store.get(ref)) for ref in object_refs]
    raise _BadArgument(
        "ember.get() takes an ObjectRef or a list of ObjectRefs, not a "
        f"{type(object_refs).__name__}"
    )


atexit.register(shutdown)
