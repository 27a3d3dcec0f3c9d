"""ember.util.scheduling_strategies: the values of the ``scheduling_strategy=`` option (Ray's
``ray.util.scheduling_strategies``; what each means on one node: ember._scheduling)."""

from ember._scheduling import (
    NodeAffinitySchedulingStrategy,
    NodeLabelSchedulingStrategy,
    PlacementGroupSchedulingStrategy,
)

__all__ = [
    "NodeAffinitySchedulingStrategy",
    "NodeLabelSchedulingStrategy",
    "PlacementGroupSchedulingStrategy",
]
