"""Scale benchmark: Ray's single-node envelope, on ember and (optionally) on Ray in one run.

Run from the repository root::

    python bench/scale.py                                         # ember only, ~1-2 minutes
    python bench/scale.py --compare-ray RAY_VENV/bin/python --json scale.json
    python bench/scale.py --quick                                 # smoke run, ~20 s

Each system runs in a fresh interpreter of its own (Ray's under the ``--compare-ray``
Python), one node with ``init(num_cpus=2)`` and the default object store, and measures:

    1 tasks    --tasks no-op tasks (1,000,000) submitted in one loop, their refs kept, then
               fetched one by one (``get(ref)`` in submission order). Reported: the
               submission loop, the fetch loop, end to end, and the node's memory: the PSS
               of the driver and every process it started (``/proc/<pid>/smaps_rollup``;
               shared pages are split between the processes mapping them, so the store is
               counted once) just before the first submission and just after the last one,
               as growth per submitted task.
    2 args     one task given 10,000 ObjectRef arguments (``f.remote(*refs)``, each a small
               object from ``put``): submit to result, median of --repeat.
    3 returns  one task with ``num_returns=3000``: submit to all 3,000 results fetched.
    4 get      10,000 small objects in one ``get(list)``.
    5 big      one 4 GiB numpy array (``--big``): ``put`` into the fresh store (cold: its
               pages are touched for the first time), ``get`` (ember: a zero-copy view), and a
               task that reads it (passed by ref; it sums one byte per 4 KiB page); then
               the node's PSS with the object held.

Times are ``time.perf_counter``; the cyclic GC is off in timed loops. A thread samples how
many cores processes outside the benchmark keep busy (the machine may be shared), and the
report states it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import _common
from _common import fmt, git_describe, machine_info, no_gc, progress, table

GiB = 1 << 30

#: Targets for ember on a 2-core machine (docs/performance.md states them).
TARGET_TASKS_S = 30.0           # 1M queued no-op tasks, end to end
TARGET_BYTES_PER_TASK = 400     # node memory growth per queued task
TARGET_ARGS_S = 1.0             # 10,000 ref arguments
TARGET_RETURNS_S = 0.1          # 3,000 returns
TARGET_GET_S = 0.1              # 10,000 objects in one get


def node_pss() -> int:
    """PSS in bytes of this process and every process below it."""
    import psutil

    me = psutil.Process()
    total = 0
    for p in [me, *me.children(recursive=True)]:
        try:
            with open(f"/proc/{p.pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass  # it ended meanwhile
    return total


def median_time(fn, repeat: int) -> dict:
    times = []
    for _ in range(repeat):
        with no_gc():
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "samples": len(times)}


def run_child(backend: str, args) -> dict:
    """Runs every part on `backend` ("ember" or "ray") in this process."""
    import numpy as np

    if backend == "ray":
        import ray as rt

        rt.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    else:
        import ember as rt

        rt.init(num_cpus=2)

    @rt.remote
    def noop():
        return None

    @rt.remote
    def count(*xs):
        return len(xs)

    @rt.remote
    def many(n):
        return tuple(range(n))

    @rt.remote
    def touch(a):
        return int(a.reshape(-1)[::4096].sum())

    out: dict = {"backend": backend}
    rt.get(noop.remote())  # workers up
    time.sleep(1.0)

    # 1 tasks
    n = args.tasks if backend == "ember" else args.ray_tasks
    progress(f"{backend}: {n:,} no-op tasks")
    gc.collect()
    before = node_pss()
    gc.disable()
    t0 = time.perf_counter()
    refs = [noop.remote() for _ in range(n)]
    t1 = time.perf_counter()
    after = node_pss()
    for r in refs:
        rt.get(r)
    t2 = time.perf_counter()
    gc.enable()
    out["tasks"] = {"n": n, "submit_s": t1 - t0, "fetch_s": t2 - t1, "total_s": t2 - t0,
                    "pss_before": before, "pss_after_submit": after,
                    "bytes_per_task": (after - before) / n}
    del refs
    gc.collect()

    # 2 args, 3 returns, 4 get
    small = [rt.put(i) for i in range(args.objects)]
    progress(f"{backend}: {args.objects:,} ref arguments, {args.returns:,} returns, one get")
    out["args"] = median_time(lambda: rt.get(count.remote(*small)), args.repeat)
    k = args.returns
    out["returns"] = median_time(lambda: rt.get(many.options(num_returns=k).remote(k)),
                                 args.repeat)
    out["get"] = median_time(lambda: rt.get(small), args.repeat)
    out["args"]["n"], out["returns"]["n"], out["get"]["n"] = args.objects, k, args.objects
    del small
    gc.collect()

    # 5 big
    progress(f"{backend}: one object of {args.big / GiB:.2f} GiB")
    arr = np.ones(args.big, dtype=np.uint8)
    t0 = time.perf_counter()
    ref = rt.put(arr)
    t1 = time.perf_counter()
    view = rt.get(ref)
    t2 = time.perf_counter()
    pages = rt.get(touch.remote(ref))
    t3 = time.perf_counter()
    assert pages == (args.big + 4095) // 4096, pages
    del arr
    gc.collect()
    out["big"] = {"bytes": args.big, "put_s": t1 - t0, "put_gbps": args.big / (t1 - t0) / 1e9,
                  "get_s": t2 - t1, "task_s": t3 - t2, "pss_held": node_pss()}
    del view, ref
    rt.shutdown()
    return out


def child(python: str, backend: str, args) -> dict | None:
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        cmd = [python, os.path.abspath(__file__), "--child", backend, "--out", f.name,
               "--tasks", str(args.tasks), "--ray-tasks", str(args.ray_tasks),
               "--objects", str(args.objects), "--returns", str(args.returns),
               "--big", str(args.big), "--repeat", str(args.repeat)]  # fmt: skip
        r = subprocess.run(cmd, check=False)
        if r.returncode != 0:
            progress(f"{backend} failed (exit {r.returncode})")
            return None
        with open(f.name) as fh:
            return json.load(fh)


def report(results: dict) -> list:
    e, r = results.get("ember"), results.get("ray")

    def g(res, *keys):
        return _common.dig(res, *keys)

    ne, nr = g(e, "tasks", "n"), g(r, "tasks", "n")

    def row(label, keys, spec, scale=1.0, higher=False, per_task=False):
        ev, rv = g(e, *keys), g(r, *keys)
        ev = ev * scale if ev is not None else None
        rv = rv * scale if rv is not None else None
        if per_task:  # the two may have run different numbers of tasks
            ev = ev / ne if ev is not None else None
            rv = rv / nr if rv is not None else None
        ratio = _common.times_better(ev, rv, higher)
        if keys[0] == "tasks" and not per_task and keys[1] != "bytes_per_task" and ne != nr:
            ratio = "-"  # totals of different counts: see the per-task rows
        return [label, fmt(ev, spec), fmt(rv, spec), ratio]

    def n_of(part):
        return fmt(g(e, part, "n") or g(r, part, "n"), ",")

    rows = [
        row("tasks: submit (s)", ("tasks", "submit_s"), ".2f"),
        row("tasks: fetch one by one (s)", ("tasks", "fetch_s"), ".2f"),
        row("tasks: end to end (s)", ("tasks", "total_s"), ".2f"),
        row("tasks: per task, end to end (us)", ("tasks", "total_s"), ".1f", 1e6, per_task=True),
        row("tasks: memory per task (B)", ("tasks", "bytes_per_task"), ".0f"),
        row(f"{n_of('args')} ref arguments (ms)", ("args", "median_s"), ".1f", 1e3),
        row(f"{n_of('returns')} returns (ms)", ("returns", "median_s"), ".1f", 1e3),
        row(f"{n_of('get')}-object get (ms)", ("get", "median_s"), ".1f", 1e3),
        row("big: cold put (GB/s)", ("big", "put_gbps"), ".2f", higher=True),
        row("big: get (ms)", ("big", "get_s"), ".2f", 1e3),
        row("big: task reading it (ms)", ("big", "task_s"), ".1f", 1e3),
        row("big: node PSS held (GiB)", ("big", "pss_held"), ".2f", 1 / GiB),
    ]
    table(f"Scale (tasks: ember {fmt(ne, ',')}, Ray {fmt(nr, ',')}; ember x: > 1 is better)",
          ["measure", "ember", "Ray", "ember x"], rows, [33, 10, 10, 8])

    checks = []
    if e:
        def check(name, value, ok):
            checks.append({"target": name, "value": value, "met": ok})

        t = e["tasks"]
        if t["n"] >= 1_000_000:
            check(f"1M tasks end to end <= {TARGET_TASKS_S:.0f} s", round(t["total_s"], 2),
                  t["total_s"] <= TARGET_TASKS_S)
        check(f"memory <= {TARGET_BYTES_PER_TASK} B per queued task",
              round(t["bytes_per_task"]), t["bytes_per_task"] <= TARGET_BYTES_PER_TASK)
        check(f"{n_of('args')} ref arguments <= 1 s", round(e["args"]["median_s"], 4),
              e["args"]["median_s"] <= TARGET_ARGS_S)
        check(f"{n_of('returns')} returns <= 0.1 s", round(e["returns"]["median_s"], 4),
              e["returns"]["median_s"] <= TARGET_RETURNS_S)
        check(f"{n_of('get')}-object get <= 0.1 s", round(e["get"]["median_s"], 4),
              e["get"]["median_s"] <= TARGET_GET_S)
        if r:
            check("big cold put >= Ray", round(e["big"]["put_gbps"], 2),
                  e["big"]["put_gbps"] >= r["big"]["put_gbps"])
        print("\nTargets (ember)")
        for c in checks:
            print(f"  {'met ' if c['met'] else 'MISSED'}  {c['target']}: {c['value']}")
    return checks


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--compare-ray", metavar="PYTHON", help="also run under this interpreter's Ray")
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    p.add_argument("--json", metavar="PATH", help="write the results here")
    p.add_argument("--tasks", type=int, default=1_000_000)
    p.add_argument("--ray-tasks", type=int, default=None,
                   help="tasks for Ray (default: --tasks; Ray runs ~2k/s here)")
    p.add_argument("--objects", type=int, default=10_000, help="ref arguments and get size")
    p.add_argument("--returns", type=int, default=3000)
    p.add_argument("--big", type=_common.parse_size, default=4 * GiB, help="e.g. 4GiB")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--child", choices=["ember", "ray"], help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.quick:
        a.tasks, a.objects, a.returns, a.big, a.repeat = 20_000, 1000, 300, 256 << 20, 3
        a.ray_tasks = min(a.ray_tasks or a.tasks, a.tasks)
    if a.ray_tasks is None:
        a.ray_tasks = a.tasks
    return a


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        result = run_child(args.child, args)
        with open(args.out, "w") as f:
            json.dump(result, f)
        return
    results = {"machine": machine_info(), "git": git_describe(), "argv": sys.argv[1:]}
    with _common.LoadMonitor() as mon:
        results["ember"] = child(sys.executable, "ember", args)
        if args.compare_ray:
            results["ray"] = child(args.compare_ray, "ray", args)
    results["load"] = mon.summary()
    results["targets"] = report(results)
    print(f"\nother processes kept {results['load']['other_cores_mean']} cores busy on average "
          f"(max {results['load']['other_cores_max']})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
