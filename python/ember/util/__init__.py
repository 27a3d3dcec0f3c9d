"""ember.util: helpers on top of the core API (Ray's ray.util names)."""

from typing import Callable

from ember import _backend
from ember.actor import list_named_actors
from ember.exceptions import NODE_IP
from ember.util import state
from ember.util.actor_group import ActorGroup
from ember.util.actor_pool import ActorPool
from ember.util.check_serialize import inspect_serializability
from ember.util.helpers import as_completed, map_unordered
from ember.util.placement_group import (
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)

__all__ = ["ActorGroup", "ActorPool", "as_completed", "deregister_serializer",
           "get_current_placement_group", "get_node_ip_address", "get_placement_group",
           "inspect_serializability", "list_named_actors", "map_unordered", "placement_group",
           "placement_group_table", "register_serializer", "remove_placement_group", "state"]


def register_serializer(cls: type, *, serializer: Callable, deserializer: Callable) -> None:
    """Instances of exactly `cls` are stored as ``serializer(obj)`` and rebuilt with
    ``deserializer(that)`` (for classes pickle cannot take, or to take them your way).

    It applies to what this process pickles: the deserializer travels with each value, so
    the processes that read it need no registration. Call it in a task or actor too for what
    they return or raise.
    """
    if _backend.active.name == "ray":  # Ray pickles what its tasks send: register it there
        import ray  # noqa: PLC0415 (Ray is optional)

        ray.util.register_serializer(cls, serializer=serializer, deserializer=deserializer)
        return
    from ember import _pickle  # noqa: PLC0415 (cloudpickle: first use only)

    _pickle.register_serializer(cls, serializer=serializer, deserializer=deserializer)


def deregister_serializer(cls: type) -> None:
    """Undoes register_serializer(cls); nothing happens if `cls` is not registered."""
    if _backend.active.name == "ray":
        import ray  # noqa: PLC0415 (Ray is optional)

        ray.util.deregister_serializer(cls)
        return
    from ember import _pickle  # noqa: PLC0415

    _pickle.deregister_serializer(cls)


def get_node_ip_address(address: str = "8.8.8.8:53") -> str:
    """The node's address as ember.nodes() gives it: ember's one node is this machine."""
    del address  # Ray's: where to route a probe to find the machine's outward address
    return NODE_IP
