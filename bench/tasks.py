"""Task benchmark: start-up, task throughput and latency, scheduling, put, idle memory.

Run from the repository root::

    python bench/tasks.py                                     # ember and the stdlib references
    python bench/tasks.py --compare-ray RAY_VENV/bin/python --json tasks.json
    python bench/tasks.py --quick                             # smoke run, under a minute
    python bench/tasks.py --load 2 --compare-ray RAY_VENV/bin/python   # under contention

One run measures, each system in fresh processes of its own (ember, Ray, and for reference
multiprocessing.Pool(2), concurrent.futures.ProcessPoolExecutor(2), joblib's loky backend
with n_jobs=2 and serial Python):

    1 start    wall time from launching a fresh ``python -c`` to the first task's result:
               interpreter start, import, ``init(num_cpus=2)`` (or creating the pool), one
               trivial task and its result. Median of several launches; each launch reports
               its phases on CLOCK_MONOTONIC, which the parent shares.
    2 async    no-op tasks per second, n submitted then all gathered:
               ``get([f.remote() for _ in range(n)])``, ``pool.apply_async(f)`` + ``.get()``,
               ``executor.submit(f)`` + ``.result()``, ``Parallel(n_jobs=2)(delayed(f)() ...)``,
               and a plain loop.
    3 sync     one round trip at a time, ``get(f.remote())`` / ``pool.apply(f)``: p50, p99,
               after a 1 s pause, so they meet a settled node (see SETTLE_S).
      stream   ember and Ray only: a streaming generator task yielding n small ints, each
               item fetched as it comes (``for ref in g.remote(n): get(ref)``): items per
               second and the cost per item, median of the repeats.
    4 fan-out  the seed program: k tasks sleeping 0.3 s on 2 CPUs, k = 4, 8, 16 (ideal
               0.15 k s).
    5 drain    1,000 tasks sleeping 1-3 ms (fixed pseudo-random durations), drained one at a
               time with ``wait(pending, num_returns=1)`` + ``get``; ideal = sum of the
               sleeps / 2 CPUs. Also shown against the sleeps as measured inside the tasks
               (``time.sleep`` itself oversleeps, by ~0.1 ms per call on our VM).
    6 put      the seed program: ``np.zeros((5000, 5000))`` (200 MB) passed to 10 no-op
               tasks by value, against one ``put`` whose ref is passed (put included).
    7 memory   total PSS (``memory_full_info().pss``) of the driver and every process it
               started, idle after init and one task. Ray: also every process whose command
               line names the driver's session.

``--load N`` measures under contention instead: N processes spinning on a CPU each run beside
the benchmark for the whole run, and only parts 2 and 3 are measured, for ember, Ray (with
``--compare-ray``) and multiprocessing.Pool (the same load for each, in turn).

The parent process launches everything: ``--child SYSTEM`` runs parts 2-6 of one system
in a fresh interpreter (Ray's under the ``--compare-ray`` Python) and writes JSON. All times
are ``time.perf_counter`` unless said otherwise; the cyclic GC is off in timed loops.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import psutil

import _common
from _common import dig, fmt, git_describe, no_gc, percentile, progress, table, wait_quiet
from _common import times_better as times_faster

#: Targets for ember (from the tasks issue); docs/performance.md reports against them.
TARGETS = {
    "start_ms": 150.0,  # init to first result, median, at most
    "async_per_s": 50_000.0,  # no-op tasks/s, at least
    "async_vs_pool": 2.0,  # times multiprocessing.Pool.apply_async, at least
    "sync_p50_us": 60.0,  # at most
    "schedule_ratio": 1.05,  # fan-out and drain time / ideal, at most
    "put_speedup": 10.0,  # by value / via put, at least
    "idle_pss_mb": 150.0,  # at most
}

START_SYSTEMS = ("ember", "ray", "pool", "ppe", "loky")
LABELS = {
    "ember": "ember",
    "ray": "Ray",
    "pool": "mp.Pool(2)",
    "ppe": "ProcessPoolExecutor(2)",
    "loky": "joblib loky n_jobs=2",
    "serial": "serial Python",
}
MARK = "@@TASKS_BENCH "
#: Pause between part 2's bursts and the sync round trips, so they meet a settled node: after
#: a burst the kernel may keep driver and worker on different vCPUs for a while, where every
#: wake-up costs ~30 us on this VM (ember f5a89e4: p50 65-74 us right after a burst, 21 us
#: after a pause; later builds spin before sleeping and no longer show it).
SETTLE_S = 1.0


# --- the work: plain module-level functions, shared by every system ------------------------


def noop():
    return None


def seed_task():
    """The seed's print_current_datetime, without the print (its output is not the point)."""
    time.sleep(0.3)
    return datetime.datetime.now()


def sleep_for(seconds: float) -> float:
    """Sleeps; returns how long the sleep really took."""
    t = time.perf_counter()
    time.sleep(seconds)
    return time.perf_counter() - t


def no_work(a):
    return None


def count_up(n: int):
    """A generator task: its items stream to the caller one by one."""
    yield from range(n)


def drain_durations(n: int) -> list[float]:
    rng = random.Random(0)
    return [rng.uniform(0.001, 0.003) for _ in range(n)]


# --- helpers --------------------------------------------------------------------------------


