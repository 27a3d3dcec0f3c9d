"""Placement groups: bundles of the node's resources reserved for the tasks and actors placed
in them (ember.util.placement_group, cpp/placement.h)."""

from __future__ import annotations

import copy
import os
import pickle
import time
import warnings

import pytest

import ember
from ember.exceptions import ActorDiedError, TaskPlacementGroupRemoved
from ember.util import (
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from ember.util.scheduling_strategies import PlacementGroupSchedulingStrategy as InGroup

from .conftest import STORE_BYTES


@pytest.fixture
def pg_node():
    ember.init(num_cpus=2, num_gpus=2, resources={"slot": 2}, object_store_memory=STORE_BYTES)
    try:
        yield ember._node.current()
    finally:
        ember.shutdown()


def available(names=("CPU", "GPU", "slot")) -> dict[str, float]:
    free = ember.available_resources()
    return {name: free.get(name, 0.0) for name in names}


def eventually(check, timeout=10.0):
    """Polls `check` (the scheduler publishes what is free once per pass) until it holds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.01)


@ember.remote
def where():
    ctx = ember.get_runtime_context()
    return (get_current_placement_group(), ctx.get_assigned_resources(),
            ember.available_resources().get("CPU", 0.0), os.environ.get("CUDA_VISIBLE_DEVICES"))


@ember.remote
def child_where():
    return ember.get(where.remote())[0]


@ember.remote
def escaping_child_where():
    return ember.get(where.options(scheduling_strategy=InGroup(None)).remote())[0]


@ember.remote(num_cpus=0)
def sleep_in_group(flag: str):
    open(flag, "w").close()
    time.sleep(60)


@ember.remote
class Probe:
    def group(self):
        return get_current_placement_group()


def test_a_group_reserves_its_bundles_until_it_is_removed(pg_node):
    pg = placement_group([{"CPU": 1}, {"slot": 1, "GPU": 1}], name="two")
    assert ember.get(pg.ready(), timeout=10) == pg
    assert pg.wait(5)
    table = placement_group_table(pg)
    assert table["state"] == "CREATED" and table["strategy"] == "PACK"
    assert table["name"] == "two"
    assert table["bundles"] == {0: {"CPU": 1.0}, 1: {"slot": 1.0, "GPU": 1.0}}
    assert table["placement_group_id"] == pg.id.hex()
    eventually(lambda: available() == {"CPU": 1.0, "GPU": 1.0, "slot": 1.0})
    remove_placement_group(pg)
    assert placement_group_table(pg)["state"] == "REMOVED"
    eventually(lambda: available() == {"CPU": 2.0, "GPU": 2.0, "slot": 2.0})
    assert pg.id.hex() in placement_group_table()  # the table keeps removed groups, as Ray's


def test_placed_tasks_draw_from_their_bundle_not_from_the_node(pg_node):
    pg = placement_group([{"CPU": 1}, {"CPU": 1, "GPU": 1}])
    assert pg.wait(5)
    group, assigned, node_cpus, _ = ember.get(where.options(
        scheduling_strategy=InGroup(pg)).remote(), timeout=10)
    assert group == pg and assigned == {"CPU": 1.0}
    assert node_cpus == 0.0  # both CPUs are the group's: the node has none of its own left
    # The GPU bundle's id goes to the task placed in it, the node's other GPU elsewhere.
    _, assigned, _, in_group = ember.get(where.options(
        num_gpus=1, scheduling_strategy=InGroup(pg, placement_group_bundle_index=1)).remote())
    assert assigned == {"CPU": 1.0, "GPU": 1.0}
    remove_placement_group(pg)
    _, _, _, outside = ember.get(where.options(num_gpus=1).remote(), timeout=10)
    assert in_group is not None and outside is not None


def test_a_group_waits_for_resources_and_its_tasks_wait_with_it(pg_node):
    holder = Probe.options(num_cpus=2).remote()  # holds both CPUs for its life
    ember.get(holder.group.remote())
    pg = placement_group([{"CPU": 1}])
    waiting = where.options(scheduling_strategy=InGroup(pg)).remote()
    assert not pg.wait(0.3)
    assert placement_group_table(pg)["state"] == "PENDING"
    assert ember.wait([waiting], timeout=0.1)[1] == [waiting]
    ember.kill(holder)
    assert ember.get(waiting, timeout=10)[0] == pg
    assert pg.wait(5) and placement_group_table(pg)["state"] == "CREATED"


def test_removing_a_group_ends_what_runs_and_waits_in_it(pg_node, tmp_path):
    pg = placement_group([{"CPU": 1}])
    actor = Probe.options(num_cpus=1, scheduling_strategy=InGroup(pg)).remote()
    assert ember.get(actor.group.remote(), timeout=10) == pg
    flag = str(tmp_path / "started")
    running = sleep_in_group.options(scheduling_strategy=InGroup(pg)).remote(flag)
    waiting = where.options(scheduling_strategy=InGroup(pg)).remote()  # the actor holds the CPU
    eventually(lambda: os.path.exists(flag))
    remove_placement_group(pg)
    with pytest.raises(ActorDiedError, match="placement group was removed"):
        ember.get(actor.group.remote(), timeout=10)
    for ref in (running, waiting, where.options(scheduling_strategy=InGroup(pg)).remote()):
        with pytest.raises(TaskPlacementGroupRemoved, match="placement group .* was removed"):
            ember.get(ref, timeout=10)
    eventually(lambda: available()["CPU"] == 2.0)
    assert ember.get(where.remote(), timeout=10)[0] is None  # the node runs tasks as before


def test_a_placed_task_may_capture_its_child_tasks(pg_node):
    pg = placement_group([{"CPU": 1}])  # a parent blocked in get() lends its CPU to its child
    assert pg.wait(5)
    capturing = InGroup(pg, placement_group_capture_child_tasks=True)
    assert ember.get(child_where.options(scheduling_strategy=capturing).remote(), timeout=10) == pg
    assert ember.get(escaping_child_where.options(scheduling_strategy=capturing).remote(),
                     timeout=10) is None
    assert ember.get(child_where.options(scheduling_strategy=InGroup(pg)).remote(),
                     timeout=10) is None
    assert get_current_placement_group() is None  # the driver is in no group


def test_a_named_group_is_found_until_it_is_removed(pg_node):
    pg = placement_group([{"slot": 1}], name="named")
    assert get_placement_group("named") == pg
    remove_placement_group(pg)
    with pytest.raises(ValueError, match="Failed to look up placement group with name: named"):
        get_placement_group("named")


@pytest.mark.parametrize(("args", "match"), [
    (([],), "non-empty list"),
    (([{"CPU": 0}],), "only 0 values"),
    (([{"CPU": "1"}],), "resource dictionaries"),
    (([{"CPU": 1}], "NEAREST"), "Invalid placement group strategy"),
    (([{"CPU": 1}, {"CPU": 1}], "STRICT_SPREAD"), "ember has one node"),
    (([{"CPU": 2}, {"CPU": 1}],), "need 3 CPU in all but this node has 2"),
    (([{"nope": 1}],), "resource 'nope', which this node does not have"),
    (([{"bundle": 1}],), "reserves"),
], ids=["empty", "zero", "not-a-number", "strategy", "strict-spread", "too-big", "unknown",
        "reserved-name"])
def test_a_group_the_node_could_never_hold_is_refused_at_the_call(pg_node, args, match):
    with pytest.raises(ValueError, match=match):
        placement_group(*args)


def test_requests_no_bundle_can_hold_are_refused_at_submission(pg_node):
    pg = placement_group([{"slot": 1}, {"CPU": 1}])
    with pytest.raises(ValueError, match=r"Cannot schedule where .*\{'CPU': 2\} cannot fit into "
                                         r"any bundles"):
        where.options(num_cpus=2, scheduling_strategy=InGroup(pg)).remote()
    with pytest.raises(ValueError, match="bundle index 2 is invalid"):
        where.options(scheduling_strategy=InGroup(pg, placement_group_bundle_index=2)).remote()
    with pytest.raises(ValueError, match="cannot fit into bundle index 0"):
        Probe.options(scheduling_strategy=InGroup(pg, placement_group_bundle_index=0)).remote()
    # An actor of zero CPUs fits the bundle that has none.
    actor = Probe.options(num_cpus=0, resources={"slot": 1},
                          scheduling_strategy=InGroup(pg, placement_group_bundle_index=0)).remote()
    assert ember.get(actor.group.remote(), timeout=10) == pg


def test_handles_compare_by_id_and_travel_to_tasks(pg_node):
    pg = placement_group([{"CPU": 1}])
    assert copy.copy(pg) == pg and copy.copy(pg) in {pg}
    assert pickle.loads(pickle.dumps(pg)) == pg
    assert ember.get(ember.put(pg)) == pg

    @ember.remote(num_cpus=0)
    def bundles_of(group):
        return group.bundle_specs

    assert ember.get(bundles_of.remote(pg), timeout=10) == [{"CPU": 1.0}]


def test_a_task_can_make_and_remove_a_group(pg_node):
    @ember.remote(num_cpus=0)
    def make_and_remove():
        pg = placement_group([{"slot": 2}], strategy="STRICT_PACK")
        ember.get(pg.ready())
        state = placement_group_table(pg)["state"]
        remove_placement_group(pg)
        return pg, state, placement_group_table(pg)["state"]

    pg, made, removed = ember.get(make_and_remove.remote(), timeout=20)
    assert (made, removed) == ("CREATED", "REMOVED")
    assert placement_group_table(pg)["state"] == "REMOVED"  # the driver reads the same table


def test_the_deprecated_placement_group_option_warns_and_places(pg_node):
    pg = placement_group([{"CPU": 1}])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ref = where.options(placement_group=pg, placement_group_bundle_index=0).remote()
    assert any("placement_group parameter is deprecated" in str(w.message) for w in caught)
    assert ember.get(ref, timeout=10)[0] == pg


def test_the_state_api_lists_groups_with_rays_fields(pg_node):
    from ember.util.state import list_placement_groups

    kept = placement_group([{"CPU": 1}], name="kept", lifetime="detached")
    gone = placement_group([{"slot": 1}], name="gone")
    assert kept.wait(5) and gone.wait(5)
    remove_placement_group(gone)
    rows = {row.name: row for row in list_placement_groups()}
    assert rows["kept"].state == "CREATED" and rows["kept"].is_detached
    assert rows["gone"].state == "REMOVED" and not rows["gone"].is_detached
    assert rows["kept"].placement_group_id == kept.id.hex()
    assert rows["kept"].creator_job_id == ember.get_runtime_context().get_job_id()
    removed = list_placement_groups(filters=[("state", "=", "REMOVED")], detail=True)
    assert [row.name for row in removed] == ["gone"]
    assert removed[0].bundles[0]["unit_resources"] == {"slot": 1.0}


def test_the_runtime_context_names_the_group_of_the_task(pg_node):
    @ember.remote
    def ids():
        ctx = ember.get_runtime_context()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            deprecated = ctx.current_placement_group_id
        return ctx.get_placement_group_id(), deprecated, [str(w.message) for w in caught]

    pg = placement_group([{"CPU": 1}])
    hex_id, deprecated, warned = ember.get(ids.options(scheduling_strategy=InGroup(pg)).remote())
    assert hex_id == pg.id.hex() and deprecated == pg.id
    assert any("get_placement_group_id" in w for w in warned)
    outside, nil, _ = ember.get(ids.remote())
    assert outside is None and nil.is_nil()
    assert ember.get_runtime_context().get_placement_group_id() is None
