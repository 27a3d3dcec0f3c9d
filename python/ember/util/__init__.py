"""ember.util: helpers on top of the core API (Ray's ray.util names)."""

from ember.util import state
from ember.util.actor_pool import ActorPool
from ember.util.helpers import as_completed, map_unordered

__all__ = ["ActorPool", "as_completed", "map_unordered", "state"]
