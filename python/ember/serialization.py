"""serialization: values to (pickle stream, out-of-band buffers) and back.

Pickle protocol 5: large contiguous buffers (numpy arrays, bytes-like objects) are not copied
into the pickle stream but handed out "out of band", so the store writes each of them once,
straight into its allocation, and reads them back as zero-copy views.

Plain scalars and numpy arrays go through the C pickler; everything else through ember's
cloudpickle (ember._pickle), which pickles functions and classes of ``__main__`` by value so
other processes can load them, and classes given to ``register_serializer`` its way. numpy and
cloudpickle are imported on first use, not with ember: a worker that never sees an array never
pays for numpy, and a node starts faster.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
from typing import Any

from ember.exceptions import OufOfBandObjectRefSerializationException, raise_stored_error

_PLAIN = frozenset({int, float, str, bytes, bool, type(None), complex})

#: While a value is serialized on this thread: the list of ObjectRefs pickled inside it
#: (ObjectRef.__reduce__, in ember.object_ref, appends to it).
_nested = threading.local()


#: Ray's switch (and ember's name for it): "0" makes pickling an ObjectRef out of band an
#: error, as in Ray: captured by a remote function's or actor class's code, or pickled by
#: pickle/cloudpickle directly rather than inside a task's arguments, results or a put.
OUT_OF_BAND_ENV = ("RAY_allow_out_of_band_object_ref_serialization",
                   "EMBER_ALLOW_OUT_OF_BAND_OBJECT_REF_SERIALIZATION")


def note_nested(ref) -> None:
    """Called when an ObjectRef is pickled: if a value is being serialized on this thread, the
    stored object will hold that ref."""
    found = getattr(_nested, "refs", None)
    if (found is None or _nested.code) and any(os.environ.get(name) == "0"
                                               for name in OUT_OF_BAND_ENV):
        raise OufOfBandObjectRefSerializationException(
            f"{ref!r} was pickled out of band ("
            + ("captured by the code of a remote function or actor class"
               if found is not None else "by pickle or cloudpickle directly")
            + f"), which {OUT_OF_BAND_ENV[0]}=0 forbids: pass it as an argument, return it, "
            "or put it inside a value you put")
    if found is not None:
        found.append(ref)


def serialize(value: Any, code: bool = False) -> tuple[bytes, list[memoryview], list]:
    """Returns the pickle stream of `value`, its out-of-band buffers (raw memoryviews) and the
    ObjectRefs pickled inside it (the stored object will hold them). `code`: value is a
    remote function or actor class, whose refs are out of band in Ray's sense.

    Raises TypeError naming the type when `value` cannot be pickled.
    """
    buffers: list[pickle.PickleBuffer] = []
    kind = type(value)
    np = sys.modules.get("numpy")  # no numpy imported: value cannot be an ndarray
    pickler = sys.modules.get("ember._pickle")
    try:
        if (kind in _PLAIN or (np is not None and kind is np.ndarray and not value.dtype.hasobject)
                ) and (pickler is None or not pickler.has_registered()):
            return pickle.dumps(value, protocol=5, buffer_callback=buffers.append), [
                b.raw() for b in buffers
            ], []
        from ember import _pickle  # noqa: PLC0415 (first use only; see the module docstring)

        nested = []
        _nested.refs, _nested.code = nested, code
        try:
            stream = _pickle.dumps(value, buffer_callback=buffers.append)
        finally:
            _nested.refs = None
    except OufOfBandObjectRefSerializationException:
        raise
    except Exception as e:
        raise TypeError(
            f"cannot serialize a value of type {kind.__module__}.{kind.__qualname__}: {e}"
        ) from e
    return stream, [b.raw() for b in buffers], nested


def deserialize(stream: bytes | memoryview, buffers: list[memoryview] | None, flags: int = 0,
                error_kind: int = 0) -> Any:
    """Rebuilds a value; arrays in it are views on `buffers`. A stored failure is raised."""
    if flags:
        raise_stored_error(stream, buffers, flags, error_kind)
    return pickle.loads(stream, buffers=buffers or ())
