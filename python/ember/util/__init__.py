"""ember.util: helpers on top of the core API (Ray's ray.util names)."""

from ember.actor import list_named_actors
from ember.util import state
from ember.util.actor_pool import ActorPool
from ember.util.helpers import as_completed, map_unordered

__all__ = ["ActorPool", "as_completed", "get_node_ip_address", "list_named_actors",
           "map_unordered", "state"]


def get_node_ip_address(address: str = "8.8.8.8:53") -> str:
    """The node's address as ember.nodes() gives it: ember's one node is this machine."""
    del address  # Ray's: where to route a probe to find the machine's outward address
    return "127.0.0.1"
