"""ember.util: helpers on top of the core API (Ray's ray.util names)."""

from ember.util import state
from ember.util.actor_pool import ActorPool

__all__ = ["ActorPool", "state"]
