"""ObjectRef: a reference to an object in the node's store.

The class itself is C++ (``ember._core.ObjectRef``): it holds one reference count on its
object while it lives, so the object's memory is reused as soon as no ObjectRef and no view of
it remains. Pickling an ObjectRef (to nest it in another object) stores its id; unpickling
takes a new count in the unpickling process.
"""

from __future__ import annotations

import os
import threading

from ember import _core, _node, _objects, serialization
from ember._ids import JobID, TaskID

ObjectRef = _core.ObjectRef


def _rebuild(binary: bytes, task: bytes | None = None) -> ObjectRef:
    ref = _node.current().store.ref_from_binary(binary)
    if task is not None:
        ref._task = task
    return ref


def _reduce(ref: ObjectRef):
    serialization.note_nested(ref)
    binary, task = ref.binary(), ref._task
    # The task's id travels only when it is not the object's own (a task's second return...)
    return (_rebuild, (binary,)) if task == binary else (_rebuild, (binary, task))


def _task_id(ref: ObjectRef) -> TaskID:
    """The id of the task that makes the object, as that task's get_task_id() says it (for
    a put: an id of the object's own)."""
    return TaskID(bytes(TaskID.SIZE - 16) + ref._task)


def _job_id(ref: ObjectRef) -> JobID:
    """The job the object belongs to: its node's (one job per node, as _node.Node.job_id)."""
    return JobID.from_int(int.from_bytes(ref.binary()[:8], "big") & 0xFFFFFFFF)


ObjectRef.__reduce__ = _reduce
ObjectRef.__module__ = "ember"


def _future(ref: ObjectRef):
    """A concurrent.futures.Future of the object's value (``ref.future()``, as in Ray)."""
    from concurrent.futures import Future  # noqa: PLC0415

    future = Future()
    _waiters().put((ref, future))
    return future


def _on_completed(ref: ObjectRef, callback) -> None:
    """Calls ``callback(value)`` on a helper thread once the object is ready; with the
    exception as the value if its task failed (Ray's ``ObjectRef._on_completed``)."""
    def report(future) -> None:
        error = future.exception()
        callback(future.result() if error is None else error)

    _future(ref).add_done_callback(report)


def _await(ref: ObjectRef):
    """``await ref`` in async code (an async actor, or asyncio in the driver): the value,
    got on a helper thread so the event loop is never blocked."""
    import asyncio  # noqa: PLC0415

    return asyncio.wrap_future(_future(ref)).__await__()


#: Daemon threads that wait for futures' refs (a thread pool of the standard library would
#: be joined at exit, so a ref that never becomes ready would hang the interpreter's exit).
#: Each job takes an idle thread or starts one, up to _MAX_WAITERS; beyond, jobs queue.
_MAX_WAITERS = 64
_jobs = None
_threads = 0
_idle = 0
_waiters_lock = threading.Lock()


def _waiters():
    global _jobs, _threads, _idle
    import queue  # noqa: PLC0415

    with _waiters_lock:
        if _jobs is None:
            _jobs = queue.SimpleQueue()
        if _idle > 0:
            _idle -= 1  # that thread takes this job
        elif _threads < _MAX_WAITERS:
            _threads += 1
            threading.Thread(target=_wait_loop, name="ember-await", daemon=True).start()
        return _jobs


def _wait_loop() -> None:
    global _idle
    while True:
        ref, future = _jobs.get()
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(_objects.get(ref))
            except BaseException as e:  # noqa: BLE001 (the awaiting code gets it)
                future.set_exception(e)
        del ref, future
        with _waiters_lock:
            _idle += 1


def _as_future(ref: ObjectRef):
    """An asyncio.Future of the object's value, in the running event loop (as in Ray)."""
    import asyncio  # noqa: PLC0415

    return asyncio.wrap_future(_future(ref))


_construct = ObjectRef.__init__


def _init(ref: ObjectRef, binary: bytes) -> None:
    """``ObjectRef(binary)``, as in Ray: the ref of a 16-byte id, counted when the object is
    in this process's node (a ref that holds nothing otherwise)."""
    _construct(ref, binary, _node.current().store if _node.is_running() else None)


def _from_binary(binary: bytes) -> ObjectRef:
    return ObjectRef(binary)


#: Ray's nil id, all ones: no object has it.
_NIL = b"\xff" * 16


ObjectRef.__init__ = _init
ObjectRef.future = _future
ObjectRef.as_future = _as_future
ObjectRef.__await__ = _await
ObjectRef._on_completed = _on_completed
ObjectRef.from_binary = staticmethod(_from_binary)
ObjectRef.from_hex = staticmethod(lambda hex_id: _from_binary(bytes.fromhex(hex_id)))
ObjectRef.nil = staticmethod(lambda: ObjectRef.unattached(_NIL))
ObjectRef.from_random = staticmethod(lambda: ObjectRef.unattached(os.urandom(16)))
ObjectRef.is_nil = lambda ref: ref.binary() == _NIL
ObjectRef.task_id = _task_id
ObjectRef.job_id = _job_id
