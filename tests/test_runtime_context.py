"""get_runtime_context() and the id classes: what the calling code learns of where it runs."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import warnings

import pytest

import ember
from ember import ActorID, JobID, NodeID, TaskID, WorkerID


@pytest.fixture(scope="module")
def ctx_node():
    ember.init(num_cpus=4, object_store_memory=128 << 20)
    try:
        yield ember._node.current()
    finally:
        ember.shutdown()


@pytest.mark.parametrize(("cls", "size"), [(JobID, 4), (ActorID, 16), (TaskID, 24),
                                            (NodeID, 28), (WorkerID, 28)])
def test_id_classes_have_rays_sizes_and_methods(cls, size):
    raw = os.urandom(size)
    one = cls(raw)
    assert one == cls.from_binary(raw) == cls.from_hex(one.hex()) and one.binary() == raw
    assert hash(one) == hash(cls(raw)) and one != cls.nil()
    assert cls.size() == one.size() == size
    assert cls.nil().binary() == b"\xff" * size and cls.nil().is_nil() and not one.is_nil()
    with pytest.raises(ValueError, match=f"takes {size} bytes"):
        cls(raw + b"x")


def test_the_driver_is_no_task_and_no_actor(ctx_node):
    c = ember.get_runtime_context()
    assert c.get_task_id() is None and c.get_actor_id() is None and c.get_task_name() is None
    assert NodeID.from_hex(c.get_node_id()).hex() == c.get_node_id() == ember.nodes()[0]["NodeID"]
    assert set(c.get()) == {"job_id", "node_id", "namespace"}
    assert c.get_assigned_resources() == {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert c.node_id.hex() == c.get_node_id() and c.job_id.hex() == c.get_job_id()
    assert any("Use get_node_id() instead" in str(w.message) for w in caught)
    assert c.get_session_name() == os.path.basename(ctx_node.session_dir)


def test_a_task_knows_its_ids_name_function_and_resources(ctx_node):
    @ember.remote
    def where():
        c = ember.get_runtime_context()
        return (c.get_task_id(), c.get_task_name(), c.get_task_function_name(),
                c.get_assigned_resources(), sorted(c.get()), c.get_session_name(),
                c.get_job_id())

    first, second = ember.get([where.remote(), where.options(name="named", num_cpus=2).remote()])
    assert TaskID.from_hex(first[0]) != TaskID.from_hex(second[0])
    assert first[1:4] == ("where", f"{__name__}.where", {"CPU": 1.0})
    assert second[1] == "named" and second[3] == {"CPU": 2.0}
    assert first[4] == ["job_id", "namespace", "node_id", "task_id"]
    assert first[5] == ember.get_runtime_context().get_session_name()
    assert first[6] == ember.get_runtime_context().get_job_id()


@ember.remote(num_returns=2)
def two_with_my_task_id():
    task_id = ember.get_runtime_context().get_task_id()
    return task_id, task_id


@ember.remote
def task_id_of(refs):
    return refs[0].task_id(), ember.get_runtime_context().get_task_id()


def test_an_objects_ref_names_the_task_that_made_it_and_its_job(ctx_node):
    first, second = two_with_my_task_id.remote()
    made_by = ember.get(first)
    assert first.task_id().hex() == second.task_id().hex() == made_by
    assert isinstance(first.task_id(), TaskID) and first.job_id().hex() == \
        ember.get_runtime_context().get_job_id()
    # A ref passed to another task (nested in a list, so pickled) keeps its task's id.
    seen, own = ember.get(task_id_of.remote([second]))
    assert seen == second.task_id() and own != made_by
    generator = streamed.remote()
    items = list(generator)  # a generator's items: the generator task's id
    assert [item.task_id().hex() for item in items] == ember.get(items)
    put = ember.put(1)
    assert put.task_id() != first.task_id() and put.job_id() == first.job_id()


@ember.remote
def streamed():
    yield ember.get_runtime_context().get_task_id()
    yield ember.get_runtime_context().get_task_id()


@ember.remote
class Probe:
    def ids(self):
        c = ember.get_runtime_context()
        return (c.get_actor_id(), c.get_task_id(), c.get_task_function_name(),
                c.get_assigned_resources(), c.get_actor_name(), sorted(c.get()))

    def echo(self, value):
        return value

    def through_myself(self, value):
        return ember.get_runtime_context().current_actor.echo.remote(value)

    def pid(self):
        return os.getpid()

    def reconstructed(self):
        return ember.get_runtime_context().was_current_actor_reconstructed


def test_an_actor_knows_its_id_name_and_held_resources(ctx_node):
    plain, named = Probe.remote(), Probe.options(name="probe", num_cpus=1).remote()
    (actor_id, task_id, function, held, name, keys), second = ember.get(
        [plain.ids.remote(), named.ids.remote()])
    assert repr(plain) == f"Actor(Probe, {actor_id})" and ActorID.from_hex(actor_id)
    assert task_id is not None and function == f"{__name__}.Probe.ids"
    assert held == {} and name == ""  # no CPU held unless asked; no name: "", as in Ray
    assert keys == ["actor_id", "job_id", "namespace", "node_id", "task_id"]
    assert second[3] == {"CPU": 1.0} and second[4] == "probe"
    assert ember.get(ember.get(plain.through_myself.remote("hi"))) == "hi"
    with pytest.raises(RuntimeError, match="only available inside an actor"):
        ember.get_runtime_context().current_actor  # noqa: B018


def test_a_restarted_actor_knows_it(ctx_node):
    a = Probe.options(max_restarts=1).remote()
    assert ember.get(a.reconstructed.remote()) is False
    os.kill(ember.get(a.pid.remote()), signal.SIGKILL)
    deadline = time.monotonic() + 20
    while True:
        try:
            assert ember.get(a.reconstructed.remote(), timeout=20) is True
            break
        except ember.exceptions.ActorDiedError:  # calls made while it was down
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_concurrent_calls_of_async_and_threaded_actors_each_see_their_own(ctx_node):
    @ember.remote
    class Async:
        async def slow_id(self):
            task_id = ember.get_runtime_context().get_task_id()
            await asyncio.sleep(0.2)  # the others start meanwhile
            return task_id, ember.get_runtime_context().get_task_id()

    @ember.remote(max_concurrency=3)
    class Threaded:
        def slow_id(self):
            task_id = ember.get_runtime_context().get_task_id()
            time.sleep(0.2)
            return task_id, ember.get_runtime_context().get_task_id()

    for actor in (Async.remote(), Threaded.remote()):
        results = ember.get([actor.slow_id.remote() for _ in range(3)])
        assert all(before == after for before, after in results)
        assert len({before for before, _ in results}) == 3
