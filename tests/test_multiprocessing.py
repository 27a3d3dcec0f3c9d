"""ember.util.multiprocessing.Pool: a drop-in for multiprocessing.Pool on ember's actors."""

from __future__ import annotations

import os
import time

import pytest

import ember
from ember.util.multiprocessing import Pool, TimeoutError


@pytest.fixture(scope="module")
def node(shared_node):
    return shared_node


@pytest.fixture
def pool(node):
    p = Pool(processes=2)
    yield p
    p.terminate()


def square(x):
    return x * x


def add(a, b):
    return a + b


def fail_on_three(x):
    if x == 3:
        raise ValueError("three")
    return x


def nap(seconds):
    time.sleep(seconds)
    return seconds


def test_map_starmap_apply(pool):
    assert pool.map(square, range(20)) == [x * x for x in range(20)]
    assert pool.map(square, range(20), chunksize=7) == [x * x for x in range(20)]
    assert pool.map(square, []) == []
    assert pool.starmap(add, [(1, 2), (3, 4)]) == [3, 7]
    assert pool.apply(add, (1, 2)) == 3
    assert pool.apply(add, (1,), {"b": 5}) == 6
    with pytest.raises(ValueError, match="three"):
        pool.map(fail_on_three, range(5))
    with pytest.raises(ValueError, match="three"):
        pool.apply(fail_on_three, (3,))


def test_async_results_and_callbacks(pool):
    got, errors = [], []
    r = pool.map_async(square, range(5), callback=got.append)
    assert r.get(timeout=30) == [0, 1, 4, 9, 16]
    bad = pool.apply_async(fail_on_three, (3,), error_callback=errors.append)
    with pytest.raises(ValueError):
        bad.get(timeout=30)
    assert not bad.successful() and r.successful()
    deadline = time.monotonic() + 10
    while (not got or not errors) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got == [[0, 1, 4, 9, 16]] and isinstance(errors[0], ValueError)
    slow = pool.apply_async(nap, (1.0,))
    assert not slow.ready()
    with pytest.raises(ValueError, match="not ready"):
        slow.successful()
    with pytest.raises(TimeoutError):
        slow.get(timeout=0.05)
    slow.wait()
    assert slow.ready() and slow.get() == 1.0


def test_imap_in_order_and_unordered(pool):
    assert list(pool.imap(square, range(10))) == [x * x for x in range(10)]
    assert list(pool.imap(square, iter(range(10)), chunksize=3)) == [x * x for x in range(10)]
    unordered = pool.imap_unordered(nap, [0.5, 0.0, 0.0])
    assert unordered.next(timeout=30) == 0.0  # not behind the slow one
    assert sorted([*unordered]) == [0.0, 0.5]
    it = pool.imap(nap, [1.0])
    with pytest.raises(TimeoutError):
        it.next(timeout=0.05)
    assert it.next(timeout=30) == 1.0
    with pytest.raises(StopIteration):
        next(it)
    with pytest.raises(TypeError, match="not iterable"):
        pool.imap(square, 3)
    # As in Ray's Pool: a failing item's exception is its result; the others are unharmed.
    results = list(pool.imap(fail_on_three, range(5), chunksize=2))
    assert results[:3] == [0, 1, 2] and isinstance(results[3], ValueError) and results[4] == 4


def _mark(directory):
    with open(os.path.join(directory, str(os.getpid())), "w") as f:
        f.write("initialized")


def test_the_pool_is_up_once_made(node, tmp_path):
    with Pool(2, initializer=_mark, initargs=(str(tmp_path),)):
        assert len(os.listdir(tmp_path)) == 2  # both initializers ran before Pool() returned


def _remember_pid_in_env(tag):
    os.environ["EMBER_POOL_TEST_INIT"] = tag


def _initialized(_):
    return os.environ.get("EMBER_POOL_TEST_INIT"), os.getpid()


def test_initializer_and_maxtasksperchild(node):
    with Pool(2, initializer=_remember_pid_in_env, initargs=("ready",)) as p:
        tags = {tag for tag, _ in p.map(_initialized, range(8), chunksize=1)}
        assert tags == {"ready"}
    with Pool(1, maxtasksperchild=1) as p:
        pids = {pid for _, pid in p.map(_initialized, range(3), chunksize=1)}
        assert len(pids) == 3  # a fresh process after each chunk


def test_close_join_terminate(node):
    p = Pool(2)
    r = p.map_async(nap, [0.2, 0.2])
    with pytest.raises(ValueError, match="still running"):
        p.join()
    p.close()
    with pytest.raises(ValueError, match="not running"):
        p.map(square, [1])
    p.join()
    assert r.get(timeout=0) == [0.2, 0.2]
    p = Pool(1)
    long = p.apply_async(nap, (30,))
    p.terminate()
    with pytest.raises(ember.exceptions.RayError):
        long.get(timeout=30)
    with pytest.raises(ValueError, match="not running"):
        p.apply(square, (2,))


def test_options_it_cannot_honour_are_refused(node):
    with pytest.raises(ValueError, match="context"):
        Pool(1, context=object())
    with pytest.raises(ValueError, match="ray_address"):
        Pool(1, ray_address="ray://head:10001")
    with pytest.raises(ValueError):
        Pool(0)


def test_a_long_lived_pool_keeps_no_finished_results(pool):
    from ember.util.state import list_objects  # noqa: PLC0415

    before = len(list_objects(limit=100_000))
    for i in range(3000):  # joblib's pattern: many calls on one pool, each result taken
        assert pool.apply(square, (i,)) == i * i
    held = len(list_objects(limit=100_000)) - before
    assert held <= 1024  # what join() still tracks; not all 3,000
    pool.close()
    pool.join()