def tree_cpu_s(root: int) -> float:
    """CPU seconds used by root and its descendants (live ones; reaped ones via cutime)."""
    total = 0.0
    try:
        procs = [psutil.Process(root)]
        procs += procs[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def wait_settled(
    root: int, min_s: float, max_s: float, window_s: float = 0.5, max_busy: float = 0.02
) -> float:
    """Waits at least min_s, then until root's process tree uses under max_busy of a core for
    two windows in a row (or max_s passed); returns the seconds waited."""
    start = time.perf_counter()
    time.sleep(min_s)
    calm, before = 0, tree_cpu_s(root)
    while calm < 2 and time.perf_counter() - start < max_s:
        time.sleep(window_s)
        now = tree_cpu_s(root)
        calm = calm + 1 if now - before < max_busy * window_s else 0
        before = now
    return time.perf_counter() - start


class LoadMonitor(_common.LoadMonitor):
    """_common.LoadMonitor, reading CPU times through psutil."""

    def _mine_and_busy(self) -> tuple[float, float]:
        mine = tree_cpu_s(os.getpid())
        t = psutil.cpu_times()
        busy = t.user + t.nice + t.system + t.irq + t.softirq
        return mine, busy


# --- 1 and 7: fresh interpreters ------------------------------------------------------------

# Each program records CLOCK_MONOTONIC after the interpreter started (t1), after the import
# (t2), after init / pool creation (t3) and after the first result (t4), prints them, and
# then idles until its stdin has a line (the parent measures its memory meanwhile).
_HEAD = "import time; _t1 = time.monotonic()\n"
_START_BODY = {
    "ember": """
import ember
_t2 = time.monotonic()
@ember.remote
def f():
    return 1
ember.init(num_cpus=2)
_t3 = time.monotonic()
assert ember.get(f.remote()) == 1
_t4 = time.monotonic()
_session = None
def _stop():
    ember.shutdown()
""",
    "ray": """
import ray
_t2 = time.monotonic()
@ray.remote
def f():
    return 1
ray.init(num_cpus=2, include_dashboard=False)
_t3 = time.monotonic()
assert ray.get(f.remote()) == 1
_t4 = time.monotonic()
_session = ray._private.worker._global_node.session_name
def _stop():
    ray.shutdown()
""",
    "pool": """
import multiprocessing
_t2 = time.monotonic()
def f():
    return 1
pool = multiprocessing.Pool(2)
_t3 = time.monotonic()
assert pool.apply(f) == 1
_t4 = time.monotonic()
_session = None
def _stop():
    pool.close()
    pool.join()
""",
    "ppe": """
from concurrent.futures import ProcessPoolExecutor
_t2 = time.monotonic()
def f():
    return 1
ex = ProcessPoolExecutor(2)
_t3 = time.monotonic()
assert ex.submit(f).result() == 1
_t4 = time.monotonic()
_session = None
def _stop():
    ex.shutdown()
""",
    "loky": """
from joblib import Parallel, delayed
_t2 = time.monotonic()
def f():
    return 1
par = Parallel(n_jobs=2)
_t3 = time.monotonic()
assert par([delayed(f)()]) == [1]
_t4 = time.monotonic()
_session = None
def _stop():
    from joblib.externals.loky import get_reusable_executor
    get_reusable_executor().shutdown(wait=True)
""",
}
_TAIL = f"""
import json as _json, os as _os, sys as _sys
print({MARK!r} + _json.dumps({{"t": [_t1, _t2, _t3, _t4], "pid": _os.getpid(),
      "session": _session}}), flush=True)
_sys.stdin.readline()
_stop()
"""


def start_program(system: str) -> str:
    return _HEAD + _START_BODY[system] + _TAIL


class Launch:
    """One fresh interpreter running start_program(system) (it waits on stdin at the end)."""

    def __init__(self, python: str, system: str, timeout_s: float = 120.0):
        self.system = system
        self.errfile = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by stop())
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [python, "-c", start_program(system)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errfile,
            text=True,
            cwd=tempfile.gettempdir(),
            env=env,
        )
        timer = threading.Timer(timeout_s, self.proc.kill)
        timer.start()
        try:
            info = None
            for line in self.proc.stdout:
                if line.startswith(MARK):
                    info = json.loads(line[len(MARK) :])
                    break
        finally:
            timer.cancel()
        if info is None:
            self.proc.wait()
            self.errfile.seek(0)
            raise RuntimeError(f"{system} start-up program failed:\n{self.errfile.read()[-3000:]}")
        t1, t2, t3, t4 = info["t"]
        self.pid = info["pid"]
        self.session = info["session"]
        self.phases = {
            "total_ms": (t4 - t0) * 1e3,
            "interpreter_ms": (t1 - t0) * 1e3,
            "import_ms": (t2 - t1) * 1e3,
            "init_ms": (t3 - t2) * 1e3,
            "first_task_ms": (t4 - t3) * 1e3,
        }

    def processes(self) -> list[psutil.Process]:
        """The driver, its descendants and (Ray) every process naming its session."""
        root = psutil.Process(self.pid)
        procs = {p.pid: p for p in [root, *root.children(recursive=True)]}
        if self.system == "ray" and self.session:
            for p in psutil.process_iter(["cmdline"]):
                with contextlib.suppress(psutil.Error):
                    if p.pid not in procs and any(
                        self.session in a for a in p.info["cmdline"] or ()
                    ):
                        procs[p.pid] = p
        return list(procs.values())

    def memory(self) -> dict:
        per = []
        for p in self.processes():
            with contextlib.suppress(psutil.Error):
                name = " ".join(p.cmdline())[:80] or p.name()
                per.append(
                    {
                        "pid": p.pid,
                        "ppid": p.ppid(),
                        "cmd": name,
                        "pss_mb": p.memory_full_info().pss / 1e6,
                        "rss_mb": p.memory_info().rss / 1e6,
                    }
                )
        driver = next((x["pss_mb"] for x in per if x["pid"] == self.pid), 0.0)
        return {
            "total_pss_mb": sum(x["pss_mb"] for x in per),
            "driver_pss_mb": driver,
            "processes": len(per),
            "per_process": per,
        }

    def stop(self, timeout_s: float = 60.0) -> float:
        """Lets the program shut down and exit; returns the seconds that took."""
        t = time.monotonic()
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.write("\n")
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.errfile.close()
        return time.monotonic() - t


