"""ember's exceptions, also reachable under Ray's names (``ray.exceptions.*``).

Every error ember raises derives from :class:`EmberError`, and also from the builtin that
matches its meaning, so ``except MemoryError`` catches a full store and
``except ray.exceptions.RayError`` works after ``import ember as ray``.
"""

from __future__ import annotations

import pickle

from ember import _core

__all__ = [
    "ActorAlreadyExistsError",
    "ActorDiedError",
    "ActorError",
    "ActorPlacementGroupRemoved",
    "ActorUnavailableError",
    "ActorUnschedulableError",
    "AsyncioActorExit",
    "AuthenticationError",
    "CrossLanguageError",
    "EmberError",
    "GetTimeoutError",
    "LocalRayletDiedError",
    "NodeDiedError",
    "NotInitializedError",
    "ObjectFetchTimedOutError",
    "ObjectFreedError",
    "ObjectLostError",
    "ObjectReconstructionFailedError",
    "ObjectRefStreamEndOfStreamError",
    "ObjectStoreFullError",
    "OufOfBandObjectRefSerializationException",
    "OutOfDiskError",
    "OutOfMemoryError",
    "OwnerDiedError",
    "PendingCallsLimitExceeded",
    "PlasmaObjectNotAvailable",
    "RayActorError",
    "RayError",
    "RaySystemError",
    "RayTaskError",
    "ReferenceCountingAssertionError",
    "RpcError",
    "RuntimeEnvSetupError",
    "TaskCancelledError",
    "TaskError",
    "TaskPlacementGroupRemoved",
    "TaskUnschedulableError",
    "UnserializableException",
    "UserCodeException",
    "WorkerCrashedError",
]


class EmberError(Exception):
    """Base class of every error raised by ember."""


class NotInitializedError(EmberError, RuntimeError):
    """An API call needs a running node: ``ember.init()`` was not called, or the node was shut
    down."""


class ObjectStoreFullError(EmberError, MemoryError):
    """An object does not fit in the node's object store; the message gives the sizes."""


class ObjectLostError(EmberError):
    """An ObjectRef's object no longer exists in the store, or its spill file is gone or
    corrupt; the message names the object."""


class OutOfDiskError(EmberError, OSError):
    """The object store is full and spilling to disk failed because the disk is full too
    (Ray's name). Nothing already stored is lost; the message names the spill directory."""


class _BadArgument(EmberError, TypeError, ValueError):
    """A wrong type of argument. A ``TypeError``, and a ``ValueError`` too because Ray raises
    that for the same mistakes."""


class GetTimeoutError(EmberError, TimeoutError):
    """``get`` (or ``wait``) ran out of time before the object was ready."""


class TaskCancelledError(EmberError):
    """The task was cancelled with ``ember.cancel`` before it finished."""


class WorkerCrashedError(EmberError):
    """The worker running the task died (exit, signal, segfault) and retries ran out. The
    message names the exit code or signal and shows the last lines the worker wrote."""


class OutOfMemoryError(EmberError, MemoryError):
    """The memory monitor killed the task's worker because the machine was nearly out of
    memory."""


class ActorError(EmberError):
    """An actor could not run a method (Ray's ``RayActorError``)."""


class ActorDiedError(ActorError):
    """The actor's process died, was killed, or its ``__init__`` raised."""


class ActorUnavailableError(ActorError):
    """The actor cannot take calls right now (it is restarting); it may again later."""


class ActorAlreadyExistsError(EmberError, ValueError):
    """An actor of that name already exists in the namespace (``get_if_exists=True`` reuses
    it)."""


class ObjectFreedError(ObjectLostError):
    """The object was freed explicitly and cannot be read any more."""


class OwnerDiedError(ObjectLostError):
    """The process that owned the object died."""


class ObjectReconstructionFailedError(ObjectLostError):
    """The object was lost and could not be rebuilt by re-running its task."""


class ObjectFetchTimedOutError(ObjectLostError):
    """Fetching the object from another node timed out (clusters only)."""


class ReferenceCountingAssertionError(ObjectLostError, AssertionError):
    """The object was freed although a reference to it still existed (a bug)."""


class RaySystemError(EmberError):
    """A failure of the runtime itself, not of user code."""


class UnserializableException(EmberError):
    """A task raised an exception that could not be pickled back to the caller; the message
    keeps its original text and traceback."""


class AsyncioActorExit(EmberError):
    """Raised inside an async actor's method by ``exit_actor()`` to end the actor."""


class PendingCallsLimitExceeded(EmberError):
    """An actor already has ``max_pending_calls`` calls waiting."""


class TaskUnschedulableError(EmberError):
    """The task can never be scheduled (e.g. its placement group was removed)."""


class ActorUnschedulableError(EmberError):
    """The actor can never be scheduled (e.g. its placement group was removed)."""


class TaskPlacementGroupRemoved(EmberError):
    """The placement group the task was scheduled into was removed."""


class ActorPlacementGroupRemoved(EmberError):
    """The placement group the actor was scheduled into was removed."""


class RuntimeEnvSetupError(EmberError):
    """A task's or actor's ``runtime_env`` could not be set up; the message says which key
    and why."""


