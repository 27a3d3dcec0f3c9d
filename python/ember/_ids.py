"""Ray's id classes (``ray.JobID``, ``ray.ActorID``, ``ray.TaskID``, ``ray.NodeID``, ...):
fixed-size byte strings with Ray's sizes and methods (``binary``, ``hex``, ``from_binary``,
``from_hex``, ``size``, ``nil``, ``is_nil``). The runtime context hands them out for this
node's ids; ember's own ids are shorter than Ray's, so ids ember makes are zero-padded on
the left to Ray's size and keep their value in ``hex()`` after stripping the padding.
"""

from __future__ import annotations


class BaseID:
    """An id of SIZE bytes; equal ids are of the same class and bytes."""

    SIZE = 0
    __slots__ = ("_bytes",)

    def __init__(self, id_bytes: bytes):
        if not isinstance(id_bytes, bytes) or len(id_bytes) != self.SIZE:
            raise ValueError(f"{type(self).__name__} takes {self.SIZE} bytes, got {id_bytes!r}")
        self._bytes = id_bytes

    @classmethod
    def from_binary(cls, id_bytes: bytes):
        return cls(id_bytes)

    @classmethod
    def from_hex(cls, hex_id: str):
        return cls(bytes.fromhex(hex_id))

    @classmethod
    def from_int(cls, value: int):
        """An id holding `value` (one of ember's ids), zero-padded to SIZE bytes."""
        return cls(value.to_bytes(cls.SIZE, "big"))

    @classmethod
    def size(cls) -> int:
        return cls.SIZE

    @classmethod
    def nil(cls):
        return cls(b"\xff" * cls.SIZE)

    def is_nil(self) -> bool:
        return self._bytes == b"\xff" * self.SIZE

    def binary(self) -> bytes:
        return self._bytes

    def hex(self) -> str:
        return self._bytes.hex()

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other._bytes == self._bytes

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._bytes))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.hex()})"

    def __reduce__(self):
        return type(self), (self._bytes,)


def _id_class(name: str, size: int) -> type[BaseID]:
    return type(name, (BaseID,), {"SIZE": size, "__slots__": (), "__module__": "ember"})


JobID = _id_class("JobID", 4)
ActorID = _id_class("ActorID", 16)
TaskID = _id_class("TaskID", 24)
NodeID = _id_class("NodeID", 28)
WorkerID = _id_class("WorkerID", 28)
FunctionID = _id_class("FunctionID", 28)
ActorClassID = _id_class("ActorClassID", 28)
ClusterID = _id_class("ClusterID", 28)
PlacementGroupID = _id_class("PlacementGroupID", 18)

__all__ = ["ActorClassID", "ActorID", "BaseID", "ClusterID", "FunctionID", "JobID", "NodeID",
           "PlacementGroupID", "TaskID", "WorkerID"]
