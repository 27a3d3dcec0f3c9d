"""ObjectRef: a reference to an object in the node's store.

The class itself is C++ (``ember._core.ObjectRef``): it holds one reference count on its
object while it lives, so the object's memory is reused as soon as no ObjectRef and no view of
it remains. Pickling an ObjectRef (to nest it in another object) stores its id; unpickling
takes a new count in the unpickling process.
"""

from __future__ import annotations

from ember import _core, _node

ObjectRef = _core.ObjectRef


def _rebuild(binary: bytes) -> ObjectRef:
    return _node.current().store.ref_from_binary(binary)


def _reduce(ref: ObjectRef):
    return _rebuild, (ref.binary(),)


ObjectRef.__reduce__ = _reduce
ObjectRef.__module__ = "ember"
