"""_task_errors: how a failure in a worker becomes the TaskError its caller gets.

- The traceback shows user code only: frames of ember's own files are left out, so a task
  that fails in ``g`` called from ``f`` shows ``f`` then ``g``, as in Ray.
- The cause is the user's exception itself: one re-raised from a nested ``get`` (a TaskError
  already) keeps its original class, so every caller up the chain can ``except ValueError``.
- A task whose argument's task failed says so ("At least one of the input arguments ...")
  and shows the argument's error below; its cause is that error's cause.
- An exception that cannot be pickled back becomes an UnserializableException with the
  original's text and traceback, so nothing of it is lost on the way.
- An actor's errors name the actor: its id and ``repr`` follow the title.
"""

from __future__ import annotations

import os
import traceback

from ember import _names
from ember.exceptions import TaskError, UnserializableException, root_cause
from ember.serialization import serialize

_EMBER_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep  # the package's files

_HEADER = "Traceback (most recent call last):\n"


class ArgumentFailed(Exception):
    """Raised while a task's arguments are resolved, around the TaskError of an argument
    whose task failed."""

    def __init__(self, error: TaskError):
        super().__init__(error)
        self.error = error


def user_traceback(exc: BaseException) -> str:
    """Python's format of `exc` (and the exceptions chained to it) without ember's frames,
    starting with a "Traceback" line, which TaskError shows as its title."""
    te = traceback.TracebackException.from_exception(exc)
    _drop_ember_frames(te, set())
    text = "".join(te.format())
    return text if text.startswith(_HEADER) else _HEADER + text


def _drop_ember_frames(te: traceback.TracebackException, seen: set[int]) -> None:
    if id(te) in seen:
        return
    seen.add(id(te))
    te.stack = traceback.StackSummary.from_list(
        [f for f in te.stack if not os.path.abspath(f.filename).startswith(_EMBER_DIR)])
    for chained in (te.__cause__, te.__context__, *(getattr(te, "exceptions", None) or ())):
        if chained is not None:
            _drop_ember_frames(chained, seen)


def task_error(name: str, exc: BaseException, what: str = "",
               actor: tuple[str, str] | None = None) -> TaskError:
    """The TaskError of task `name` (an actor's method when `actor` is (id hex, repr)),
    which raised `exc` (or `what` it was doing failed: "storing the result of")."""
    if isinstance(exc, ArgumentFailed):
        failed = exc.error
        tb = (f"{_HEADER}  At least one of the input arguments for this task could not be "
              f"computed:\n{_names.exceptions_module()}.{_names.task_error_class()}: {failed}\n")
        cause = failed.cause
    elif what:  # ember's own step failed on the user's value: no frame is the user's
        tb = (f"{_HEADER}  While {what} this task:\n"
              + "".join(traceback.format_exception_only(type(exc), exc)))
        cause = exc
    else:
        tb = user_traceback(exc)
        cause = exc
    cause = root_cause(cause)  # re-raised from a nested get: the user's exception
    actor_id, actor_repr = actor if actor is not None else (None, None)
    return TaskError(name, tb, cause, pid=os.getpid(), actor_repr=actor_repr,
                     actor_id=actor_id)


def error_parts(name: str, exc: BaseException, what: str = "",
                actor: tuple[str, str] | None = None) -> tuple:
    """serialize()'s parts of the TaskError that `exc`, raised by task `name`, becomes."""
    err = task_error(name, exc, what, actor)
    try:
        return serialize(err)
    except TypeError as e:  # the cause cannot be pickled: its text, in an error that can
        cause = err.cause
        kind = f"{type(cause).__module__}.{type(cause).__qualname__}"
        err.cause = UnserializableException(
            f"Exception {kind} isn't serializable: {e.__cause__ or e}.\n"
            f"Original exception details:\n{err}")
        return serialize(err)


def actor_labels(actor_id: int | None, instance) -> tuple[str, str] | None:
    """(id hex, repr) for an actor's errors; None outside an actor."""
    if actor_id is None:
        return None
    from ember._ids import ActorID  # noqa: PLC0415

    try:
        shown = repr(instance)
    except Exception as e:  # noqa: BLE001 (a broken __repr__ must not hide the error)
        shown = f"<{type(instance).__qualname__}: __repr__ raised {type(e).__name__}>"
    return ActorID.from_int(actor_id).hex(), shown


def half_made_instance(exc: BaseException, cls: type):
    """The instance an actor's raising ``__init__`` was making (its frame's ``self``), for the
    repr of the creation's error; None if no frame of the traceback has one."""
    tb = exc.__traceback__
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("self")
        if isinstance(candidate, cls):
            return candidate
        tb = tb.tb_next
    return None
