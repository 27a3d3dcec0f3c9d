"""ember.util.queue.Queue: Ray's ray.util.queue on ember."""

from __future__ import annotations

import asyncio
import queue as stdlib_queue
import time

import pytest

import ember
from ember.util.queue import Empty, Full, Queue


@pytest.fixture(scope="module")
def node(shared_node):
    return shared_node


def test_fifo_sizes_and_nowait(node):
    q = Queue(maxsize=2)
    assert q.empty() and not q.full() and len(q) == 0 and q.maxsize == 2
    q.put(1)
    q.put_nowait("two")
    assert q.full() and q.qsize() == 2 and q.size() == 2
    with pytest.raises(Full):
        q.put_nowait(3)
    with pytest.raises(Full):
        q.put(3, block=False)
    assert [q.get(), q.get_nowait()] == [1, "two"]
    with pytest.raises(Empty):
        q.get_nowait()
    with pytest.raises(Empty):
        q.get(block=False)
    assert issubclass(Empty, stdlib_queue.Empty) and issubclass(Full, stdlib_queue.Full)


def test_blocking_with_timeouts(node):
    q = Queue(maxsize=1)
    start = time.monotonic()
    with pytest.raises(Empty):
        q.get(timeout=0.2)
    assert time.monotonic() - start >= 0.2
    q.put("x")
    with pytest.raises(Full):
        q.put("y", timeout=0.2)
    with pytest.raises(ValueError, match="non-negative"):
        q.get(timeout=-1)
    with pytest.raises(ValueError, match="non-negative"):
        q.put("z", timeout=-1)
    assert q.get(timeout=5) == "x"


def test_batches_are_all_or_nothing(node):
    q = Queue(maxsize=3)
    q.put_nowait_batch([1, 2])
    with pytest.raises(Full):
        q.put_nowait_batch([3, 4])
    assert q.qsize() == 2
    with pytest.raises(Empty):
        q.get_nowait_batch(3)
    assert q.get_nowait_batch(2) == [1, 2]
    with pytest.raises(TypeError):
        q.put_nowait_batch(5)
    with pytest.raises(TypeError):
        q.get_nowait_batch("1")
    with pytest.raises(ValueError):
        q.get_nowait_batch(-1)


@ember.remote
def producer(q, items):
    for item in items:
        q.put(item)
    return len(items)


@ember.remote
class Consumer:
    def __init__(self, q):
        self.q = q

    def take(self, n):
        return [self.q.get(timeout=30) for _ in range(n)]


def test_shared_by_tasks_and_actors(node):
    q = Queue()
    consumer = Consumer.remote(q)
    taken = consumer.take.remote(10)  # waits in the queue's actor until items come
    assert ember.get([producer.remote(q, range(5)), producer.remote(q, range(5, 10))]) == [5, 5]
    assert sorted(ember.get(taken, timeout=30)) == list(range(10))
    assert q.empty()


def test_a_blocked_get_is_served_by_a_later_put(node):
    q = Queue()
    waiting = q.actor.get.remote(None)  # a blocked get, as Queue.get makes it
    time.sleep(0.1)
    q.put("late")
    assert ember.get(waiting, timeout=10) == "late"


def test_waiters_are_served_in_order_and_none_that_gave_up_loses_an_item(node):
    q = Queue(maxsize=1)
    gave_up = q.actor.get.remote(0.1)  # times out before anything comes
    first, second = q.actor.get.remote(None), q.actor.get.remote(None)
    with pytest.raises(Empty):
        ember.get(gave_up, timeout=10)
    q.put("a")
    q.put("b")  # served straight to the second waiter: the queue stays empty
    assert ember.get([first, second], timeout=10) == ["a", "b"]
    assert q.empty()
    q.put("full")
    blocked = q.actor.put.remote("next", None)  # waits for room
    late = q.actor.put.remote("later", 0.1)  # gives up waiting
    with pytest.raises(Full):
        ember.get(late, timeout=10)
    assert q.get() == "full"
    ember.get(blocked, timeout=10)  # the get made room: it went in, and only it
    assert q.get() == "next" and q.empty()
    assert q.get_nowait_batch(0) == [] and q.size() == 0


def test_async_put_and_get(node):
    q = Queue(maxsize=1)

    async def main():
        await q.put_async("a")
        with pytest.raises(Full):
            await q.put_async("b", timeout=0.1)
        with pytest.raises(Full):
            await q.put_async("b", block=False)
        got = await q.get_async(timeout=5)
        with pytest.raises(Empty):
            await q.get_async(block=False)
        return got

    assert asyncio.run(main()) == "a"


def test_shutdown_ends_the_actor(node):
    q = Queue()
    q.put(1)
    actor = q.actor
    q.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        q.put(2)
    with pytest.raises(ember.exceptions.ActorDiedError):
        ember.get(actor.qsize.remote(), timeout=10)
    q.shutdown()  # a second time does nothing
    forced = Queue()
    forced.shutdown(force=True)
    assert forced.actor is None


def test_actor_options_reserve_resources(node):
    def cpus():
        return ember.available_resources().get("CPU", 0.0)

    def settle(predicate):
        deadline = time.monotonic() + 10
        while not predicate() and time.monotonic() < deadline:
            time.sleep(0.02)
        return predicate()

    assert settle(lambda: cpus() == 2.0)
    q = Queue()  # an actor holds no CPU once made
    q.put(1)
    assert cpus() == 2.0
    q.shutdown()
    q = Queue(actor_options={"num_cpus": 2})
    q.put(1)
    # All taken: left out of available_resources(), as Ray does.
    assert settle(lambda: "CPU" not in ember.available_resources())
    q.shutdown()
    assert settle(lambda: cpus() == 2.0)
