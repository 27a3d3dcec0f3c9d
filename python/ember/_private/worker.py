"""``ray._private.worker``'s hook that programs replace: ``_unhandled_error_handler``.

ember calls it (looked up at each call, so assigning another function here takes effect) with
the exception of every task failure that nobody read before its last ObjectRef went
(ember._unhandled). Only this hook lives here; the rest of Ray's module is Ray's internals.
"""

from __future__ import annotations

import logging

from ember import _names

logger = logging.getLogger("ember")


def _unhandled_error_handler(e: BaseException) -> None:
    """Logs an unhandled error, saying how to silence such reports (Ray's default)."""
    variable = "RAY_IGNORE_UNHANDLED_ERRORS" if _names.as_ray() else "EMBER_IGNORE_UNHANDLED_ERRORS"
    logger.error(f"Unhandled error (suppress with '{variable}=1'): {e}")
