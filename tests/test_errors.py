"""Bad input gets a clear, typed error at the call that caused it, and nothing is lost."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

import ember
from ember.exceptions import (
    EmberError,
    NotInitializedError,
    ObjectLostError,
    ObjectStoreFullError,
)

from .conftest import STORE_BYTES, run_python


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("no pickling for you")


@pytest.mark.parametrize(
    ("value", "culprit"),
    [(threading.Lock(), "lock"), (Unpicklable(), "no pickling for you"),
     ([1, threading.Lock()], r"FailTuple\(item 1 \[obj=<unlocked _thread.lock")],
    ids=["lock", "reduce", "nested"])
def test_put_of_an_unpicklable_value(node, value, culprit):
    before = node.store.stats()
    with pytest.raises(TypeError, match=r"^Could not serialize the put value [\s\S]*" + culprit):
        ember.put(value)
    assert node.store.stats() == before  # nothing stored


def test_put_of_an_object_ref(node):
    with pytest.raises(TypeError, match="ObjectRef"):
        ember.put(ember.put(1))


@pytest.mark.parametrize("bad", [1, "ref", None, (1,), {"a": 1}], ids=repr)
def test_get_of_a_non_ref(node, bad):
    with pytest.raises(TypeError, match="ObjectRef"):
        ember.get(bad)


def test_get_of_a_list_with_a_non_ref(node):
    with pytest.raises(TypeError, match="item 1"):
        ember.get([ember.put(1), 2])


def test_the_first_put_or_remote_starts_a_node_as_in_ray():
    assert not ember.is_initialized()
    with pytest.raises(NotInitializedError, match=r"ember.init\(\)"):
        ember.cluster_resources()  # starts no node, as in Ray: finds none
    assert not ember.is_initialized()
    try:
        ref = ember.put(1)  # starts the node, with init()'s defaults
        assert ember.is_initialized()
        assert ember.cluster_resources()["CPU"] == os.cpu_count()
        assert ember.get(ref) == 1
    finally:
        ember.shutdown()
    assert not ember.is_initialized()

    @ember.remote
    def one():
        return 1

    try:
        assert ember.get(one.remote()) == 1  # a task's .remote() starts one too
    finally:
        ember.shutdown()
    ember.shutdown()  # twice is fine
    del ref  # a ref that outlives its node releases nothing and does not crash


def test_two_threads_first_calls_start_one_node():
    barrier = threading.Barrier(4)
    tags = []

    def first_call():
        barrier.wait()
        tags.append(ember.get(ember.put(1)))

    threads = [threading.Thread(target=first_call) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert tags == [1, 1, 1, 1]
        assert ember.is_initialized()
    finally:
        ember.shutdown()


@pytest.mark.parametrize("variable", ["EMBER_ENABLE_AUTO_CONNECT", "RAY_ENABLE_AUTO_CONNECT"])
def test_without_auto_connect_calls_before_init_raise(variable):
    result = run_python(
        """
        import ember
        from ember.exceptions import NotInitializedError
        for call in (lambda: ember.put(1), lambda: ember.remote(lambda: 1).remote()):
            try:
                call()
            except NotInitializedError as e:
                print("raised:", e)
        print("initialized:", ember.is_initialized())
        """, env={**os.environ, variable: "0"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "raised: ember is not initialized: call ember.init() first"] * 2 + [
        "initialized: False"]


def test_auto_connect_can_be_switched_off_in_the_program(monkeypatch):
    from ember._private import auto_init_hook  # noqa: PLC0415 (Ray's switch, as its tests use)

    assert not ember.is_initialized()
    monkeypatch.setattr(auto_init_hook, "enable_auto_connect", False)
    with pytest.raises(NotInitializedError):
        ember.put(1)
    monkeypatch.setattr(auto_init_hook, "enable_auto_connect", True)
    try:
        assert ember.get(ember.put(2)) == 2  # the first use starts a node again
    finally:
        ember.shutdown()


def test_a_ref_from_a_previous_node(node):
    ref = ember.put(1)
    ember.shutdown()
    ember.init(num_cpus=1, object_store_memory=STORE_BYTES)
    with pytest.raises(NotInitializedError, match="shut down"):
        ember.get(ref)


def test_a_ref_revived_after_its_object_was_freed_is_lost(node):
    import pickle

    ref = ember.put(np.ones(1000))
    blob = pickle.dumps(ref)  # out of band: the pickle holds no reference
    hex_id = ref.hex()
    del ref  # the last reference: the object is freed
    revived = pickle.loads(blob)
    with pytest.raises(ObjectLostError, match=f"{hex_id} is not in the store: it was freed"):
        ember.get(revived, timeout=10)


def test_init_twice(node):
    with pytest.raises(RuntimeError, match="ignore_reinit_error"):
        ember.init()
    assert ember.init(ignore_reinit_error=True).node_id == node.info.node_id


@pytest.mark.parametrize(
    "kwargs", [{"num_cpus": -1}, {"num_cpus": 1.5}, {"object_store_memory": 10}], ids=str
)
def test_init_with_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        ember.init(**kwargs)
    assert not ember.is_initialized()


def test_object_larger_than_the_store(node):
    big = np.zeros(STORE_BYTES // 8 + 1024)
    with pytest.raises(ObjectStoreFullError) as info:
        ember.put(big)
    assert isinstance(info.value, MemoryError) and isinstance(info.value, EmberError)
    message = str(info.value)
    assert "256.0 MiB" in message  # the store's size
    assert "object_store_memory" in message  # what to do about it
    # The node keeps working.
    assert ember.get(ember.put(np.arange(10))).sum() == 45
    node.store.check()


def test_a_store_full_of_live_objects_spills_instead_of_failing(node):
    chunk = np.zeros(STORE_BYTES // 4, dtype=np.uint8)
    refs = [ember.put(chunk) for _ in range(5)]  # more than fits: the oldest are spilled
    assert node.store.stats()["spilled_objects"] >= 1
    assert all(ember.get(r).nbytes == chunk.nbytes for r in refs)


class _Custom(ValueError):
    pass


@ember.remote
def _raise_custom():
    raise _Custom("deep down")


@ember.remote
def _get_nested(levels):
    ref = _raise_custom.remote() if levels == 1 else _get_nested.remote(levels - 1)
    return ember.get(ref)


@pytest.mark.parametrize("levels", [1, 2])
def test_an_exception_keeps_its_class_through_intermediate_tasks(node, levels):
    with pytest.raises(_Custom) as info:
        ember.get(_get_nested.remote(levels))
    assert isinstance(info.value, ember.exceptions.TaskError)
    assert "deep down" in str(info.value)


def test_rays_exception_names_and_their_family():
    ex = ember.exceptions
    for name in ("ObjectFreedError", "OwnerDiedError", "ObjectReconstructionFailedError",
                 "ObjectFetchTimedOutError", "ReferenceCountingAssertionError"):
        assert issubclass(getattr(ex, name), ex.ObjectLostError), name
    for name in ("ActorDiedError", "ActorUnavailableError"):
        assert issubclass(getattr(ex, name), ex.RayActorError), name
    assert issubclass(ex.ActorAlreadyExistsError, ValueError)
    assert issubclass(ex.RaySystemError, ex.RayError) and ex.RaySystemError is not ex.RayError
    for name in ex.__all__:
        assert issubclass(getattr(ex, name), ex.RayError), name


def test_a_taken_actor_name_raises_actor_already_exists(node):
    @ember.remote
    class Named:
        def ping(self):
            return 1

    a = Named.options(name="only-one").remote()
    assert ember.get(a.ping.remote()) == 1
    with pytest.raises(ember.exceptions.ActorAlreadyExistsError, match="only-one"):
        Named.options(name="only-one").remote()


def test_inheriting_from_an_actor_class_raises():
    @ember.remote
    class Base:
        pass

    with pytest.raises(ember.actor.ActorClassInheritanceException, match="Base"):
        class Derived(Base):  # noqa: F841
            pass


@ember.remote
def _fails_soon():
    raise ValueError("first to fail")


@ember.remote
def _sleeps(seconds):
    import time  # noqa: PLC0415

    time.sleep(seconds)


@pytest.mark.parametrize("order", ["failure_first", "failure_last"])
def test_get_of_a_list_raises_a_failure_without_waiting_for_the_rest(node, order):
    slow = _sleeps.remote(60)
    bad = _fails_soon.remote()
    refs = [bad, slow] if order == "failure_first" else [slow, bad]
    with pytest.raises(ValueError, match="first to fail"):
        ember.get(refs, timeout=30)  # long before the sleeper ends
    ember.cancel(slow, force=True)


def test_get_of_a_list_raises_when_an_actor_dies(node):
    @ember.remote
    class Fragile:
        def die(self):
            import os  # noqa: PLC0415

            os._exit(1)

    slow = _sleeps.remote(60)
    with pytest.raises(ember.exceptions.ActorDiedError):
        ember.get([slow, Fragile.remote().die.remote()], timeout=30)
    ember.cancel(slow, force=True)
