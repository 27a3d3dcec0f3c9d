"""Unhandled errors: a task's failure that nobody read before its last ObjectRef went is
reported in the driver, as Ray reports it ("Unhandled error (suppress with ...)").

The store keeps such a failure instead of freeing it (cpp/store.h, "Unhandled failures"). A
thread of the driver takes each one, raises it as get() would, and hands the exception to
``ember._private.worker._unhandled_error_handler`` (looked up at each report: programs
replace it, as they do Ray's). With ``EMBER_IGNORE_UNHANDLED_ERRORS`` or Ray's
``RAY_IGNORE_UNHANDLED_ERRORS`` in the environment when a failure is reported, it is not.
A failure counts as read once any process got it or saw it ready: a get() of it (or of a list
holding it), a wait() that returned it, a task that took it as an argument (that task's own
failure is what is reported then). As in Ray, cancelled tasks and the calls of killed actors
are not reported: the program asked for those failures.
"""

from __future__ import annotations

import logging
import os
import threading

from ember import _core, serialization
from ember._private import worker as _private_worker
from ember.exceptions import ActorError, TaskCancelledError, TaskError

IGNORE_ENV = ("EMBER_IGNORE_UNHANDLED_ERRORS", "RAY_IGNORE_UNHANDLED_ERRORS")

logger = logging.getLogger("ember")


class Reporter:
    """The driver's thread that reports unhandled failures until the store closes."""

    def __init__(self, store: _core.Store):
        self._store = store
        self._thread = threading.Thread(target=self._run, name="ember-unhandled-errors",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """After the store's close(), which wakes the thread: waits for it to end."""
        self._thread.join(timeout=5)

    def _run(self) -> None:
        store = self._store
        while not store.closed:
            refs, dropped = store.take_unreported(1.0)
            while refs:
                ref = refs.pop(0)
                parts = store.get(ref)  # marks it read: dropping `ref` then frees it
                del ref
                if parts is not None:
                    _report(parts)
            if dropped and not _ignored():
                logger.error(f"{dropped} more unhandled errors were not reported (too many "
                             "at once)")


def _ignored() -> bool:
    return any(name in os.environ for name in IGNORE_ENV)


def _report(parts: tuple) -> None:
    try:
        serialization.deserialize(*parts)
    except Exception as e:  # noqa: BLE001 - the stored failure, whatever its class
        asked_for = (isinstance(e, (TaskCancelledError, ActorError)) and
                     not isinstance(e, TaskError))  # the core's own never get here (store.h)
        if asked_for or _ignored():
            return
        try:
            _private_worker._unhandled_error_handler(e)
        except Exception:  # a program's handler that fails must not end the reporting
            logger.exception("the unhandled error handler raised")