def measure_start(pythons: dict[str, str], runs: dict[str, int]) -> dict:
    """Launches each system runs[system] times, round robin, one launch at a time."""
    samples: dict[str, list[dict]] = {s: [] for s in pythons}
    for i in range(max(runs.values())):
        for system, python in pythons.items():
            if i >= runs[system]:
                continue
            launch = Launch(python, system)
            exit_s = launch.stop()
            samples[system].append({**launch.phases, "exit_ms": exit_s * 1e3})
    out = {}
    for system, ss in samples.items():
        out[system] = {k: statistics.median(s[k] for s in ss) for k in ss[0]}
        out[system]["runs_total_ms"] = [round(s["total_ms"], 1) for s in ss]
        out[system]["best_total_ms"] = min(s["total_ms"] for s in ss)
        progress(
            f"start {LABELS[system]}: median {out[system]['total_ms']:.0f} ms "
            f"(runs: {', '.join(f'{s:.0f}' for s in out[system]['runs_total_ms'])})"
        )
    return out


def measure_memory(python: str, system: str) -> dict:
    launch = Launch(python, system)
    try:
        waited = wait_settled(
            launch.pid,
            min_s=2.0 if system == "ray" else 1.0,
            max_s=20.0 if system == "ray" else 8.0,
        )
        mem = launch.memory()
    finally:
        launch.stop()
    mem["settle_s"] = waited
    progress(
        f"idle memory {LABELS[system]}: {mem['total_pss_mb']:.0f} MB PSS in "
        f"{mem['processes']} processes (driver {mem['driver_pss_mb']:.0f} MB)"
    )
    return mem


# --- 2-6 in one fresh process per system ---------------------------------------------------


def rates(n: int, run, repeat: int) -> dict:
    """Times run() (which submits n tasks and returns the time its submission loop ended)
    repeat times; tasks/s from the medians."""
    totals, submits = [], []
    for _ in range(repeat):
        with no_gc():
            t = time.perf_counter()
            t_sub = run()
            t_end = time.perf_counter()
        totals.append(t_end - t)
        submits.append(t_sub - t)
    return {
        "n": n,
        "per_s": n / statistics.median(totals),
        "best_per_s": n / min(totals),
        "submit_per_s": n / statistics.median(submits),
        "samples_s": [round(x, 4) for x in totals],
    }


def latencies(calls: int, one, settle_s: float = 0.0) -> dict:
    """Latency of one() called `calls` times in a row, after a pause and 100 warm-up calls."""
    time.sleep(settle_s)
    for _ in range(100):
        one()
    ts = []
    with no_gc():
        for _ in range(calls):
            t = time.perf_counter()
            one()
            ts.append(time.perf_counter() - t)
    return {
        "calls": calls,
        "p50_us": percentile(ts, 50) * 1e6,
        "p99_us": percentile(ts, 99) * 1e6,
        "mean_us": statistics.fmean(ts) * 1e6,
    }


def fan_out(ks, run_k) -> dict:
    out = {}
    for k in ks:
        t = time.perf_counter()
        vals = run_k(k)
        dt = time.perf_counter() - t
        assert len(vals) == k and all(isinstance(v, datetime.datetime) for v in vals)
        ideal = 0.3 * k / 2
        out[k] = {"s": dt, "ideal_s": ideal, "ratio": dt / ideal}
    return out


def drain_summary(times: list[float], actual_sums: list[float], durations: list[float]) -> dict:
    ideal = sum(durations) / 2
    t = statistics.median(times)
    actual = statistics.median(actual_sums) / 2
    return {
        "n": len(durations),
        "s": t,
        "ideal_s": ideal,
        "ratio": t / ideal,
        "ideal_measured_s": actual,
        "ratio_measured": t / actual,
        # CPUs x elapsed - time spent sleeping in tasks: dispatch gaps and the tail, per task
        "idle_us_per_task": (2 * t - 2 * actual) / len(durations) * 1e6,
        "samples_s": [round(x, 4) for x in times],
    }


def runtime_async(f, get, n: int, repeat: int) -> dict:
    get([f.remote() for _ in range(min(n, 2000))])  # warm-up: workers started, function cached

    def batch():
        refs = [f.remote() for _ in range(n)]
        t = time.perf_counter()
        assert get(refs)[-1] is None
        return t

    return rates(n, batch, repeat)


