"""ember.util.check_serialize: what inside a value cannot be pickled (Ray's module name)."""

from ember._serializability import FailureTuple, inspect_serializability

__all__ = ["FailureTuple", "inspect_serializability"]
