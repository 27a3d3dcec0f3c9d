"""_pickle: the pickler of what ember stores that the C pickler cannot take (functions,
classes, objects of any kind): cloudpickle's, with two differences.

- A code object keeps its file name. cloudpickle writes ``<dynamic-code>`` instead, and then
  a traceback through a function defined in a test module or a script names no file and
  shows no source line. The driver and its workers run the same interpreter, so a code object
  travels as its ``marshal`` form, which is exact, file name and line table included.
- A class given to :func:`register_serializer` pickles as ``(deserializer,
  (serializer(obj),))``: the deserializer travels with the value (by value if it is a local
  function), so only the process that pickles needs the registration.

Imported on first use (serialization imports it when a value needs cloudpickle), as
cloudpickle itself is.
"""

from __future__ import annotations

import io
import marshal
import pickle
import types
from typing import Any, Callable

import cloudpickle

#: class -> (serializer, deserializer), for instances of exactly that class.
_registered: dict[type, tuple[Callable, Callable]] = {}


def register_serializer(cls: type, *, serializer: Callable, deserializer: Callable) -> None:
    """Instances of `cls` (exactly that class) pickle as ``deserializer(serializer(obj))``."""
    if not isinstance(cls, type):
        raise TypeError(f"register_serializer(cls): a class, not {type(cls).__name__}")
    if not callable(serializer) or not callable(deserializer):
        raise TypeError("register_serializer: serializer and deserializer must be callables")
    _registered[cls] = (serializer, deserializer)


def deregister_serializer(cls: type) -> None:
    """Undoes :func:`register_serializer`; nothing happens if `cls` was not registered."""
    _registered.pop(cls, None)


def has_registered() -> bool:
    return bool(_registered)


def _load_code(data: bytes) -> types.CodeType:
    return marshal.loads(data)


class Pickler(cloudpickle.Pickler):
    """cloudpickle's Pickler, code objects and registered classes aside (module docstring)."""

    def reducer_override(self, obj: Any):
        kind = type(obj)
        if kind is types.CodeType:
            try:
                return _load_code, (marshal.dumps(obj),)
            except ValueError:  # a code object marshal cannot write: cloudpickle's way
                pass
        custom = _registered.get(kind)
        if custom is not None:
            serializer, deserializer = custom
            return deserializer, (serializer(obj),)
        return super().reducer_override(obj)


def dumps(obj: Any, protocol: int | None = 5, buffer_callback=None) -> bytes:
    """`obj` pickled by :class:`Pickler`; large buffers go to `buffer_callback` if given."""
    out = io.BytesIO()
    Pickler(out, protocol=protocol, buffer_callback=buffer_callback).dump(obj)
    return out.getvalue()


def dump(obj: Any, file, protocol: int | None = 5, buffer_callback=None) -> None:
    Pickler(file, protocol=protocol, buffer_callback=buffer_callback).dump(obj)


loads = pickle.loads
load = pickle.load