def runtime_drain(sleeper, get, wait, n: int, repeat: int) -> dict:
    durations = drain_durations(n)
    times, actual = [], []
    for _ in range(repeat):
        with no_gc():
            t = time.perf_counter()
            pending = [sleeper.remote(d) for d in durations]
            total = 0.0
            while pending:
                ready, pending = wait(pending, num_returns=1)
                total += get(ready[0])
            times.append(time.perf_counter() - t)
        actual.append(total)
    return drain_summary(times, actual, durations)


def runtime_put(consume, get, put, repeat: int) -> dict:
    a = np.zeros((5000, 5000))
    by_value, by_put, cold = [], [], {}
    for i in range(repeat + 1):  # the first round is a warm-up (fresh store memory)
        t = time.perf_counter()
        get([consume.remote(a) for _ in range(10)])
        t1 = time.perf_counter()
        ref = put(a)
        get([consume.remote(ref) for _ in range(10)])
        t2 = time.perf_counter()
        del ref
        if i == 0:
            cold = {"by_value_s": t1 - t, "put_s": t2 - t1}
        else:
            by_value.append(t1 - t)
            by_put.append(t2 - t1)
    bv, bp = statistics.median(by_value), statistics.median(by_put)
    return {
        "by_value_s": bv,
        "put_s": bp,
        "speedup": bv / bp,
        "by_value_samples_s": by_value,
        "put_samples_s": by_put,
        "first_round": cold,
    }


def runtime_stream(gen_task, get, n: int, repeat: int) -> dict:
    """Part 3, stream: one generator task of n items, each fetched as it arrives."""
    assert sum(get(r) for r in gen_task.remote(10)) == 45  # warm: its function, a worker
    times = []
    for _ in range(repeat):
        with no_gc():
            t = time.perf_counter()
            total = sum(get(r) for r in gen_task.remote(n))
            times.append(time.perf_counter() - t)
        assert total == n * (n - 1) // 2
    s = statistics.median(times)
    return {"n": n, "s": s, "per_s": n / s, "us_per_item": s / n * 1e6, "samples_s": times}


def run_runtime(system: str, args) -> dict:
    """Parts 2-6 for ember or Ray (the same API)."""
    if system == "ember":
        import ember as mod  # noqa: PLC0415 (not importable under Ray's Python)

        mod.init(num_cpus=2)
        version = f"{mod.__version__} ({os.path.dirname(mod.__file__)})"
    else:
        import ray as mod  # noqa: PLC0415 (not importable under ember's Python)

        mod.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
        version = mod.__version__
    res: dict = {"version": version, "python": sys.executable}
    settled = wait_settled(os.getpid(), 0.2, 20.0)
    bounded = system == "ray"  # Ray is ~50x slower per task: fewer calls, same measurements
    f, seed, sleeper, consume = (mod.remote(g) for g in (noop, seed_task, sleep_for, no_work))

    n = min(args.n_async, args.ray_async) if bounded else args.n_async
    res["async"] = runtime_async(f, mod.get, n, min(args.repeat, 3) if bounded else args.repeat)
    progress(
        f"{system} async: {res['async']['per_s']:,.0f} tasks/s "
        f"(submit {res['async']['submit_per_s']:,.0f}/s, n={n}, settle {settled:.1f} s)"
    )

    calls = min(args.n_sync, args.ray_sync) if bounded else args.n_sync
    res["sync"] = latencies(calls, lambda: mod.get(f.remote()), settle_s=SETTLE_S)
    progress(
        f"{system} sync: p50 {res['sync']['p50_us']:.0f} us, p99 {res['sync']['p99_us']:.0f} us"
    )
    if args.load:  # parts 4-6 measure against an ideal that needs idle CPUs
        mod.shutdown()
        return res

    items = min(args.n_stream, args.ray_stream) if bounded else args.n_stream
    res["stream"] = runtime_stream(mod.remote(count_up), mod.get, items, args.repeat)
    progress(f"{system} stream: {res['stream']['per_s']:,.0f} items/s "
             f"({res['stream']['us_per_item']:.1f} us per item, n={items})")

    res["fanout"] = fan_out(args.fanout, lambda k: mod.get([seed.remote() for _ in range(k)]))
    progress(
        f"{system} fan-out: "
        + ", ".join(
            f"x{k} {v['s']:.3f} s ({v['ratio']:.3f}x ideal)" for k, v in res["fanout"].items()
        )
    )

    res["drain"] = runtime_drain(sleeper, mod.get, mod.wait, args.n_drain, args.drain_repeat)
    progress(
        f"{system} drain: {res['drain']['s']:.3f} s, {res['drain']['ratio']:.3f}x ideal "
        f"({res['drain']['ratio_measured']:.3f}x the measured sleeps; workers idle "
        f"{res['drain']['idle_us_per_task']:.0f} us per task)"
    )

    res["put"] = p = runtime_put(consume, mod.get, mod.put, args.put_repeat)
    progress(
        f"{system} put: by value {p['by_value_s'] * 1e3:.0f} ms, via put "
        f"{p['put_s'] * 1e3:.1f} ms ({p['speedup']:.1f}x); first round "
        f"{p['first_round']['by_value_s'] * 1e3:.0f} / {p['first_round']['put_s'] * 1e3:.1f} ms"
    )
    mod.shutdown()
    return res


