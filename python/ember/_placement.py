"""Placement groups on ember's node, below the API (ember.util.placement_group): asking the
scheduler for one, its record that any process of the node can read, and where a task or an
actor with a placement group strategy draws its resources from.

The scheduler owns the reservations (cpp/placement.h): a group's bundles are taken out of the
node's resources all at once, and a task or an actor placed in a group leases from one of its
bundles. This module adds what the core does not keep: the bundles by name, the strategy, the
name and namespace, in a record in the store at an id derived from the group's id (the way
named actors are recorded, ember.actor), so that ``get_placement_group(name)`` and
``placement_group_table()`` work from every process.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from typing import Any

from ember import _core, _node, _objects
from ember._ids import PlacementGroupID
from ember._scheduling import PlacementGroupSchedulingStrategy
from ember.exceptions import ObjectLostError
from ember.serialization import serialize

#: Ray's strategies, by the core's numbers (GroupStrategy in cpp/placement.h).
STRATEGIES = {"PACK": 0, "SPREAD": 1, "STRICT_PACK": 2, "STRICT_SPREAD": 3}
#: The core's states (GroupState) as Ray names them in placement_group_table().
_STATES = {3: "PENDING", 4: "CREATED", 5: "REMOVED"}
_CREATED = 4
_REMOVED = 5


def group_id(node: _node.Node, core_id: int) -> PlacementGroupID:
    """The PlacementGroupID of the core's group `core_id`: the core's id, the node's tag, the
    job; unique across nodes, and the core's id reads back from it (core_id())."""
    tag = node.store.node_tag.to_bytes(8, "little")
    return PlacementGroupID(core_id.to_bytes(4, "little") + tag + b"\0\0" + node.job_id.binary())



def core_id(pg_id: PlacementGroupID) -> int:
    return int.from_bytes(pg_id.binary()[:4], "little")


# --- the record ------------------------------------------------------------------------------


def _record_id(store, core: int) -> bytes:
    digest = hashlib.blake2b(f"placement group\0{core}".encode(), digest_size=8).digest()
    return store.named_id(int.from_bytes(digest, "big"))


def request(node: _node.Node, bundles: list[dict[str, float]], strategy: str, name: str,
            lifetime: str | None) -> int:
    """Asks the scheduler for the group and records it; the core's id."""
    vectors = [node.resource_vector(b, f"placement group bundle {i}")
               for i, b in enumerate(bundles)]
    core = _core.request_placement_group(node.store, vectors, STRATEGIES[strategy])
    record = {"placement_group": core, "bundles": bundles, "strategy": strategy, "name": name,
              "namespace": node.namespace, "lifetime": lifetime,
              "requested_ns": time.monotonic_ns()}  # CLOCK_MONOTONIC, as the core's times
    stream, buffers, _ = serialize(record)
    node.store.put_unowned(_record_id(node.store, core), stream, buffers)
    return core


def record_of(node: _node.Node, core: int) -> dict | None:
    """The record of group `core` (its bundles, strategy, name, ...), or None."""
    try:
        record = _objects.get(node.store.ref_from_binary(_record_id(node.store, core)))
    except ObjectLostError:
        return None
    return record if isinstance(record, dict) else None


def records(node: _node.Node) -> list[dict]:
    """Every group's record on the node, the removed ones too (as Ray's table lists them)."""
    out = []
    for entry in node.store.list_objects():
        if entry["state"] != "SEALED" or int(entry["object_id"][16], 16) < 8:
            continue  # not a record (kNamedIdBit: the top bit of the low word)
        try:
            record = _objects.get(node.store.ref_from_binary(bytes.fromhex(entry["object_id"])))
        except ObjectLostError:
            continue
        if isinstance(record, dict) and "placement_group" in record:
            out.append(record)
    return sorted(out, key=lambda r: r["requested_ns"])


def state(node: _node.Node, core: int) -> tuple[str, int]:
    """("PENDING" | "CREATED" | "REMOVED", CLOCK_MONOTONIC ns it was created at or 0)."""
    code, created_ns = _core.placement_group_state(node.store, core)
    return _STATES[code], created_ns


def table_entry(node: _node.Node, record: dict) -> dict[str, Any]:
    """A group's row of placement_group_table(), in Ray's fields."""
    core = record["placement_group"]
    now, created_ns = state(node, core)
    placed = now == "CREATED"
    latency = (created_ns - record["requested_ns"]) / 1e6 if created_ns else 0.0
    return {
        "placement_group_id": group_id(node, core).hex(),
        "name": record["name"],
        "bundles": dict(enumerate(record["bundles"])),
        "bundles_to_node_id": {i: node.node_id for i in range(len(record["bundles"]))}
        if placed else {},
        "strategy": record["strategy"],
        "state": now,
        "stats": {
            "end_to_end_creation_latency_ms": latency,
            "scheduling_latency_ms": latency,
            "scheduling_attempt": 1,
            "highest_retry_delay_ms": 0.0,
            "scheduling_state": {"PENDING": "QUEUED", "CREATED": "FINISHED",
                                 "REMOVED": "REMOVED"}[now],
        },
    }


