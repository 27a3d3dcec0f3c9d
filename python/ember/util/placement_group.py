"""Placement groups (Ray's ``ray.util.placement_group``): resources of the node reserved in
bundles, that only the tasks and actors scheduled into them use.

    pg = placement_group([{"CPU": 1}, {"CPU": 1, "GPU": 1}], strategy="PACK")
    ember.get(pg.ready())
    a = Actor.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 1)).remote()

On one node every bundle is on that node: PACK, SPREAD and STRICT_PACK all hold, and
STRICT_SPREAD (one bundle per node) can be met by a group of one bundle only, so a larger one
is refused, as is a bundle the node's totals could never hold (one machine cannot grow; a
one-node Ray cluster would leave such a group pending forever). A group that fits the totals
but not what is free now waits, as in Ray, until enough is released. Removing a group kills
what runs in it: its actors die (ActorDiedError) and its tasks fail with
TaskPlacementGroupRemoved, as do tasks still waiting for it.

Under the Ray backend each call is Ray's own.
"""

from __future__ import annotations

import sys
import time
import types
import warnings
from typing import Any

from ember import _backend, _node, _options, _placement, api, remote_function
from ember._ids import PlacementGroupID
from ember._scheduling import PlacementGroupSchedulingStrategy

VALID_PLACEMENT_GROUP_STRATEGIES = {"PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"}
#: A resource name Ray reserves for the bundles it makes; a bundle may not ask for it.
_RESERVED_NAME = "bundle"

__all__ = [
    "VALID_PLACEMENT_GROUP_STRATEGIES",
    "PlacementGroup",
    "check_placement_group_index",
    "get_current_placement_group",
    "get_placement_group",
    "placement_group",
    "placement_group_table",
    "remove_placement_group",
    "validate_placement_group",
]


def _ray():
    import ray  # noqa: PLC0415 (Ray is optional)

    return ray


def _ready(pg: PlacementGroup) -> PlacementGroup:
    return pg


#: ready()'s task: zero CPUs, so it runs in a bundle even when the group's tasks hold it all.
_ready_task = remote_function.RemoteFunction(_ready, {"num_cpus": 0, "max_retries": 0})


class PlacementGroup:
    """A handle to a placement group: its id and, once known, its bundles. Handles are equal
    when their ids are; they pickle, so tasks and actors can be given one."""

    def __init__(self, id: PlacementGroupID, bundle_cache: list[dict] | None = None):
        self.id = id
        self.bundle_cache = bundle_cache

    @staticmethod
    def empty() -> PlacementGroup:
        return PlacementGroup(PlacementGroupID.nil())

    @property
    def is_empty(self) -> bool:
        return self.id.is_nil()

    @property
    def bundle_specs(self) -> list[dict[str, float]]:
        """The bundles, as dicts of resource name to amount."""
        if self.bundle_cache is None:
            record = _placement.record_of(_node.current(), _placement.core_id(self.id))
            self.bundle_cache = [] if record is None else record["bundles"]
        return self.bundle_cache

    @property
    def bundle_count(self) -> int:
        return len(self.bundle_specs)

    def ready(self):
        """An ObjectRef that becomes this PlacementGroup once its bundles are reserved (a task
        of zero CPUs run in it), for ember.get() and ember.wait()."""
        strategy = PlacementGroupSchedulingStrategy(self)
        return _ready_task.options(scheduling_strategy=strategy).remote(self)

    def wait(self, timeout_seconds: float | int = 30) -> bool:
        """True once the bundles are reserved; False if `timeout_seconds` pass first."""
        node = _node.current()
        core = _placement.core_id(self.id)
        deadline = time.monotonic() + timeout_seconds
        delay = 0.0005
        while not _placement.is_created(node, core):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.05)
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroup) and self.id == other.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"PlacementGroup({self.id.hex()})"


# --- validation (as Ray's; also usable on their own, as in Ray) ------------------------------


