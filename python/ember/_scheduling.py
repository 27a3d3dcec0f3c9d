"""Ray's scheduling strategies (``ray.util.scheduling_strategies``), as values a task's or an
actor's ``scheduling_strategy=`` option takes. On one node every task lands on that node, so
"DEFAULT" and "SPREAD" mean the same, a node-affinity strategy must name this node (or be
soft), and the strategies of placement groups and node labels are refused with the reason
(ember._options)."""

from __future__ import annotations


class PlacementGroupSchedulingStrategy:
    """Run in a bundle of a placement group (refused by ember: no placement groups yet)."""

    def __init__(self, placement_group, placement_group_bundle_index: int = -1,
                 placement_group_capture_child_tasks: bool | None = None):
        self.placement_group = placement_group
        self.placement_group_bundle_index = placement_group_bundle_index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks


class NodeAffinitySchedulingStrategy:
    """Run on the node `node_id` (hex); with soft=True, anywhere if that node cannot."""

    def __init__(self, node_id: str, soft: bool, _spill_on_unavailable: bool = False,
                 _fail_on_unavailable: bool = False):
        self.node_id = node_id
        self.soft = soft
        self._spill_on_unavailable = _spill_on_unavailable
        self._fail_on_unavailable = _fail_on_unavailable


class NodeLabelSchedulingStrategy:
    """Run on a node whose labels match (refused by ember: its node has no labels)."""

    def __init__(self, hard: dict, *, soft: dict | None = None):
        self.hard = hard
        self.soft = soft
