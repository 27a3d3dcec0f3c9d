"""serialization: values to (pickle stream, out-of-band buffers) and back.

Pickle protocol 5: large contiguous buffers (numpy arrays, bytes-like objects) are not copied
into the pickle stream but handed out "out of band", so the store writes each of them once,
straight into its allocation, and reads them back as zero-copy views.

Plain scalars and numpy arrays go through the C pickler; everything else through cloudpickle,
which pickles functions and classes of ``__main__`` by value so other processes can load them.
"""

from __future__ import annotations

import pickle
from typing import Any

import cloudpickle
import numpy as np

_PLAIN = frozenset({int, float, str, bytes, bool, type(None), complex})


def serialize(value: Any) -> tuple[bytes, list[memoryview]]:
    """Returns the pickle stream of `value` and its out-of-band buffers (raw memoryviews).

    Raises TypeError naming the type when `value` cannot be pickled.
    """
    buffers: list[pickle.PickleBuffer] = []
    kind = type(value)
    try:
        if kind in _PLAIN or (kind is np.ndarray and not value.dtype.hasobject):
            header = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
        else:
            header = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    except Exception as e:
        raise TypeError(
            f"cannot serialize a value of type {kind.__module__}.{kind.__qualname__}: {e}"
        ) from e
    return header, [b.raw() for b in buffers]


def deserialize(header: bytes | memoryview, buffers: list[memoryview] | None) -> Any:
    """Rebuilds a value; arrays in it are views on `buffers`."""
    return pickle.loads(header, buffers=buffers or ())