class UserCodeException(EmberError):
    """Raised in place of an exception from user code that ember must not wrap."""


class ObjectRefStreamEndOfStreamError(EmberError):
    """A streaming generator has no more items."""


class OufOfBandObjectRefSerializationException(EmberError):
    """An ObjectRef was pickled out of band, where its reference count cannot follow it."""


# Failures of a cluster's machinery: a node of ember is one process tree on one machine, so
# these never occur, but programs written for Ray name them in ``except`` clauses.
class NodeDiedError(EmberError):
    """A node of the cluster died (clusters only)."""


class LocalRayletDiedError(EmberError):
    """The node's raylet died (Ray clusters only)."""


class RpcError(EmberError):
    """A remote procedure call between cluster processes failed (clusters only)."""


class AuthenticationError(EmberError):
    """A cluster connection failed authentication (clusters only)."""


class CrossLanguageError(EmberError):
    """A call between Python and another language failed (Ray only)."""


class PlasmaObjectNotAvailable(EmberError):
    """An object is not in this node's object store yet (Ray internals)."""


class TaskError(EmberError):
    """An exception raised by a task, carried to the caller with the remote traceback.

    ``get`` raises it as an instance of both TaskError and the task's own exception class (see
    :meth:`as_instanceof_cause`), so ``except ValueError`` and ``except RayTaskError`` both
    catch a task's ValueError.
    """

    def __init__(self, function_name: str, traceback_str: str, cause: BaseException | None,
                 pid: int = 0):
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.pid = pid
        super().__init__(self._message())

    def _message(self) -> str:
        name = type(self.cause).__name__ if self.cause is not None else "Exception"
        return (f"{name} in task {self.function_name}() (pid={self.pid}):\n"
                f"{self.traceback_str.rstrip()}")

    def __reduce__(self):
        return TaskError, (self.function_name, self.traceback_str, self.cause, self.pid)

    def __str__(self) -> str:
        return self._message()

    def as_instanceof_cause(self) -> BaseException:
        """This error as an instance of a class deriving from both TaskError and the cause's
        class (cached per class); itself if that class cannot be derived from."""
        cause = self.cause
        while isinstance(cause, TaskError):  # raised by a nested get: the original's class
            cause = cause.cause
        cause_cls = type(cause) if cause is not None else None
        if cause_cls is None:
            return self
        cls = _dual_classes.get(cause_cls)
        if cls is None:
            try:
                cls = type(f"TaskError({cause_cls.__name__})", (TaskError, cause_cls), {
                    "__init__": _dual_init,
                    "__reduce__": TaskError.__reduce__,
                    "__str__": TaskError.__str__,
                    "__module__": "ember.exceptions",
                })
            except TypeError:  # e.g. a class with an incompatible C layout
                return self
            _dual_classes[cause_cls] = cls
        err = cls.__new__(cls)
        # The cause's own attributes first (e.code of the user's exception), as in Ray; then
        # ours, which a cause's attribute of the same name does not hide.
        err.__dict__.update(getattr(cause, "__dict__", {}))
        _dual_init(err, self.function_name, self.traceback_str, self.cause, self.pid)
        err.__cause__ = self.cause
        return err


def _dual_init(self, function_name, traceback_str, cause, pid=0):
    self.function_name = function_name
    self.traceback_str = traceback_str
    self.cause = cause
    self.pid = pid
    self.args = (self._message(),)


_dual_classes: dict[type, type] = {}

#: The classes a failure written by the C++ core (which cannot pickle) becomes, by kind.
_RAW_ERROR_KINDS = {
    int(_core.ErrorKind.WORKER_CRASHED): WorkerCrashedError,
    int(_core.ErrorKind.TASK_CANCELLED): TaskCancelledError,
    int(_core.ErrorKind.OBJECT_LOST): ObjectLostError,
    int(_core.ErrorKind.OUT_OF_MEMORY): OutOfMemoryError,
    int(_core.ErrorKind.ACTOR_DIED): ActorDiedError,
    int(_core.ErrorKind.ACTOR_UNAVAILABLE): ActorUnavailableError,
}


def raise_stored_error(stream, buffers, flags: int, error_kind: int):
    """Raises the failure stored in an object (flag kFlagError of object_format.h)."""
    if flags & _core.FLAG_RAW_MESSAGE:  # a message from the core, not a pickled exception
        raise _RAW_ERROR_KINDS.get(error_kind, EmberError)(bytes(stream).decode("utf-8", "replace"))
    err = pickle.loads(stream, buffers=buffers or ())
    if isinstance(err, TaskError):
        raise err.as_instanceof_cause()
    raise err


# Ray's names for the same classes.
RayError = EmberError
RayTaskError = TaskError
RayActorError = ActorError

_core.set_error_classes(
    {
        "EmberError": EmberError,
        "NotInitializedError": NotInitializedError,
        "ObjectStoreFullError": ObjectStoreFullError,
        "ObjectLostError": ObjectLostError,
        "OutOfDiskError": OutOfDiskError,
        "ValueError": ValueError,
        "OSError": OSError,
    }
)
