"""ember.cloudpickle: the pickler ember stores values with, for programs that pickle as the
runtime does (Ray's ``ray.cloudpickle``): cloudpickle, with code objects that keep their
file names and the classes of ``ember.util.register_serializer`` (see ember._pickle)."""

from cloudpickle import register_pickle_by_value, unregister_pickle_by_value

from ember._pickle import Pickler, dump, dumps, load, loads

CloudPickler = Pickler

__all__ = ["CloudPickler", "Pickler", "dump", "dumps", "load", "loads",
           "register_pickle_by_value", "unregister_pickle_by_value"]