def is_created(node: _node.Node, core: int) -> bool:
    return _core.placement_group_state(node.store, core)[0] == _CREATED


def remove(node: _node.Node, core: int, timeout_s: float = 5.0) -> None:
    """Asks the scheduler to remove the group and waits (a few ms) until it has: what ran in
    it is then being killed and its resources are the node's again."""
    _core.remove_placement_group(node.store, core)
    deadline = time.monotonic() + timeout_s
    delay = 0.0005
    while _core.placement_group_state(node.store, core)[0] != _REMOVED:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the scheduler did not remove placement group {core} within "
                               f"{timeout_s} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


# --- where a task or an actor is placed ------------------------------------------------------


def _fits(request: dict[str, float], bundle: dict[str, float]) -> bool:
    return all(bundle.get(name, 0) >= amount for name, amount in request.items())


def _shown(request: dict[str, float]) -> dict[str, float]:
    return {name: amount for name, amount in request.items() if amount}


def apply(options: _core.TaskOptions, placed: tuple[int, int, int] | None) -> None:
    """Sets a placement (placement()'s) in the core's options of a task or an actor."""
    if placed is not None:
        options.placement_group, options.bundle_index, extra = placed
        options.flags |= extra


def placement(node: _node.Node, opts: dict[str, Any], request: dict[str, float],
              who: str, qualname: str, inherit: bool = False) -> tuple[int, int, int] | None:
    """(the core's group id, bundle index or -1, extra SPEC flags) for a task or actor with
    these options, or None when it is not placed in a group. Raises ValueError for a bundle
    index out of range and for a request no bundle can hold (it could never run). With
    `inherit`, one with no strategy of its own goes where a capturing parent is (a task's
    options are kept across calls, so tasks ask captured_placement() on each call instead)."""
    strategy = opts["scheduling_strategy"]
    if isinstance(strategy, PlacementGroupSchedulingStrategy):
        pg = strategy.placement_group
        index = strategy.placement_group_bundle_index
        capture = strategy.placement_group_capture_child_tasks
    elif opts["placement_group"] != "default":
        warnings.warn(
            "placement_group parameter is deprecated. Use scheduling_strategy="
            "PlacementGroupSchedulingStrategy(...) instead (ember.util.scheduling_strategies).",
            DeprecationWarning, stacklevel=4)
        pg = opts["placement_group"]
        index = opts["placement_group_bundle_index"]
        capture = opts["placement_group_capture_child_tasks"]
    else:
        if opts["placement_group_bundle_index"] != -1:
            raise ValueError(f"option placement_group_bundle_index of {who} needs a placement "
                             "group: pass scheduling_strategy=PlacementGroupSchedulingStrategy(pg, "
                             "placement_group_bundle_index=...)")
        return captured_placement(node, request, qualname) if inherit and strategy is None \
            else None
    if pg is None:
        return None
    if not hasattr(pg, "bundle_specs") or not isinstance(getattr(pg, "id", None),
                                                          PlacementGroupID):
        raise TypeError(f"{who}: placement_group must be a PlacementGroup "
                        f"(ember.util.placement_group()), got {type(pg).__name__}")
    bundles = pg.bundle_specs
    if not isinstance(index, int) or not -1 <= index < len(bundles):
        raise ValueError(f"placement group bundle index {index} is invalid. Valid placement "
                         f"group indexes: 0-{len(bundles) - 1} (or -1 for any bundle)")
    check_fits(request, bundles, index, qualname)
    if capture is None:  # as in Ray: a placed child of a capturing parent captures too
        capture = bool(captured(node))
    return core_id(pg.id), index, _core.SPEC_CAPTURE_CHILD_TASKS if capture else 0


def check_fits(request: dict[str, float], bundles: list[dict[str, float]], index: int,
               qualname: str) -> None:
    """ValueError (Ray's words) unless the request fits the bundle `index` (-1: any)."""
    shown = _shown(request)
    if index >= 0:
        if not _fits(shown, bundles[index]):
            raise ValueError(
                f"Cannot schedule {qualname} with the placement group because the resource "
                f"request {shown} cannot fit into bundle index {index} of the placement group, "
                f"{bundles[index]}.")
    elif not any(_fits(shown, b) for b in bundles):
        raise ValueError(
            f"Cannot schedule {qualname} with the placement group because the resource request "
            f"{shown} cannot fit into any bundles for the placement group, {bundles}.")


def captured(node: _node.Node) -> tuple[int, int, bool] | None:
    """The placement of the running task or actor if its child tasks go there too, else None."""
    placed = node.placement
    return placed if placed is not None and placed[2] else None


def captured_placement(node: _node.Node, request: dict[str, float],
                       qualname: str) -> tuple[int, int, int] | None:
    """Where a task or actor with no strategy of its own goes when its parent captures child
    tasks (any bundle of the parent's group), checked against that group's bundles."""
    placed = captured(node)
    if placed is None:
        return None
    record = record_of(node, placed[0])
    if record is not None:
        check_fits(request, record["bundles"], -1, qualname)
    return placed[0], -1, _core.SPEC_CAPTURE_CHILD_TASKS
