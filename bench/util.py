"""ray.util benchmark: Pool.map, joblib's Parallel and Queue round trips.

Run from the repository root::

    python bench/util.py                                   # ember and the stdlib references
    python bench/util.py --compare-ray RAY_VENV/bin/python # and Ray's, in the same run
    python bench/util.py --quick                           # smoke run, under a minute

Each system runs in a fresh interpreter of its own, on 2 CPUs (a node of ``num_cpus=2``, or
pools of 2 processes), and reports the median of its repeats:

    pool tiny   ``Pool(2).map(f, range(100_000))`` of a function that adds one; ember's
                ``ember.util.multiprocessing.Pool``, ``multiprocessing.Pool`` and Ray's Pool.
    pool 10ms   ``Pool(2).map(g, range(1_000))`` of a function that sleeps 10 ms (ideal 5 s).
    joblib      ``Parallel(n_jobs=2)(delayed(f)(i) for i in range(100_000))``: on ember's
                backend (``register_ember()``), joblib's own loky backend, and Ray's.
    queue       one ``q.put(i)`` then ``q.get()`` from the driver, 2,000 times: microseconds
                per round trip; ember's ``ember.util.queue.Queue`` and Ray's.

The pools and the queue are made, and used once, before the clock starts: what is timed is
the work, not the start-up (``bench/tasks.py`` measures that).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import _common


def add_one(x):
    return x + 1


def sleep_10ms(x):
    time.sleep(0.01)
    return x


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        with _common.no_gc():
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _measure_pool(pool_cls, n_tiny: int, n_sleep: int, repeats: int) -> dict:
    with pool_cls(2) as pool:
        pool.map(add_one, range(1000))  # processes up and warm
        tiny = _median_seconds(lambda: pool.map(add_one, range(n_tiny)), repeats)
        slow = _median_seconds(lambda: pool.map(sleep_10ms, range(n_sleep)), max(1, repeats // 2))
        assert pool.map(add_one, range(5)) == [1, 2, 3, 4, 5]
    return {"pool_tiny_s": tiny, "pool_10ms_s": slow}


def _measure_joblib(backend: str | None, n_tiny: int, repeats: int) -> dict:
    import joblib  # noqa: PLC0415 (only the systems that measure it)

    def run():
        out = joblib.Parallel(n_jobs=2)(joblib.delayed(add_one)(i) for i in range(n_tiny))
        assert out[-1] == n_tiny

    if backend is None:
        run()  # loky's workers up
        return {"joblib_s": _median_seconds(run, repeats)}
    with joblib.parallel_backend(backend, n_jobs=2):
        run()
        return {"joblib_s": _median_seconds(run, repeats)}


def _measure_queue(queue_cls, n: int, repeats: int) -> dict:
    q = queue_cls()
    q.put(0)
    q.get()

    def round_trips():
        for i in range(n):
            q.put(i)
            q.get()

    return {"queue_rt_us": _median_seconds(round_trips, repeats) / n * 1e6}


def child(system: str, quick: bool) -> dict:
    n_tiny, n_sleep, n_queue, repeats = (20_000, 200, 500, 3) if quick else \
        (100_000, 1_000, 2_000, 5)
    if system == "multiprocessing":
        import multiprocessing  # noqa: PLC0415

        return _measure_pool(multiprocessing.Pool, n_tiny, n_sleep, repeats)
    if system == "loky":
        return _measure_joblib(None, n_tiny, repeats)
    if system == "ember":
        import ember  # noqa: PLC0415
        from ember.util.joblib import register_ember  # noqa: PLC0415
        from ember.util.multiprocessing import Pool  # noqa: PLC0415
        from ember.util.queue import Queue  # noqa: PLC0415

        ember.init(num_cpus=2)
        register_ember()
        out = _measure_pool(Pool, n_tiny, n_sleep, repeats)
        out.update(_measure_joblib("ember", n_tiny, repeats))
        out.update(_measure_queue(Queue, n_queue, repeats))
        ember.shutdown()
        return out
    if system == "ray":
        import ray  # noqa: PLC0415
        from ray.util.joblib import register_ray  # noqa: PLC0415
        from ray.util.multiprocessing import Pool  # noqa: PLC0415
        from ray.util.queue import Queue  # noqa: PLC0415

        ray.init(num_cpus=2, include_dashboard=False)
        register_ray()
        out = _measure_pool(Pool, n_tiny, n_sleep, repeats)
        out.update(_measure_joblib("ray", n_tiny, repeats))
        out.update(_measure_queue(Queue, n_queue, repeats))
        out["version"] = ray.__version__
        ray.shutdown()
        return out
    raise ValueError(f"unknown system {system!r}")


def _run_child(python: str, system: str, quick: bool) -> dict:
    _common.progress(f"{system} ...")
    with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
        cmd = [python, os.path.abspath(__file__), "--child", system, "--child-out", out.name]
        if quick:
            cmd.append("--quick")
        done = subprocess.run(cmd, check=False, timeout=1800)
        if done.returncode != 0:
            _common.progress(f"{system} failed (exit {done.returncode})")
            return {}
        return json.load(out)


def report(results: dict) -> None:
    e, mp, loky, ray = (results.get(k, {}) for k in ("ember", "multiprocessing", "loky", "ray"))
    f = _common.fmt
    better = _common.times_better
    _common.table(
        "Pool.map on 2 processes (seconds, median; x = how many times faster ember is)",
        ["workload", "ember", "multiprocessing", "x", "Ray", "x"],
        [[name, f(e.get(k), ".3f"), f(mp.get(k), ".3f"), better(e.get(k), mp.get(k), False),
          f(ray.get(k), ".3f"), better(e.get(k), ray.get(k), False)]
         for name, k in (("100,000 tiny items", "pool_tiny_s"),
                         ("1,000 x 10 ms items", "pool_10ms_s"))],
        [20, 8, 15, 6, 8, 6])
    _common.table(
        "joblib Parallel(n_jobs=2) of 100,000 tiny calls (seconds, median)",
        ["backend", "seconds", "x ember"],
        [["ember", f(e.get("joblib_s"), ".3f"), "1.00"],
         ["loky (joblib's own)", f(loky.get("joblib_s"), ".3f"),
          better(e.get("joblib_s"), loky.get("joblib_s"), False)],
         ["Ray", f(ray.get("joblib_s"), ".3f"), better(e.get("joblib_s"), ray.get("joblib_s"),
                                                        False)]],
        [20, 8, 8])
    _common.table(
        "Queue put + get round trip from the driver (microseconds, median)",
        ["queue", "us", "x ember"],
        [["ember", f(e.get("queue_rt_us"), ".1f"), "1.00"],
         ["Ray", f(ray.get("queue_rt_us"), ".1f"),
          better(e.get("queue_rt_us"), ray.get("queue_rt_us"), False)]],
        [20, 8, 8])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compare-ray", metavar="PYTHON", help="a Python with Ray installed")
    parser.add_argument("--quick", action="store_true", help="smaller workloads, fewer repeats")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        with open(args.child_out, "w") as out:
            json.dump(child(args.child, args.quick), out)
        return 0
    results = {system: _run_child(sys.executable, system, args.quick)
               for system in ("ember", "multiprocessing", "loky")}
    if args.compare_ray:
        results["ray"] = _run_child(args.compare_ray, "ray", args.quick)
    report(results)
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"machine": _common.machine_info(), "results": results}, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