def _validate_bundles(bundles: Any) -> None:
    if not isinstance(bundles, (list, tuple)):
        raise ValueError("Placement group bundles must be a list, "
                         f"got {type(bundles).__name__}.")
    if len(bundles) == 0:
        raise ValueError("Bundles must be a non-empty list of resource dictionaries. "
                         "For example: `[{'CPU': 1.0}, {'GPU': 1.0}]`.")
    for bundle in bundles:
        if not isinstance(bundle, dict) or not all(
                isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
                for k, v in bundle.items()):
            raise ValueError("Bundles must be a non-empty list of resource dictionaries "
                             "(resource name to a number). For example: "
                             "`[{'CPU': 1.0}, {'GPU': 1.0}]`.")
        if any(v < 0 for v in bundle.values()):
            raise ValueError(f"Bundle {bundle} asks for a negative amount of a resource.")
        if not any(bundle.values()):
            raise ValueError("Bundles cannot be an empty dictionary or resources with only 0 "
                             f"values. Bundles: {list(bundles)}")


def _validate_bundle_label_selector(bundle_label_selector: Any) -> None:
    if bundle_label_selector is None:
        return
    if not isinstance(bundle_label_selector, list):
        raise ValueError("bundle_label_selector must be a list of string dictionary (one per "
                         f"bundle), got {type(bundle_label_selector).__name__}.")
    for selector in bundle_label_selector:
        if not isinstance(selector, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in selector.items()):
            raise ValueError("bundle_label_selector must be a list of string dictionary (one "
                             "per bundle): `[{'ray.io/market_type': 'spot'}]`.")
        try:
            _options.check_label_selector(selector, "bundle_label_selector")
        except (TypeError, ValueError) as e:
            raise ValueError(f"Invalid label selector provided in bundle_label_selector list. "
                             f"Detailed error: '{e}'") from None


def validate_placement_group(bundles: Any, strategy: str = "PACK", lifetime: str | None = None,
                             _soft_target_node_id: str | None = None,
                             bundle_label_selector: Any = None) -> None:
    """Raises ValueError for arguments placement_group() would refuse (Ray's checks)."""
    _validate_bundles(bundles)
    if strategy not in VALID_PLACEMENT_GROUP_STRATEGIES:
        raise ValueError(f"Invalid placement group strategy {strategy}. Supported strategies "
                         f"are: {sorted(VALID_PLACEMENT_GROUP_STRATEGIES)}.")
    if lifetime not in (None, "detached"):
        raise ValueError("Placement group `lifetime` argument must be either `None` or "
                         f"'detached'. Got {lifetime}.")
    if _soft_target_node_id is not None and strategy != "STRICT_PACK":
        raise ValueError("_soft_target_node_id currently only works with STRICT_PACK "
                         "strategy.")
    _validate_bundle_label_selector(bundle_label_selector)
    if bundle_label_selector and len(bundle_label_selector) != len(bundles):
        raise ValueError("bundle_label_selector needs one selector per bundle: "
                         f"{len(bundle_label_selector)} for {len(bundles)} bundles.")


def check_placement_group_index(placement_group: PlacementGroup, bundle_index: int) -> None:
    """ValueError unless `bundle_index` names a bundle of the group (or is -1: any)."""
    count = placement_group.bundle_count
    if bundle_index is None or not -1 <= bundle_index < count:
        raise ValueError(f"placement group bundle index {bundle_index} is invalid. Valid "
                         f"placement group indexes: 0-{count - 1} (or -1 for any bundle)")


# --- the API ---------------------------------------------------------------------------------


def placement_group(bundles: list[dict[str, float]], strategy: str = "PACK", name: str = "",
                    lifetime: str | None = None, _soft_target_node_id: str | None = None,
                    bundle_label_selector: list[dict[str, str]] | None = None
                    ) -> PlacementGroup:
    """Reserves `bundles` of the node's resources (asynchronously: ready() and wait() tell
    when); a group the node could never hold is refused here."""
    if _backend.active.name == "ray":
        return _ray().util.placement_group(
            bundles, strategy=strategy, name=name, lifetime=lifetime,
            _soft_target_node_id=_soft_target_node_id,
            bundle_label_selector=bundle_label_selector)
    validate_placement_group(bundles, strategy, lifetime, _soft_target_node_id,
                             bundle_label_selector)
    node = _node.current()
    if _soft_target_node_id is not None and _soft_target_node_id != node.node_id:
        raise ValueError(f"_soft_target_node_id {_soft_target_node_id} is not this node "
                         f"({node.node_id}), the only one")
    if bundle_label_selector and any(bundle_label_selector):
        raise ValueError("bundle_label_selector: node labels choose among the nodes of a "
                         "cluster; ember's one node has none")
    if strategy == "STRICT_SPREAD" and len(bundles) > 1:
        raise ValueError(f"a STRICT_SPREAD placement group puts each of its bundles on a node "
                         f"of its own, and ember has one node: {len(bundles)} bundles could "
                         "never be placed (use PACK or SPREAD, which one node satisfies)")
    if not isinstance(name, str):
        raise TypeError(f"placement group name must be a str, got {type(name).__name__}")
    clean = []
    for i, bundle in enumerate(bundles):
        if _RESERVED_NAME in bundle:
            raise ValueError(f"bundle {i} asks for resource {_RESERVED_NAME!r}, a name Ray "
                             "reserves for placement groups' own resources")
        if "object_store_memory" in bundle:
            warnings.warn("Setting 'object_store_memory' for bundles is deprecated since it "
                          "doesn't actually reserve the required object store memory; ember "
                          "does not reserve it either.", DeprecationWarning, stacklevel=2)
        clean.append({k: float(v) for k, v in bundle.items()
                      if k != "object_store_memory" and v})
    _check_totals(node, clean)
    core = _placement.request(node, clean, strategy, name, lifetime)
    return PlacementGroup(_placement.group_id(node, core), clean)


