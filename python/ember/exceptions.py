"""ember's exceptions, also reachable under Ray's names (``ray.exceptions.*``).

Every error ember raises derives from :class:`EmberError`, and also from the builtin that
matches its meaning, so ``except MemoryError`` catches a full store and
``except ray.exceptions.RayError`` works after ``import ember as ray``.
"""

from __future__ import annotations

import logging
import os
import pickle

from ember import _core, _names

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
    """A connection to a Ray cluster (the Ray backend) failed its token authentication; a
    node of ember's own takes no token."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        return (f"{self.message}. The Ray cluster asks for its token: put it in "
                "~/.ray/auth_token (or the file RAY_AUTH_TOKEN_PATH names) or in "
                "RAY_AUTH_TOKEN; see https://docs.ray.io/en/latest/ray-security/token-auth.html")


class CrossLanguageError(EmberError):
    """A call between Python and another language failed (Ray only)."""


class PlasmaObjectNotAvailable(EmberError):
    """An object is not in this node's object store yet (Ray internals)."""


class TaskError(EmberError):
    """An exception raised by a task, carried to the caller with the remote traceback.

    ``get`` raises it as an instance of both TaskError and the task's own exception class (see
    :meth:`as_instanceof_cause`), so ``except ValueError`` and ``except RayTaskError`` both
    catch a task's ValueError, and the user exception's attributes (``e.code``) read through.
    Shown as Ray shows it: a title naming the task, its process and (for an actor) the actor,
    then the frames of user code only, then the exception::

        ember::f() (pid=4242, ip=127.0.0.1)
          File "job.py", line 9, in f
            return g(c)
          File "job.py", line 4, in g
            raise ValueError(a)
        ValueError: 7

    `traceback_str` is Python's format of the exception with ember's own frames left out; each
    of its ``Traceback (most recent call last):`` lines is shown as the title.
    """

    def __init__(self, function_name: str, traceback_str: str, cause: BaseException | None,
                 proctitle: str | None = None, pid: int | None = None, ip: str | None = None,
                 actor_repr: str | None = None, actor_id: str | None = None):
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.proctitle = proctitle  # None: "<runtime>::<function_name>" when shown
        self.pid = os.getpid() if pid is None else pid
        self.ip = ip or NODE_IP
        self.actor_repr = actor_repr
        self._actor_id = actor_id
        self.args = (function_name, traceback_str, cause, proctitle, pid, ip)

    def __reduce__(self):
        # The cause travels as a pickle of its own: if the caller cannot rebuild it (a class
        # whose __init__ takes other arguments than its args), the caller still gets the rest
        # of the error, as an UnserializableException (see _rebuild_task_error).
        from ember import _pickle  # noqa: PLC0415 (cloudpickle: first use only)

        cause = None if self.cause is None else _pickle.dumps(self.cause)
        return _rebuild_task_error, (self.function_name, self.traceback_str, cause,
                                     self.proctitle, self.pid, self.ip, self.actor_repr,
                                     self._actor_id, getattr(type(self), "_ember_dual", False))

    def title(self) -> str:
        """The first line: ``ember::f() (pid=..., ip=...)``, with the actor's id and repr for
        an actor's call."""
        proctitle = self.proctitle or f"{_names.runtime()}::{self.function_name}"
        line = f"{proctitle}() (pid={self.pid}, ip={self.ip}"
        if self.actor_repr is not None:
            return f"{line}, actor_id={self._actor_id}, repr={self.actor_repr})"
        return f"{line})"

    def __str__(self) -> str:
        lines = self.traceback_str.strip("\n").split("\n")
        return "\n".join(self.title() if line.startswith("Traceback ") else line
                         for line in lines)

    def as_instanceof_cause(self) -> BaseException:
        """This error as an instance of a class deriving from both TaskError and the cause's
        class (made once per class); itself if that class cannot be derived from, with a
        warning that says so."""
        cause = root_cause(self)
        if cause is None or issubclass(TaskError, type(cause)):
            return self
        try:
            return self.make_dual_exception_instance()
        except Exception as e:  # noqa: BLE001 (any failure: the plain TaskError, said why)
            name = _names.task_error_class()
            logging.getLogger(__name__).warning(
                "No class can derive from both %s and the task's exception class %s (%s: %s). "
                "This exception is raised as %s only. You can use `%s.cause` to access the "
                "user exception.", name, type(cause), type(e).__name__, e, name,
                "ray_task_error" if _names.as_ray() else "task_error")
            return self

    def make_dual_exception_instance(self) -> TaskError:
        """An instance of ``TaskError(<cause's class>)``, a subclass of both; raises TypeError
        (or what the cause's class raises) if that class cannot be derived from."""
        cause = root_cause(self)
        cls = _dual_class(type(cause))
        err = cls.__new__(cls)
        err.__dict__.update(self.__dict__)
        err.cause = cause
        err.args = (cause,)
        return err


