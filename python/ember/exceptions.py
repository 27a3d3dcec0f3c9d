"""ember's exceptions, also reachable under Ray's names (``ray.exceptions.*``).

Every error ember raises derives from :class:`EmberError`, and also from the builtin that
matches its meaning, so ``except MemoryError`` catches a full store and
``except ray.exceptions.RayError`` works after ``import ember as ray``.
"""

from __future__ import annotations

from ember import _core

__all__ = [
    "EmberError",
    "NotInitializedError",
    "ObjectLostError",
    "ObjectStoreFullError",
    "RayError",
    "RaySystemError",
]


class EmberError(Exception):
    """Base class of every error raised by ember."""


class NotInitializedError(EmberError, RuntimeError):
    """An API call needs a running node: ``ember.init()`` was not called, or the node was shut
    down."""


class ObjectStoreFullError(EmberError, MemoryError):
    """An object does not fit in the node's object store; the message gives the sizes."""


class ObjectLostError(EmberError):
    """An ObjectRef's object no longer exists in the store."""


class _BadArgument(EmberError, TypeError, ValueError):
    """A wrong type of argument. A ``TypeError``, and a ``ValueError`` too because Ray raises
    that for the same mistakes."""


# Ray's names for the same classes.
RayError = EmberError
RaySystemError = EmberError

_core.set_error_classes(
    {
        "EmberError": EmberError,
        "NotInitializedError": NotInitializedError,
        "ObjectStoreFullError": ObjectStoreFullError,
        "ObjectLostError": ObjectLostError,
        "ValueError": ValueError,
        "OSError": OSError,
    }
)