def _check_totals(node, bundles: list[dict[str, float]]) -> None:
    total: dict[str, float] = {}
    for bundle in bundles:
        for k, v in bundle.items():
            total[k] = total.get(k, 0) + v
    for k, v in total.items():
        have = node.resources.get(k)
        if have is None:
            raise ValueError(f"the placement group needs resource {k!r}, which this node does "
                             f"not have (it has {', '.join(node.resources)}); declare it with "
                             "ember.init(resources=...)")
        if v > have:
            raise ValueError(f"the placement group's bundles need {v:g} {k} in all but this "
                             f"node has {have:g}: it could never be created (one machine "
                             "cannot grow)")


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Removes the group: its actors are killed, its tasks fail, its resources return."""
    if _backend.active.name == "ray":
        return _ray().util.remove_placement_group(placement_group)
    if not isinstance(placement_group, PlacementGroup):
        raise TypeError("remove_placement_group takes a PlacementGroup, got "
                        f"{type(placement_group).__name__}")
    _placement.remove(_node.current(), _placement.core_id(placement_group.id))
    return None


def get_placement_group(placement_group_name: str) -> PlacementGroup:
    """The live group made with this name in this namespace; ValueError if there is none."""
    if _backend.active.name == "ray":
        return _ray().util.get_placement_group(placement_group_name)
    if not placement_group_name:
        raise ValueError("Please supply a non-empty value to get_placement_group")
    node = _node.current()
    for record in reversed(_placement.records(node)):
        if record["name"] != placement_group_name or record["namespace"] != node.namespace:
            continue
        core = record["placement_group"]
        if _placement.state(node, core)[0] != "REMOVED":
            return PlacementGroup(_placement.group_id(node, core), record["bundles"])
    raise ValueError(f"Failed to look up placement group with name: {placement_group_name}")


def placement_group_table(placement_group: PlacementGroup | None = None) -> dict:
    """One group's state and bundles, or every group's (removed ones too) by hex id."""
    if _backend.active.name == "ray":
        return _ray().util.placement_group_table(placement_group)
    node = _node.current()
    if placement_group is not None:
        record = _placement.record_of(node, _placement.core_id(placement_group.id))
        return {} if record is None else _placement.table_entry(node, record)
    entries = (_placement.table_entry(node, r) for r in _placement.records(node))
    return {e["placement_group_id"]: e for e in entries}


def get_current_placement_group() -> PlacementGroup | None:
    """The group the running task or actor was scheduled in; None in the driver or when it
    was not placed in one."""
    if _backend.active.name == "ray":
        return _ray().util.get_current_placement_group()
    node = _node.current() if api.is_initialized() else None
    if node is None or node.placement is None:
        return None
    core = node.placement[0]
    record = _placement.record_of(node, core)
    return PlacementGroup(_placement.group_id(node, core),
                          None if record is None else record["bundles"])


class _CallableModule(types.ModuleType):
    """This module, callable as placement_group(): ``ember.util.placement_group`` names both
    (Ray's names), and an alias that maps ``ray.util.placement_group`` to this module (ember
    run, a shim) makes the import system set the package's attribute to the module."""

    def __call__(self, *args, **kwargs) -> PlacementGroup:
        return placement_group(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
