"""ember.cloudpickle: the pickler ember stores values with, for programs that pickle as the
runtime does (Ray's ``ray.cloudpickle``): cloudpickle, with code objects that keep their
file names and the classes of ``ember.util.register_serializer`` (see ember._pickle)."""

from cloudpickle import register_pickle_by_value, unregister_pickle_by_value

from ember import _serializability
from ember._pickle import Pickler, dump, dumps, load, loads

CloudPickler = Pickler

__all__ = ["CloudPickler", "Pickler", "dump", "dumps", "dumps_debug", "load", "loads",
           "register_pickle_by_value", "unregister_pickle_by_value"]


def dumps_debug(obj, *args, **kwargs) -> bytes:
    """dumps(), but a value that cannot be pickled raises TypeError with the report of
    ``inspect_serializability``: what inside it failed, and where (Ray's name)."""
    try:
        return dumps(obj, *args, **kwargs)
    except Exception as e:  # pickling fails in many ways: each is reported
        raise TypeError(_serializability.error(f"the value {obj!r:.60}", obj)) from e
