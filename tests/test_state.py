"""ember.util.state: Ray's list_* calls on the node, with Ray's field names and arguments."""

from __future__ import annotations

import logging
import os
import time

import pytest

import ember
from ember.util.state import (
    get_actor,
    get_objects,
    get_task,
    list_actors,
    list_nodes,
    list_objects,
    list_tasks,
)


@ember.remote
class Named:
    def pid(self):
        return os.getpid()


def test_records_are_dicts_that_read_as_attributes(node):
    ref = ember.put(b"x" * 100)
    (row,) = list_objects()
    assert row["object_id"] == row.object_id == ref.hex()
    assert row.asdict() == dict(row)
    assert set(row) == {"object_id", "object_size", "state", "pid", "ip", "reference_count"}
    assert row.pid == os.getpid() and row.reference_count == 1
    with pytest.raises(AttributeError):
        row.no_such_field  # noqa: B018


def test_detail_adds_the_detail_columns(node):
    ref = ember.put(1)
    (plain,) = list_objects()
    (detailed,) = list_objects(detail=True)
    assert {"pin_count", "worker_holders"} <= set(detailed) and "pin_count" not in plain
    assert {k: detailed[k] for k in plain} == dict(plain) and plain.object_id == ref.hex()


def test_actors_show_their_name_and_namespace(node):
    a = Named.options(name="the-one").remote()
    b = Named.remote()
    ember.get([a.pid.remote(), b.pid.remote()])
    rows = {row.actor_id: row for row in list_actors()}
    assert rows[a._actor_id.hex()].name == "the-one"
    assert rows[a._actor_id.hex()].ray_namespace == ember.get_runtime_context().namespace
    assert rows[b._actor_id.hex()].name == "" and rows[b._actor_id.hex()].state == "ALIVE"
    assert "death_cause" not in rows[b._actor_id.hex()]
    found = get_actor(a._actor_id.hex())
    assert found.class_name == "Named" and found.death_cause == ""


def test_filters_select_rows(node):
    refs = [ember.put(i) for i in range(3)]
    wanted = refs[1].hex()
    assert [r.object_id for r in list_objects(filters=[("object_id", "=", wanted)])] == [wanted]
    others = list_objects(filters=[("object_id", "!=", wanted)])
    assert sorted(r.object_id for r in others) == sorted(r.hex() for r in refs if r.hex() != wanted)
    # A value given as a string matches a number, as in Ray.
    assert len(list_objects(filters=[("pid", "=", str(os.getpid()))])) == 3


@pytest.mark.parametrize(("filters", "message"), [
    ([("no_such", "=", 1)], "not a column to filter on; the columns are object_id"),
    ([("pid", ">", 1)], "predicate of a filter is '=' or '!='"),
    ([("pid", "=")], r"a filter is \(key, '=' or '!=', value\)"),
])
def test_bad_filters_are_refused(node, filters, message):
    with pytest.raises(ValueError, match=message):
        list_objects(filters=filters)


def test_limit_cuts_the_listing_and_says_so(node, caplog):
    refs = [ember.put(i) for i in range(5)]
    with caplog.at_level(logging.WARNING, logger="ember.util.state"):
        assert len(list_objects(limit=2)) == 2
    assert "2 of 5 records shown (limit=2)" in caplog.text
    assert len(list_objects()) == len(refs)
    with pytest.raises(ValueError, match="limit"):
        list_objects(limit=0)


def test_options_that_do_not_apply_to_one_node_are_refused(node):
    with pytest.raises(ValueError, match="address"):
        list_tasks(address="10.0.0.1:6379")
    with pytest.raises(ValueError, match="timeout"):
        list_actors(timeout=-1)


def test_get_task_get_objects_and_list_nodes(node):
    @ember.remote
    def sleeps():
        time.sleep(30)

    ref = sleeps.remote()
    task = None
    for _ in range(500):
        task = get_task("00" * 8 + ref.hex())  # a task id: its first return's, in 24 bytes
        if task is not None and task.state == "RUNNING":
            break
        time.sleep(0.01)
    assert task.name == "sleeps" and task.type == "NORMAL_TASK" and "running_s" in task
    assert get_task("00" * 28) is None
    ember.cancel(ref, force=True)
    held = ember.put(b"y")
    (obj,) = get_objects(held.hex())
    assert obj.object_id == held.hex() and "pin_count" in obj
    (this,) = list_nodes()
    assert this.is_head_node and this.state == "ALIVE"
    assert this.resources_total["CPU"] == 2 and this.node_id == ember.get_runtime_context().get_node_id()


def test_summaries_count_tasks_actors_and_objects(node):
    from ember.util.state import summarize_actors, summarize_objects, summarize_tasks

    @ember.remote
    def ok():
        return 1

    @ember.remote
    def bad():
        raise ValueError("no")

    @ember.remote
    class Keeper:
        def ping(self):
            return 1

    ember.get([ok.remote() for _ in range(3)])
    ember.wait([bad.remote()])
    keeper = Keeper.remote()
    ember.get(keeper.ping.remote())
    held = ember.put(b"x" * 1000)
    deadline = time.monotonic() + 5  # finished records are read back as their workers end
    while True:
        tasks = summarize_tasks()["cluster"]
        if tasks["summary"].get("ok", {}).get("state_counts") == {"FINISHED": 3} and \
                "Keeper.ping" in tasks["summary"]:
            break
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert tasks["summary"]["bad"]["state_counts"] == {"FAILED": 1}
    assert tasks["summary"]["Keeper.ping"]["type"] == "ACTOR_TASK"
    assert tasks["total_tasks"] == 4 and tasks["total_actor_tasks"] == 1
    assert tasks["total_actor_scheduled"] == 1
    actors = summarize_actors()["cluster"]
    assert actors["summary"]["Keeper"]["state_counts"] == {"ALIVE": 1}
    assert actors["total_actors"] == 1
    objects = summarize_objects()["cluster"]
    assert objects["total_objects"] >= 1 and objects["total_size_mb"] > 0
    assert objects["summary"]["disabled"]["total_objects"] == objects["total_objects"]
    del held


def test_list_workers_names_the_driver_and_the_live_workers(node):
    from ember.util.state import list_workers

    @ember.remote
    def worker_id():
        ctx = ember.get_runtime_context()
        return ctx.get_worker_id(), os.getpid()

    wid, pid = ember.get(worker_id.remote())
    rows = {row.pid: row for row in list_workers()}
    assert rows[os.getpid()].worker_type == "DRIVER"
    assert rows[pid].worker_type == "WORKER" and rows[pid].worker_id == wid
    assert all(row.is_alive and row.node_id == ember.get_runtime_context().get_node_id()
               for row in rows.values())
    assert [row.pid for row in list_workers(filters=[("worker_type", "=", "DRIVER")])] == [
        os.getpid()]