@contextlib.contextmanager
def multiprocessing_pool():
    """multiprocessing.Pool(2), warmed up by 100 calls."""
    import multiprocessing  # noqa: PLC0415

    with multiprocessing.Pool(2) as pool:
        for _ in range(100):
            pool.apply(noop)
        yield pool


def pool_rates(pool, args) -> dict:
    """Parts 2 and 3 on a multiprocessing.Pool."""
    import multiprocessing  # noqa: PLC0415

    n = args.n_async

    def batch():
        rs = [pool.apply_async(noop) for _ in range(n)]
        t = time.perf_counter()
        for r in rs:
            r.get()
        return t

    return {
        "start_method": multiprocessing.get_start_method(),
        "async": rates(n, batch, args.repeat),
        "sync": latencies(args.n_sync, lambda: pool.apply(noop), settle_s=SETTLE_S),
    }


def stdlib_pool(args) -> dict:
    with multiprocessing_pool() as pool:
        return {
            **pool_rates(pool, args),
            "fanout": fan_out(
                args.fanout,
                lambda k: [x.get() for x in [pool.apply_async(seed_task) for _ in range(k)]],
            ),
        }


def stdlib_ppe(args) -> dict:
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor  # noqa: PLC0415
    from concurrent.futures import wait as fwait  # noqa: PLC0415

    n = args.n_async
    with ProcessPoolExecutor(2) as ex:
        for _ in range(100):
            ex.submit(noop).result()

        def batch():
            fs = [ex.submit(noop) for _ in range(n)]
            t = time.perf_counter()
            for fu in fs:
                fu.result()
            return t

        r = {
            "async": rates(n, batch, args.repeat),
            "sync": latencies(args.n_sync, lambda: ex.submit(noop).result(), settle_s=SETTLE_S),
        }
        durations = drain_durations(args.n_drain)
        with no_gc():
            t = time.perf_counter()
            pending = {ex.submit(sleep_for, d) for d in durations}
            total = 0.0
            while pending:  # one at a time, like wait(num_returns=1)
                done, _ = fwait(pending, return_when=FIRST_COMPLETED)
                fu = next(iter(done))
                pending.discard(fu)
                total += fu.result()
            dt = time.perf_counter() - t
        r["drain"] = drain_summary([dt], [total], durations)
    return r


def stdlib_loky(args) -> dict | None:
    try:
        from joblib import Parallel, delayed  # noqa: PLC0415
        from joblib.externals.loky import get_reusable_executor  # noqa: PLC0415
    except ImportError:
        progress("joblib is not installed: no joblib numbers (pip install joblib)")
        return None
    n = args.n_async
    par = Parallel(n_jobs=2)
    par(delayed(noop)() for _ in range(200))

    def batch():
        out = par(delayed(noop)() for _ in range(n))
        assert len(out) == n
        return time.perf_counter()  # joblib submits and gathers in one call

    r = {"async": rates(n, batch, args.repeat)}
    get_reusable_executor().shutdown(wait=True)
    return r


def run_stdlib(args) -> dict:
    """Parts 2-5 for the references: multiprocessing.Pool, ProcessPoolExecutor, joblib's
    loky backend, serial Python."""
    n = args.n_async

    def serial():
        for _ in range(n):
            noop()
        return time.perf_counter()

    if args.load:
        with multiprocessing_pool() as pool:
            res = {"python": sys.executable, "pool": pool_rates(pool, args)}
        progress(f"Pool: {res['pool']['async']['per_s']:,.0f} tasks/s, "
                 f"sync p50 {res['pool']['sync']['p50_us']:.0f} us")
        return res
    res: dict = {"python": sys.executable, "serial": {"async": rates(n, serial, args.repeat)}}
    # How much time.sleep itself oversleeps here, in a plain process (timer slack, wake-up).
    durations = drain_durations(args.n_drain)[:300]
    res["sleep_overshoot_us"] = statistics.fmean(sleep_for(d) - d for d in durations) * 1e6
    res["pool"] = pool = stdlib_pool(args)
    progress(
        f"Pool: {pool['async']['per_s']:,.0f} tasks/s, sync p50 {pool['sync']['p50_us']:.0f} us"
    )
    res["ppe"] = ppe = stdlib_ppe(args)
    progress(
        f"ProcessPoolExecutor: {ppe['async']['per_s']:,.0f} tasks/s, drain "
        f"{ppe['drain']['ratio']:.3f}x ideal"
    )
    loky = stdlib_loky(args)
    if loky:
        res["loky"] = loky
        progress(f"joblib loky: {loky['async']['per_s']:,.0f} tasks/s")
    return res