def root_cause(err: BaseException | None) -> BaseException | None:
    """The user's exception under `err`: a TaskError re-raised from a nested get (or a failed
    argument) wraps the original, whose class every caller up the chain sees."""
    while isinstance(err, TaskError):
        err = err.cause
    return err


def _dual_class(cause_cls: type) -> type:
    key = (cause_cls, _names.as_ray())
    cls = _dual_classes.get(key)
    if cls is None:
        name = f"{_names.task_error_class()}({cause_cls.__name__})"
        cls = type(name, (TaskError, cause_cls), {
            "__init__": _dual_init,
            "__str__": TaskError.__str__,
            "__getattr__": _cause_attribute,
            # A property of ours: the cause's own `args` may be read-only.
            "args": property(_dual_args, _set_dual_args),
            "_ember_dual": True,
            "__module__": _names.exceptions_module(),
            "__qualname__": name,
        })
        _dual_classes[key] = cls
    return cls


def _dual_args(self) -> tuple:
    return self.__dict__.get("_task_error_args", ())


def _set_dual_args(self, value) -> None:
    self.__dict__["_task_error_args"] = tuple(value)
    BaseException.args.__set__(self, tuple(value))  # what repr() shows


def _dual_init(self, cause, *rest):
    """What ``type(dual)(cause)`` makes: a bare error around `cause` (pickling does not come
    here: see TaskError.__reduce__)."""
    TaskError.__init__(self, "", "", cause)
    self.args = (cause,)


def _cause_attribute(self, name: str):
    """A dual error's attributes that are not TaskError's are its cause's (``e.code``)."""
    cause = self.__dict__.get("cause")
    if cause is None or name.startswith("__"):
        raise AttributeError(name)
    return getattr(cause, name)


#: Where Ray explains how to make an exception class serializable (register_serializer).
_CUSTOM_SERIALIZERS_DOC = ("https://docs.ray.io/en/latest/ray-core/objects/serialization.html"
                           "#custom-serializers-for-exceptions")


def _rebuild_task_error(function_name, traceback_str, cause_pickle, proctitle, pid, ip,
                        actor_repr, actor_id, dual):
    """Unpickles a TaskError (and a dual one as dual); an UnserializableException if its
    cause cannot be rebuilt here."""
    cause = None
    if cause_pickle is not None:
        try:
            cause = pickle.loads(cause_pickle)
        except Exception as e:  # noqa: BLE001 (any failure of the user's class)
            shown = TaskError(function_name, traceback_str, None, proctitle, pid, ip,
                              actor_repr, actor_id)
            # Ray's text, which programs compare; why it failed is the exception's cause (a
            # traceback shows it), and util.register_serializer() is the remedy.
            unserializable = UnserializableException(
                f"Failed to deserialize exception. Refer to {_CUSTOM_SERIALIZERS_DOC} for more "
                f"information.\nOriginal exception:\n"
                f"{_names.exceptions_module()}.{_names.task_error_class()}: {shown}")
            unserializable.__cause__ = e
            return unserializable
    err = TaskError(function_name, traceback_str, cause, proctitle, pid, ip, actor_repr,
                    actor_id)
    return err.as_instanceof_cause() if dual else err


_dual_classes: dict[tuple[type, bool], type] = {}

#: The address ember names its node by (errors, nodes(), util.state): the node is this machine.
NODE_IP = "127.0.0.1"

#: The classes a failure written by the C++ core (which cannot pickle) becomes, by kind.
_RAW_ERROR_KINDS = {
    int(_core.ErrorKind.WORKER_CRASHED): WorkerCrashedError,
    int(_core.ErrorKind.TASK_CANCELLED): TaskCancelledError,
    int(_core.ErrorKind.OBJECT_LOST): ObjectLostError,
    int(_core.ErrorKind.OUT_OF_MEMORY): OutOfMemoryError,
    int(_core.ErrorKind.ACTOR_DIED): ActorDiedError,
    int(_core.ErrorKind.ACTOR_UNAVAILABLE): ActorUnavailableError,
    int(_core.ErrorKind.PLACEMENT_GROUP_REMOVED): TaskPlacementGroupRemoved,
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
