"""ObjectRef: a reference to an object in the node's store.

The class itself is C++ (``ember._core.ObjectRef``): it holds one reference count on its
object while it lives, so the object's memory is reused as soon as no ObjectRef and no view of
it remains. Pickling an ObjectRef (to nest it in another object) stores its id; unpickling
takes a new count in the unpickling process.
"""

from __future__ import annotations

import threading

from ember import _core, _node

ObjectRef = _core.ObjectRef

#: While ember serializes a value on this thread: the list of ObjectRefs pickled inside it.
_nested = threading.local()


def _rebuild(binary: bytes) -> ObjectRef:
    return _node.current().store.ref_from_binary(binary)


def _reduce(ref: ObjectRef):
    found = getattr(_nested, "refs", None)
    if found is not None:
        found.append(ref)
    return _rebuild, (ref.binary(),)


ObjectRef.__reduce__ = _reduce
ObjectRef.__module__ = "ember"