def run_child(python: str, system: str, args) -> dict:
    """Runs this script as `--child system` under `python`; returns its results."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "child.json")
        cmd = [
            python,
            os.path.abspath(__file__),
            "--child",
            system,
            "--json",
            out,
            "--repeat",
            str(args.repeat),
            "--load",
            str(args.load),
        ] + (["--quick"] if args.quick else [])
        with tempfile.TemporaryFile(mode="w+") as err:
            proc = subprocess.run(cmd, stderr=err, text=True, check=False, timeout=900)
            if proc.returncode != 0:
                err.seek(0)
                sys.stderr.write(err.read()[-5000:])
                raise SystemExit(
                    f"the {system} run failed (exit {proc.returncode}): {' '.join(cmd)}"
                )
        with open(out) as f:
            return json.load(f)


# --- report --------------------------------------------------------------------------------


def targets(results: dict) -> list[tuple[str, str, str, bool | None]]:
    e, start, mem = results["ember"], results["start"], results["memory"]
    pool = dig(results, "stdlib", "pool", "async", "per_s")
    per_s = e["async"]["per_s"]
    worst_fan = max(v["ratio"] for v in e["fanout"].values())
    rows = [
        (
            "init to first result, median",
            f"<= {TARGETS['start_ms']:.0f} ms",
            f"{start['ember']['total_ms']:.0f} ms",
            start["ember"]["total_ms"] <= TARGETS["start_ms"],
        ),
        (
            "no-op tasks/s, async",
            f">= {TARGETS['async_per_s']:,.0f}/s",
            f"{per_s:,.0f}/s",
            per_s >= TARGETS["async_per_s"],
        ),
        (
            "  vs Pool.apply_async",
            f">= {TARGETS['async_vs_pool']:.0f}x",
            fmt(pool and per_s / pool, ".2f") + "x",
            None if not pool else per_s / pool >= TARGETS["async_vs_pool"],
        ),
        (
            "sync get(f.remote()) p50",
            f"<= {TARGETS['sync_p50_us']:.0f} us",
            f"{e['sync']['p50_us']:.0f} us",
            e["sync"]["p50_us"] <= TARGETS["sync_p50_us"],
        ),
        (
            "fan-out, worst k: time/ideal",
            f"<= {TARGETS['schedule_ratio']:.2f}",
            f"{worst_fan:.3f}",
            worst_fan <= TARGETS["schedule_ratio"],
        ),
        (
            "wait drain: time/ideal",
            f"<= {TARGETS['schedule_ratio']:.2f}",
            f"{e['drain']['ratio']:.3f}",
            e["drain"]["ratio"] <= TARGETS["schedule_ratio"],
        ),
        (
            "put vs by value: speedup",
            f">= {TARGETS['put_speedup']:.0f}x",
            f"{e['put']['speedup']:.1f}x",
            e["put"]["speedup"] >= TARGETS["put_speedup"],
        ),
    ]
    if "ember" in mem:
        pss = mem["ember"]["total_pss_mb"]
        rows.append(
            (
                "idle node PSS",
                f"<= {TARGETS['idle_pss_mb']:.0f} MB",
                f"{pss:.0f} MB",
                pss <= TARGETS["idle_pss_mb"],
            )
        )
    return rows


def print_report(results: dict) -> None:
    e, r, std = results["ember"], results.get("ray") or {}, results["stdlib"]
    start, mem = results["start"], results["memory"]
    has_ray = bool(r)

    rows = []
    for s in START_SYSTEMS:
        if s not in start:
            continue
        x = start[s]
        rows.append(
            [
                LABELS[s],
                f"{x['total_ms']:.0f}",
                f"{x['best_total_ms']:.0f}",
                f"{x['interpreter_ms']:.0f}",
                f"{x['import_ms']:.0f}",
                f"{x['init_ms']:.0f}",
                f"{x['first_task_ms']:.0f}",
                f"{x['exit_ms']:.0f}",
                str(len(x["runs_total_ms"])),
                times_faster(start["ember"]["total_ms"], x["total_ms"], False),
            ]
        )
    table(
        "1. init to first result: fresh `python -c`, ms (medians, but 'best' = the fastest "
        "launch;\n   phases are medians each, so they need not add up; exit = shutdown and exit)",
        [
            "system",
            "total",
            "best",
            "interp",
            "import",
            "init",
            "1st task",
            "exit",
            "runs",
            "ember x",
        ],
        rows,
        [24, 7, 6, 6, 6, 6, 8, 6, 4, 7],
    )

    asyncs = [("ember", e["async"]), ("ray", r.get("async"))] + [
        (k, dig(std, k, "async")) for k in ("pool", "ppe", "loky", "serial")
    ]
    names = {
        "pool": "Pool.apply_async",
        "ppe": "PPE.submit",
        "loky": "joblib loky",
        "serial": "serial Python",
    }
    rows = [
        [
            names.get(k, LABELS[k]),
            f"{v['per_s']:,.0f}",
            f"{v['best_per_s']:,.0f}",
            f"{v['submit_per_s']:,.0f}" if k not in ("loky", "serial") else "-",
            f"{v['n']:,}",
            times_faster(e["async"]["per_s"], v["per_s"], True),
        ]
        for k, v in asyncs
        if v
    ]
    table(
        "2. no-op tasks submitted async, then gathered: tasks/s (median of repeats; best = "
        "fastest repeat;\n   submit/s: the submission loop alone; joblib batches tasks itself)",
        ["system", "tasks/s", "best", "submit/s", "n", "ember x"],
        rows,
        [24, 10, 10, 10, 7, 7],
    )

    syncs = [
        ("ember", e["sync"]),
        ("ray", r.get("sync")),
        ("Pool.apply", dig(std, "pool", "sync")),
        ("PPE.submit().result()", dig(std, "ppe", "sync")),
    ]
    rows = [
        [
            LABELS.get(k, k),
            f"{v['p50_us']:.0f}",
            f"{v['p99_us']:.0f}",
            f"{1e6 / v['mean_us']:,.0f}",
            f"{v['calls']:,}",
            times_faster(e["sync"]["p50_us"], v["p50_us"], False),
        ]
        for k, v in syncs
        if v
    ]
    table(
        "3. sync round trip get(f.remote()) one at a time: latency, us",
        ["system", "p50", "p99", "calls/s", "calls", "ember x"],
        rows,
        [24, 7, 7, 8, 6, 7],
    )

    fans = [("ember", e["fanout"]), ("ray", r.get("fanout")), ("pool", dig(std, "pool", "fanout"))]
    rows = []
    for k in e["fanout"]:
        row = [f"x{k} (ideal {e['fanout'][k]['ideal_s']:.1f} s)"]
        for _, v in fans:
            row.append("-" if not v else f"{v[k]['s']:.3f} ({v[k]['ratio']:.3f}x)")
        rows.append(row)
    table(
        "4. seed fan-out: k tasks of time.sleep(0.3), num_cpus=2: seconds (time/ideal)",
        ["tasks", "ember", "Ray", "mp.Pool(2)"],
        rows,
        [22, 16, 16, 16],
    )

    drains = [("ember", e["drain"]), ("ray", r.get("drain")), ("ppe", dig(std, "ppe", "drain"))]
    rows = [
        [
            LABELS[k],
            f"{v['s']:.3f}",
            f"{v['ideal_s']:.3f}",
            f"{v['ratio']:.3f}",
            f"{v['ratio_measured']:.3f}",
            f"{v['idle_us_per_task']:.0f}",
            times_faster(e["drain"]["s"], v["s"], False),
        ]
        for k, v in drains
        if v
    ]
    d = e["drain"]["n"]
    over = std.get("sleep_overshoot_us")
    if over is not None:
        rows.append(["plain time.sleep +us/call", f"{over:.0f}", "", "", "", "", ""])
    table(
        f"5. {d:,} tasks sleeping 1-3 ms drained one at a time with wait(num_returns=1), s\n"
        "   /slept: time / (the sleeps as measured inside the tasks / 2); idle us: CPUs x time"
        " not spent sleeping, per task\n   (PPE: concurrent.futures.wait FIRST_COMPLETED)",
        ["system", "time", "ideal", "/ideal", "/slept", "idle us", "ember x"],
        rows,
        [24, 7, 7, 7, 7, 7, 7],
    )

    puts = [("ember", e), ("ray", r)]
    rows = [
        [
            LABELS[k],
            f"{v['put']['by_value_s'] * 1e3:.0f}",
            f"{v['put']['put_s'] * 1e3:.1f}",
            f"{v['put']['speedup']:.1f}",
            f"{v['put']['first_round']['by_value_s'] * 1e3:.0f} / "
            f"{v['put']['first_round']['put_s'] * 1e3:.1f}",
        ]
        for k, v in puts
        if v
    ]
    table(
        "6. seed put vs pass-by-value: np.zeros((5000, 5000)) to 10 no-op tasks, ms "
        "(median; 'first' = the first round, fresh store memory)",
        ["system", "by value", "via put", "speedup", "first: value / put"],
        rows,
        [24, 9, 8, 8, 18],
    )

    rows = []
    for s in START_SYSTEMS:
        if s in mem:
            m = mem[s]
            rows.append(
                [
                    LABELS[s],
                    f"{m['total_pss_mb']:.0f}",
                    f"{m['driver_pss_mb']:.0f}",
                    str(m["processes"]),
                    times_faster(mem["ember"]["total_pss_mb"], m["total_pss_mb"], False)
                    if "ember" in mem
                    else "-",
                ]
            )
    table(
        "7. idle memory after init and one task: PSS of the driver and all processes it "
        "started, MB (1 MB = 1e6 B)",
        ["system", "total", "driver", "procs", "ember x"],
        rows,
        [24, 7, 7, 6, 7],
    )

    rows = [
        [name, goal, got, "-" if ok is None else ("met" if ok else "MISSED")]
        for name, goal, got, ok in targets(results)
    ]
    table("ember against the targets", ["measure", "target", "ember", ""], rows, [30, 12, 10, 6])
    print()
    print(
        "'ember x': how many times better ember is (> 1: ember faster / smaller). "
        f"Ray {r.get('version', '-') if has_ray else 'not run (--compare-ray PYTHON)'}; "
        f"other processes kept {results['load']['other_cores_mean']} cores busy on average "
        f"(max {results['load']['other_cores_max']}); by part: "
        + ", ".join(f"{k} {v['other_cores_mean']}" for k, v in results["load_by_part"].items())
        + "."
    )
    print(f"ember: {e['version']}")


# --- main ----------------------------------------------------------------------------------


@contextlib.contextmanager
def cpu_burners(n: int):
    """n processes that each keep a CPU busy until the block ends."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.5)  # running before anything is measured
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def under_load(args) -> None:
    """--load N: parts 2-3 for ember, Pool and (--compare-ray) Ray, each beside N burners."""
    systems = {"ember": (sys.executable, "ember"), "pool": (sys.executable, "stdlib")}
    if args.compare_ray:
        systems["ray"] = (args.compare_ray, "ray")
    results: dict = {"meta": {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "ember_checkout": git_describe(),
        "load": args.load,
    }}
    for system, (python, child) in systems.items():
        progress(f"{LABELS[system]} beside {args.load} CPU-bound processes")
        with cpu_burners(args.load):
            out = run_child(python, child, args)
        results[system] = out["pool"] if system == "pool" else out
    pool = results["pool"]["async"]["per_s"]
    rows = [
        [LABELS[s], f"{r['async']['per_s']:,.0f}", f"{r['async']['per_s'] / pool:.2f}x",
         f"{r['sync']['p50_us']:.0f}", f"{r['sync']['p99_us']:.0f}"]
        for s, r in results.items() if s != "meta"
    ]
    table(f"Under --load {args.load} ({os.cpu_count()} CPUs):",
          ["system", "no-op tasks/s", "vs Pool", "sync p50 us", "sync p99 us"], rows,
          [24, 14, 8, 12, 12])
    ember_res = results["ember"]
    print(f"targets: tasks/s >= 1.5x Pool: {ember_res['async']['per_s'] / pool:.2f}x; "
          f"sync p50 <= 200 us: {ember_res['sync']['p50_us']:.0f} us")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
        print(f"results written to {args.json}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="a short smoke run")
    p.add_argument(
        "--compare-ray",
        metavar="PYTHON",
        help="also measure Ray, running under this Python interpreter",
    )
    p.add_argument("--json", metavar="OUT", help="write all results to this file")
    p.add_argument(
        "--repeat",
        type=int,
        metavar="N",
        default=5,
        help="timed repetitions of the fast measurements (start-up launches: "
        "2N+1 per system, Ray 3)",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=None,
        metavar="S",
        help="before each part, wait up to S seconds for other processes to leave "
        "the CPUs idle (default 20; --quick: 0)",
    )
    p.add_argument(
        "--load",
        type=int,
        default=0,
        metavar="N",
        help="run N CPU-bound processes beside the benchmark and measure parts 2-3 only",
    )
    p.add_argument("--child", choices=("ember", "ray", "stdlib"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    q = args.quick
    if args.load < 0:
        p.error("--load must be at least 0")
    if args.wait_quiet is None:
        args.wait_quiet = 0.0 if q else 20.0
    args.n_async = 1000 if q else 10_000
    args.ray_async = 1000 if q else 5000
    args.n_sync = 300 if q else 3000
    args.ray_sync = 200 if q else 1000
    args.n_stream = 2000 if q else 20000
    args.ray_stream = 500 if q else 2000
    args.fanout = (4,) if q else (4, 8, 16)
    args.n_drain = 200 if q else 1000
    args.drain_repeat = 1 if q else 3
    args.put_repeat = 1 if q else 3
    args.start_runs = 2 if q else 2 * args.repeat + 1
    args.ray_start_runs = 1 if q else 3
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        res = run_stdlib(args) if args.child == "stdlib" else run_runtime(args.child, args)
        with open(args.json, "w") as f:
            json.dump(res, f)
        return

    if args.load:
        under_load(args)
        return
    t_begin = time.perf_counter()
    results: dict = {
        "meta": {
            "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
            f"{psutil.virtual_memory().total / 2**30:.1f} GiB RAM",
            "kernel": platform.release(),
            "python": sys.version.split()[0],
            "ember_checkout": git_describe(),
            "quick": args.quick,
            "repeat": args.repeat,
        },
    }
    pythons = {"ember": sys.executable}
    if args.compare_ray:
        pythons["ray"] = args.compare_ray
    pythons.update(pool=sys.executable, ppe=sys.executable)
    try:
        import joblib  # noqa: F401, PLC0415

        pythons["loky"] = sys.executable
    except ImportError:
        progress("joblib is not installed: no joblib numbers (pip install joblib)")
    runs = {s: args.ray_start_runs if s == "ray" else args.start_runs for s in pythons}

    parts = {
        "start": lambda: measure_start(pythons, runs),
        "memory": lambda: {s: measure_memory(py, s) for s, py in pythons.items()},
        "ember": lambda: run_child(sys.executable, "ember", args),
        "stdlib": lambda: run_child(sys.executable, "stdlib", args),
    }
    if args.compare_ray:
        parts["ray"] = lambda: run_child(args.compare_ray, "ray", args)
    titles = {
        "start": "1. start-up: fresh interpreters, round robin",
        "memory": "7. idle memory",
        "ember": "2-6. ember",
        "stdlib": "2-5. references: multiprocessing, concurrent.futures, joblib, serial",
        "ray": "2-6. Ray",
    }
    results["load_by_part"] = {}
    with LoadMonitor() as mon:
        for part, run in parts.items():
            wait_quiet(args.wait_quiet, monitor=LoadMonitor)
            progress(titles[part])
            with LoadMonitor() as part_mon:
                results[part] = run()
            results["load_by_part"][part] = part_mon.summary()
    results["load"] = mon.summary()
    results["meta"]["seconds"] = round(time.perf_counter() - t_begin, 1)
    results["targets"] = [
        {"measure": a, "target": b, "ember": c, "met": d} for a, b, c, d in targets(results)
    ]
    print_report(results)
    print(f"\n(whole run: {results['meta']['seconds']:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
        print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
