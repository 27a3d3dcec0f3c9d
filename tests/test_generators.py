"""Generator tasks and methods: streaming (the default for a generator), "dynamic", and a
static num_returns; errors, abandonment, cancel, crashes and retries, and what is left in the
store after each."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

import ember
from ember.exceptions import GetTimeoutError, TaskCancelledError, TaskError, WorkerCrashedError

pytestmark = pytest.mark.timeout(60)


def objects_in_store(node) -> int:
    return node.store.stats()["num_objects"] + sum(
        1 for o in node.store.list_objects() if o["state"] == "PENDING")


def wait_for(predicate, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@ember.remote
def count_to(n, fail_at=None):
    for i in range(n):
        if i == fail_at:
            raise ValueError(f"failed at {i}")
        yield i


def test_a_generator_function_streams_its_items_by_default(node):
    gen = count_to.remote(5)
    assert isinstance(gen, ember.ObjectRefGenerator)
    refs = list(gen)
    assert all(isinstance(r, ember.ObjectRef) for r in refs)
    assert ember.get(refs) == [0, 1, 2, 3, 4]
    with pytest.raises(StopIteration):
        next(gen)
    assert gen.is_finished()
    assert ember.get(gen.completed()) == 5  # the task's own return: how many items


def test_items_are_available_while_the_generator_still_runs(node, tmp_path):
    gate = tmp_path / "gate"

    @ember.remote
    def slow():
        yield "first"
        while not gate.exists():  # the second item only after the caller has the first
            time.sleep(0.01)
        yield "second"

    gen = slow.remote()
    assert ember.get(next(gen), timeout=10) == "first"
    assert not gen.next_ready()
    with pytest.raises(GetTimeoutError):
        gen._next_sync(0.05)
    gate.touch()
    assert ember.get(next(gen), timeout=10) == "second"
    assert list(gen) == []


def test_an_exception_is_the_failing_item_and_ends_the_stream(node):
    gen = count_to.remote(10, fail_at=2)
    assert ember.get(next(gen)) == 0
    assert ember.get(next(gen)) == 1
    bad = next(gen)
    with pytest.raises(ValueError, match="failed at 2") as info:
        ember.get(bad)
    assert isinstance(info.value, TaskError)
    assert list(gen) == []


def test_an_empty_generator_ends_at_once(node):
    assert list(count_to.remote(0)) == []


def test_a_failure_before_the_first_yield_is_the_first_item(node):
    @ember.remote
    def broken(x):
        raise KeyError(x)
        yield  # a generator function all the same

    gen = broken.remote("k")
    with pytest.raises(KeyError):
        ember.get(next(gen))
    assert list(gen) == []


def test_wait_on_a_generator_says_when_its_next_item_is_ready(node, tmp_path):
    gate = tmp_path / "gate"

    @ember.remote
    def gated():
        while not gate.exists():
            time.sleep(0.01)
        yield 1

    gen = gated.remote()
    ready, pending = ember.wait([gen], timeout=0.1)
    assert (ready, pending) == ([], [gen])
    gate.touch()
    ready, pending = ember.wait([gen], timeout=10)
    assert ready == [gen]
    assert ember.get(next(gen)) == 1
    ready, _ = ember.wait([gen], timeout=10)  # the end of the stream is ready too
    assert ready == [gen]


def test_a_consumed_stream_leaves_nothing_in_the_store(node):
    assert list(count_to.remote(0)) == []  # its function is in the store from now on
    before = objects_in_store(node)
    gen = count_to.remote(100)
    assert sum(ember.get(r) for r in gen) == sum(range(100))
    del gen
    assert wait_for(lambda: objects_in_store(node) == before)


def test_abandoning_a_generator_ends_its_task_and_frees_its_items(node, tmp_path):
    progress = tmp_path / "progress"

    @ember.remote
    def endless(path):
        i = 0
        try:
            while True:
                with open(path, "w") as f:
                    f.write(str(i))
                yield i
                i += 1
                time.sleep(0.001)
        finally:
            with open(path + ".closed", "w") as f:
                f.write("closed")

    before = objects_in_store(node)
    gen = endless.remote(str(progress))
    assert ember.get(next(gen)) == 0
    del gen
    assert wait_for(lambda: os.path.exists(str(progress) + ".closed"))  # the generator stopped
    # Only its function is left (while `endless` lives).
    assert wait_for(lambda: objects_in_store(node) == before + 1)
    # The worker is free again for other tasks.
    assert ember.get(ember.remote(lambda: 7).remote(), timeout=10) == 7


def test_items_taken_outlive_the_generator(node):
    gen = count_to.remote(3)
    first = next(gen)
    gen.close()
    del gen
    assert ember.get(first) == 0


def test_cancel_of_a_generator_ends_its_stream_with_task_cancelled(node):
    @ember.remote
    def forever():
        i = 0
        while True:
            yield i
            i += 1
            time.sleep(0.01)

    gen = forever.remote()
    assert ember.get(next(gen)) == 0
    ember.cancel(gen)
    with pytest.raises(TaskCancelledError):
        for ref in gen:
            ember.get(ref, timeout=10)


def test_a_worker_crash_mid_stream_is_retried_without_repeating_items(node, tmp_path):
    marker = tmp_path / "crashed"

    @ember.remote(max_retries=1)
    def crash_once(path):
        for i in range(6):
            if i == 3 and not os.path.exists(path):
                open(path, "w").close()
                os.kill(os.getpid(), signal.SIGKILL)
            yield i

    gen = crash_once.remote(str(marker))
    assert [ember.get(r, timeout=20) for r in gen] == [0, 1, 2, 3, 4, 5]


def test_a_worker_crash_without_retries_fails_the_next_item(node):
    @ember.remote(max_retries=0)
    def dies():
        yield 1
        os.kill(os.getpid(), signal.SIGKILL)
        yield 2

    gen = dies.remote()
    assert ember.get(next(gen), timeout=10) == 1
    with pytest.raises(WorkerCrashedError):
        ember.get(next(gen), timeout=20)
    assert list(gen) == []


def test_async_iteration(node):
    async def consume():
        return [await ref async for ref in count_to.remote(4)]

    assert asyncio.run(consume()) == [0, 1, 2, 3]


def test_generator_methods_of_threaded_and_async_actors(node):
    @ember.remote
    class Source:
        def items(self, n):
            yield from range(n)

        async def async_items(self, n):
            for i in range(n):
                await asyncio.sleep(0)
                yield i * 10

    s = Source.remote()
    assert isinstance(s.items.remote(3), ember.ObjectRefGenerator)
    assert [ember.get(r) for r in s.items.remote(3)] == [0, 1, 2]
    assert [ember.get(r) for r in s.async_items.remote(3)] == [0, 10, 20]


def test_a_nested_task_consumes_a_stream(node):
    @ember.remote
    def total(n):
        return sum(ember.get(r) for r in count_to.remote(n))

    assert ember.get(total.remote(10), timeout=20) == 45


def test_dynamic_returns_one_ref_to_the_list_of_items(node):
    ref = count_to.options(num_returns="dynamic").remote(3)
    assert isinstance(ref, ember.ObjectRef)
    items = ember.get(ref)
    assert isinstance(items, ember.DynamicObjectRefGenerator)
    assert len(items) == 3
    assert ember.get(list(items)) == [0, 1, 2]
    with pytest.raises(ValueError, match="failed at 1"):
        ember.get(count_to.options(num_returns="dynamic").remote(3, fail_at=1))


def test_a_static_num_returns_takes_that_many_yields(node):
    a, b = count_to.options(num_returns=2).remote(2)
    assert ember.get([a, b]) == [0, 1]
    # More yields than returns: the first ones are the returns, and the generator is closed
    # after one more (as in Ray), so it never reaches its failure at item 3.
    a, b = count_to.options(num_returns=2).remote(5, fail_at=3)
    assert ember.get([a, b]) == [0, 1]
    with pytest.raises(ValueError, match="yielded 1 values but num_returns=2"):
        ember.get(count_to.options(num_returns=2).remote(1)[1])


def test_streaming_needs_a_generator_function():
    def plain():
        return 1

    with pytest.raises(ValueError, match="can only be used with generator functions"):
        ember.remote(num_returns="streaming")(plain)
    with pytest.raises(ValueError, match="can only be used with generator functions"):
        ember.remote(plain).options(num_returns="streaming")


def test_a_generator_cannot_be_passed_to_a_task(node):
    gen = count_to.remote(1)
    with pytest.raises(TypeError, match="ObjectRefGenerator cannot be pickled"):
        ember.remote(lambda g: g).remote(gen)


def test_refused_generator_options_name_the_option(node):
    with pytest.raises(ValueError, match="_generator_backpressure_num_objects"):
        count_to.options(_generator_backpressure_num_objects=2).remote(3)
    with pytest.raises(ValueError, match="retry_exceptions"):
        count_to.options(retry_exceptions=True).remote(3)
