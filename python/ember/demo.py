"""ember's demo: ``python -m ember.demo``.

Starts a node, runs tasks, and shows what the object store does for large numpy arrays: one
copy into shared memory on ``put``, then zero-copy, constant-time ``get``. Ends with the seed
tutorial's benchmark: a (5000, 5000) array passed by value to 10 tasks against one ``put``
shared by all of them.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import time

import numpy as np

import ember


def _median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _large_array(mib: int, repeat: int) -> None:
    array = np.random.default_rng(0).random(mib * 2**20 // 8)
    print(f"\narray: {array.nbytes / 2**20:.0f} MiB of float64")

    def put_and_drop():
        ref = ember.put(array)
        del ref

    put_s = _median_seconds(put_and_drop, repeat)
    ref = ember.put(array)
    get_s = _median_seconds(lambda: ember.get(ref), max(repeat, 50))
    view = ember.get(ref)
    pickle_s = _median_seconds(lambda: pickle.loads(pickle.dumps(array, protocol=5)), repeat)

    gbps = array.nbytes / put_s / 1e9
    print(f"  ember.put        {put_s * 1e3:8.2f} ms   ({gbps:.1f} GB/s, "
          "one copy into shared memory)")
    print(f"  ember.get        {get_s * 1e6:8.2f} us   (zero-copy: a read-only view)")
    print(f"  pickle round trip{pickle_s * 1e3:8.2f} ms   (what passing by value copies)")
    print(f"  the view shares memory with the store: read-only={not view.flags.writeable}, "
          f"equal={bool(np.array_equal(view, array))}")


def _small_objects(n: int) -> None:
    t = time.perf_counter()
    refs = [ember.put(i) for i in range(n)]
    t_put = time.perf_counter() - t
    t = time.perf_counter()
    values = ember.get(refs)
    t_get = time.perf_counter() - t
    assert values == list(range(n))
    print(f"\n{n:,} small objects: {n / t_put:,.0f} puts/s, {n / t_get:,.0f} gets/s")


def _tasks() -> None:
    @ember.remote
    def no_work(a):
        return None

    @ember.remote
    def square(x):
        return x * x

    t = time.perf_counter()
    squares = ember.get([square.remote(i) for i in range(1000)])
    print(f"\n1,000 tasks: {(time.perf_counter() - t) * 1e3:.1f} ms (sum of squares "
          f"{sum(squares):,})")

    a = np.zeros((5000, 5000))
    ember.get(no_work.remote(1))  # warm up the workers

    def by_value():
        ember.get([no_work.remote(a) for _ in range(10)])

    def by_put():
        a_ref = ember.put(a)
        ember.get([no_work.remote(a_ref) for _ in range(10)])

    value_s = _median_seconds(by_value, 3)
    put_s = _median_seconds(by_put, 3)
    print(f"\nthe seed's benchmark: np.zeros((5000, 5000)) ({a.nbytes / 2**20:.0f} MiB) "
          "to 10 tasks")
    print(f"  passed by value  {value_s * 1e3:8.1f} ms   (stored once per call)")
    print(f"  via one put      {put_s * 1e3:8.1f} ms   (stored once, shared zero-copy)")
    print(f"  put is {value_s / put_s:.1f}x faster")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=200, help="array size in MiB (default 200)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    info = ember.init(num_cpus=2, object_store_memory=max(1024, 3 * args.mib) << 20)
    print(f"ember {ember.__version__}: node {info.node_id} started in "
          f"{(time.perf_counter() - t0) * 1e3:.1f} ms "
          f"(store {info.object_store_memory / 2**30:.2f} GiB of shared memory)")

    _large_array(args.mib, args.repeat)
    _small_objects(10_000)
    _tasks()
    ember.shutdown()


if __name__ == "__main__":
    main()
