"""Object store benchmark: put throughput, get latency and small-object rates, ember vs Ray.

Run from the repository root::

    python bench/put_get.py                                   # ember only, ~1 minute
    python bench/put_get.py --compare-ray RAY_VENV/bin/python --json out.json
    python bench/put_get.py --quick                           # smoke run, seconds

One run measures, for each size of float64 array (default 1 MiB, 16 MiB, 256 MiB, 1 GiB):

    memcpy warm    np.copyto into a preallocated, already written buffer (1 thread): the
                   machine's copy bandwidth, the reference for a warm put
    memcpy fresh   np.copyto into a fresh shared mapping (1 thread, faulting page by page):
                   the reference for a cold put
    put warm       put into a store that already held (and freed) objects of that size:
                   after a warm-up that pushes the store's capacity through it,
                   ``ref = put(a); del ref`` repeated, so the put reuses written memory
    put cold       put into memory the store never touched. ember: a fresh ``init()`` per
                   sample and size (a new memfd: every page is allocated, zeroed and mapped
                   by the kernel during the put; nothing prefaulted it). Ray: a fresh
                   ``ray.init()`` per sample (Ray's start-up takes seconds), then one put per
                   size, largest first, every ref kept, so each put lands in plasma memory
                   nothing used before (Ray prefaults nothing by default).
    get            latency of ``get`` of one existing object (median of 2,000; each result is
                   dropped before the next get)
    small          10,000 ``put`` of a small int, then 10,000 ``get`` (one call per ref):
                   puts/s and gets/s (median of 3)

Before each cold sample the benchmark writes and frees a scratch mapping of the same size.
On a VM, guest memory that the hypervisor has not backed yet (or took back through free-page
reporting) costs a second, much slower fault on first touch, and which pages a new mapping
gets is luck; the scratch touch makes the pages a fresh mapping receives hypervisor-backed, so
"cold" means cold for the kernel and the process, the same for ember and for Ray.

With ``--compare-ray PYTHON`` the script also runs itself under that interpreter with
``--backend ray`` (the same code measures both) and drives the two step by step, in turns,
so that both meet the same state of a shared machine; it prints ember/ray ratios. After each
``init()`` it waits until the backend's child processes are idle (Ray starts its GCS, raylet
and workers in the background). A thread samples, once a second, how many cores processes
outside the benchmark keep busy, and the report states it. All times are
``time.perf_counter``; every figure is a median. matplotlib is not needed here:
``bench/plot.py`` draws the figure from the JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import mmap
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from _common import (
    LoadMonitor,
    descendants,
    gbps,
    int_keys,
    machine_info,
    no_gc,
    parse_size,
    proc_table,
    progress,
    serve,
    spawn_backend,
    wait_quiet,
)
from _common import fmt as num

MiB = 1 << 20
GiB = 1 << 30
DEFAULT_SIZES = "1MiB,16MiB,256MiB,1GiB"
QUICK_SIZES = "1MiB,16MiB"
MADV_POPULATE_WRITE = 23  # Linux 5.14+

#: Targets for ember, checked in the summary (docs/performance.md states them).
GET_TARGET_US = 30.0
SMALL_TARGET_PER_S = 100_000


# --- sizes and formatting -----------------------------------------------------------------


def fmt_size(n: int) -> str:
    for unit, mult in (("GiB", GiB), ("MiB", MiB), ("KiB", 1 << 10)):
        if n >= mult and n % mult == 0:
            return f"{n // mult} {unit}"
    return f"{n} B"


# --- backends: the same measurements drive ember and Ray ------------------------------------


class Ember:
    name = "ember"

    def __init__(self):
        import ember  # noqa: PLC0415 (ember is not importable in the Ray run)

        self.mod = ember
        self.version = ember.__version__
        try:  # which source the installed ember was measured from, if run in a checkout
            here = os.path.dirname(os.path.abspath(__file__))
            self.version += (
                " ("
                + subprocess.run(
                    ["git", "-C", here, "describe", "--always", "--dirty"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                    check=False,
                ).stdout.strip()
                + " checkout)"
            )
        except (OSError, subprocess.SubprocessError):
            pass

    def init(self, store_bytes: int) -> None:
        self.mod.init(num_cpus=2, object_store_memory=store_bytes)

    def shutdown(self) -> None:
        self.mod.shutdown()

    def put(self, value):
        return self.mod.put(value)

    def get(self, ref):
        return self.mod.get(ref)


class Ray:
    name = "ray"

    def __init__(self):
        import ray  # noqa: PLC0415 (Ray is not importable in the ember run)

        self.mod = ray
        self.version = ray.__version__

    def init(self, store_bytes: int) -> None:
        self.mod.init(
            num_cpus=2,
            object_store_memory=store_bytes,
            include_dashboard=False,
            logging_level="ERROR",
        )

    def shutdown(self) -> None:
        self.mod.shutdown()

    def put(self, value):
        return self.mod.put(value)

    def get(self, ref):
        return self.mod.get(ref)


BACKENDS = {"ember": Ember, "ray": Ray}


# --- helpers -----------------------------------------------------------------------------


def timed(fn, *args) -> float:
    """Seconds one call of fn(*args) takes; its result is dropped before returning."""
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def sample(fn, min_n: int, max_n: int, budget_s: float) -> list[float]:
    """Times fn() at least min_n times, and on up to max_n while within budget_s."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_n or (len(times) < max_n and time.perf_counter() - start < budget_s):
        times.append(fn())
    return times


def source_array(nbytes: int) -> np.ndarray:
    """A written (not lazily zero-mapped) float64 array of nbytes."""
    return np.arange(nbytes // 8, dtype=np.float64)


def touch_and_free(nbytes: int) -> None:
    """Writes and frees a shared mapping of nbytes (see the module docstring: hypervisor)."""
    m = mmap.mmap(-1, nbytes)
    try:
        m.madvise(MADV_POPULATE_WRITE, 0, nbytes)
    except (OSError, AttributeError):
        np.frombuffer(m, dtype=np.uint8)[::4096] = 1
    m.close()


def descendants_cpu_s() -> float | None:
    """CPU seconds used so far by this process's descendants (Ray's GCS, raylet, workers);
    None when it has none."""
    procs = proc_table()
    mine = descendants(procs, os.getpid())
    if not mine:
        return None
    return sum(procs[p][1] for p in mine) / os.sysconf("SC_CLK_TCK")


def wait_settled(timeout_s: float = 20.0, window_s: float = 0.25, max_busy: float = 0.05) -> float:
    """Waits until this process's children (Ray starts its GCS, raylet and worker processes
    in the background of init) use under max_busy of a core for two windows in a row;
    returns the seconds waited. Other tenants of the machine are not waited for."""
    start = time.perf_counter()
    calm = 0
    try:
        before = descendants_cpu_s()
        if before is None:  # ember: no background processes yet
            return 0.0
        while calm < 2 and time.perf_counter() - start < timeout_s:
            time.sleep(window_s)
            now = descendants_cpu_s() or 0.0
            calm = calm + 1 if now - before < max_busy * window_s else 0
            before = now
    except OSError:  # no /proc: settle for a fixed pause
        time.sleep(2.0)
    return time.perf_counter() - start


def start(b, store_bytes: int) -> float:
    """Starts backend b and lets its background start-up finish; returns init()'s seconds."""
    t = time.perf_counter()
    b.init(store_bytes)
    dt = time.perf_counter() - t
    wait_settled()
    return dt


# --- measurements ------------------------------------------------------------------------


def measure_memcpy(sizes, srcs, args) -> dict:
    """The machine's references: single-thread copies into warm and into fresh memory."""
    warm, fresh = {}, {}
    for size in sizes:
        src = srcs[size]
        dst = np.empty_like(src)
        np.copyto(dst, src)  # warm-up: dst is now written memory
        with no_gc():
            ts = sample(lambda d=dst, s=src: timed(np.copyto, d, s), args.repeat, 50, 0.5)
        warm[size] = gbps(size, statistics.median(ts))
        del dst

        fts = []
        for _ in range(args.cold_repeat):
            touch_and_free(size)
            m = mmap.mmap(-1, size)
            view = np.frombuffer(m, dtype=np.float64)
            fts.append(timed(np.copyto, view, src))
            del view
            m.close()
        fresh[size] = gbps(size, statistics.median(fts))
        progress(
            f"memcpy {fmt_size(size)}: warm {warm[size]:.2f} GB/s, fresh {fresh[size]:.2f} GB/s"
        )
    return {"memcpy_warm_gbps": warm, "memcpy_fresh_gbps": fresh}


class Runner:
    """The measurements of one backend, run in this process one step at a time.

    The benchmark drives ember's Runner in its own process and, with --compare-ray, Ray's in a
    child process (RemoteRunner), alternating steps between the two so both backends meet the
    same state of a shared, noisy machine. Each step returns a JSON-able dict.
    """

    def __init__(self, name: str, args):
        self.name = name
        self.args = args
        self.b = BACKENDS[name]()
        self.srcs = {s: source_array(s) for s in args.size_list}

    def info(self) -> dict:
        return {"version": self.b.version, "python": sys.executable, "numpy": np.__version__}

    def start(self) -> dict:
        return {"init_s": start(self.b, self.args.store_bytes)}

    def stop(self) -> dict:
        self.b.shutdown()
        return {}

    def put_warm_and_get(self, size: int) -> dict:
        b, a, args = self.b, self.srcs[size], self.args
        # Warm-up: push the store's capacity through it (at least 3 puts), so every block a
        # put may land in has been written before. Ray frees asynchronously, so its next put
        # often goes to another block than the one just freed; ember reuses the same one.
        pushed, n, t0 = 0, 0, time.perf_counter()
        while n < 3 or (pushed < args.store_bytes and time.perf_counter() - t0 < 15.0):
            ref = b.put(a)
            del ref
            pushed, n = pushed + size, n + 1
        with no_gc():  # the ref returned by put is dropped at once: its memory is freed
            ts = sample(lambda: timed(b.put, a), args.repeat, 50, 1.0)

        ref = b.put(a)
        for _ in range(50):
            x = b.get(ref)
            del x
        gts = []
        with no_gc():
            for _ in range(args.gets):
                t = time.perf_counter()
                x = b.get(ref)
                gts.append(time.perf_counter() - t)
                del x
        assert b.get(ref)[-1] == a[-1]
        del ref
        out = {
            "put_warm_gbps": gbps(size, statistics.median(ts)),
            "put_warm_warmups": n,
            "get_us": statistics.median(gts) * 1e6,
        }
        progress(
            f"{self.name} {fmt_size(size)}: put warm {out['put_warm_gbps']:.2f} GB/s ({n} "
            f"warm-ups, {len(ts)} samples), get {out['get_us']:.1f} us"
        )
        return out

    def small(self) -> dict:
        b, n = self.b, self.args.small
        puts, gets = [], []
        for _ in range(3):
            with no_gc():
                t0 = time.perf_counter()
                refs = [b.put(i) for i in range(n)]
                t1 = time.perf_counter()
                vals = [b.get(r) for r in refs]
                t2 = time.perf_counter()
            assert vals[-1] == n - 1
            del refs, vals
            puts.append(n / (t1 - t0))
            gets.append(n / (t2 - t1))
        out = {
            "small_put_per_s": statistics.median(puts),
            "small_get_per_s": statistics.median(gets),
        }
        progress(
            f"{self.name} small int x{n}: {out['small_put_per_s']:,.0f} puts/s, "
            f"{out['small_get_per_s']:,.0f} gets/s"
        )
        return out

    def cold_sample(self) -> dict:
        """One cold put of each size: {size: seconds}."""
        b, args, out = self.b, self.args, {}
        if self.name == "ray":
            # Ray's init takes seconds: one fresh ray.init per sample, one put per size, refs
            # kept so no put reuses memory another one touched.
            start(b, args.store_bytes)
            keep = []
            for size in sorted(args.size_list, reverse=True):
                touch_and_free(size)
                t = time.perf_counter()
                keep.append(b.put(self.srcs[size]))
                out[size] = time.perf_counter() - t
            del keep
            b.shutdown()
        else:
            # ember's init takes milliseconds: a fresh store (a new memfd) per sample and size.
            for size in args.size_list:
                touch_and_free(size)
                start(b, args.store_bytes)
                out[size] = timed(b.put, self.srcs[size])
                b.shutdown()
        progress(
            f"{self.name} cold put: "
            + ", ".join(f"{fmt_size(s)} {gbps(s, t):.2f} GB/s" for s, t in sorted(out.items()))
        )
        return out


class RemoteRunner:
    """A Runner for Ray in a child process: this script run by `python` with --backend ray.

    Calls go as JSON lines on the child's stdin; results come back on a pipe of their own, so
    whatever Ray prints cannot garble them. The child's stdout (progress) is shared with ours;
    its stderr (Ray's logging) is kept and shown only if the child fails.
    """

    def __init__(self, python: str, args):
        self.name = "ray"
        self.cmd, self.proc, self.replies, self.stderr = spawn_backend(
            python, __file__, "ray", forwarded_args(args)
        )

    def call(self, method: str, *call_args):
        try:
            self.proc.stdin.write(json.dumps({"method": method, "args": call_args}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        line = self.replies.readline()
        if not line:
            self.proc.wait()
            self.stderr.seek(0)
            sys.stderr.write(self.stderr.read()[-20000:])
            raise SystemExit(f"the Ray run failed (exit {self.proc.returncode}): {self.cmd}")
        return int_keys(json.loads(line))

    def __getattr__(self, method: str):
        return lambda *call_args: self.call(method, *call_args)

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.replies.close()


def forwarded_args(args) -> list[str]:
    return [
        "--sizes", ",".join(str(s) for s in args.size_list),
        "--repeat", str(args.repeat),
        "--cold-repeat", str(args.cold_repeat),
        "--ray-cold-repeat", str(args.ray_cold_repeat),
        "--gets", str(args.gets),
        "--small", str(args.small),
        "--store-bytes", str(args.store_bytes),
    ]  # fmt: skip


def measure_all(runners: list, args) -> tuple[dict, dict]:
    """Runs every step on every runner, alternating; returns (reference, results)."""
    sizes = args.size_list
    results = {r.name: r.info() for r in runners}
    turn = [runners, runners[::-1]]  # who goes first alternates from step to step
    reference = measure_memcpy(sizes, runners[0].srcs, args)
    for r in turn[0]:
        results[r.name].update(r.start())
    for i, size in enumerate(sizes):
        for r in turn[(i + 1) % 2]:
            for key, value in r.put_warm_and_get(size).items():
                results[r.name].setdefault(key, {})[size] = value
    for r in turn[len(sizes) % 2]:
        results[r.name].update(r.small())
    for r in runners:
        r.stop()
    n_cold = {"ember": args.cold_repeat, "ray": args.ray_cold_repeat}
    cold = {r.name: {s: [] for s in sizes} for r in runners}
    for i in range(max(n_cold.values())):
        for r in turn[i % 2]:
            if i < n_cold[r.name]:
                for size, t in r.cold_sample().items():
                    cold[r.name][size].append(t)
    for name, samples in cold.items():
        results[name]["put_cold_samples_s"] = samples
        results[name]["put_cold_gbps"] = {
            s: gbps(s, statistics.median(ts)) for s, ts in samples.items()
        }
    return reference, results


def run(args) -> dict:
    """All measurements, ember's and (with --compare-ray) Ray's, steps alternating."""
    runners = [Runner("ember", args)]
    if args.compare_ray:
        print(f"ray: measured by this script under {args.compare_ray}", flush=True)
        runners.append(RemoteRunner(args.compare_ray, args))
    wait_quiet(args.wait_quiet, max_cores=0.1)
    with LoadMonitor() as mon:
        reference, results = measure_all(runners, args)
    for r in runners[1:]:
        r.close()
    load = mon.summary()
    progress(
        f"other processes kept {load['other_cores_mean']} cores busy on average "
        f"(max {load['other_cores_max']})"
    )
    return {"reference": reference, "load": load, "results": results}


# --- report ------------------------------------------------------------------------------


def ratio(a, b) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}"


def print_report(doc: dict) -> None:
    sizes, ref, load = doc["sizes"], doc["reference"], doc["load"]
    e = doc["results"]["ember"]
    r = doc["results"].get("ray", {})
    rg = lambda key, s: r.get(key, {}).get(s)  # noqa: E731

    print()
    print("put throughput, GB/s (1 GB = 1e9 bytes; medians; ember/ray > 1: ember faster)")
    head = (
        f"{'size':>8} | {'memcpy':>7} {'ember':>7} {'ray':>7} {'e/r':>5} | "
        f"{'memcpy':>7} {'ember':>7} {'ray':>7} {'e/r':>5}"
    )
    print(f"{'':>8} | {'--- warm store ':-<30} | {'--- cold store ':-<30}")
    print(head)
    print("-" * len(head))
    for s in sizes:
        print(
            f"{fmt_size(s):>8} | {ref['memcpy_warm_gbps'][s]:7.2f} {e['put_warm_gbps'][s]:7.2f} "
            f"{num(rg('put_warm_gbps', s), '7.2f'):>7} "
            f"{ratio(e['put_warm_gbps'][s], rg('put_warm_gbps', s)):>5} | "
            f"{ref['memcpy_fresh_gbps'][s]:7.2f} {e['put_cold_gbps'][s]:7.2f} "
            f"{num(rg('put_cold_gbps', s), '7.2f'):>7} "
            f"{ratio(e['put_cold_gbps'][s], rg('put_cold_gbps', s)):>5}"
        )
    print("memcpy = np.copyto, 1 thread: into a written buffer (warm), into a fresh mapping (cold)")

    print()
    print("get latency of an existing object, us (median; ember/ray < 1: ember faster)")
    head = f"{'size':>8} | {'ember':>8} {'ray':>8} {'e/r':>6}"
    print(head)
    print("-" * len(head))
    for s in sizes:
        print(
            f"{fmt_size(s):>8} | {e['get_us'][s]:8.1f} {num(rg('get_us', s), '8.1f'):>8} "
            f"{ratio(e['get_us'][s], rg('get_us', s)):>6}"
        )

    print()
    print("small int objects, per second (median of 3 runs; ember/ray > 1: ember faster)")
    head = f"{'':>8} | {'ember':>10} {'ray':>10} {'e/r':>6}"
    print(head)
    print("-" * len(head))
    for key, label in (("small_put_per_s", "put"), ("small_get_per_s", "get")):
        print(
            f"{label:>8} | {e[key]:10,.0f} {num(r.get(key), '10,.0f'):>10} "
            f"{ratio(e[key], r.get(key)):>6}"
        )

    print()
    print(
        f"cores kept busy by other processes during the run: {load['other_cores_mean']} on "
        f"average, {load['other_cores_max']} at most (1 s samples)"
    )
    if (load["other_cores_mean"] or 0) > 0.25:
        print(
            "WARNING: the machine was busy with other work; these numbers are not clean "
            "(try --wait-quiet 300)"
        )

    print()
    print("targets (ember):")
    big = max(sizes)
    for kind in ("warm", "cold"):
        key = f"put_{kind}_gbps"
        ev, rv = e[key][big], rg(key, big)
        verdict = "n/a (no Ray run)" if rv is None else ("met" if ev >= rv else "MISSED")
        print(f"  put {fmt_size(big)} {kind} >= Ray: {verdict} ({ev:.2f} vs {num(rv, '.2f')} GB/s)")
    worst = max(e["get_us"].values())
    verdict = "met" if worst <= GET_TARGET_US else "MISSED"
    print(f"  get <= {GET_TARGET_US:.0f} us at every size: {verdict} (worst {worst:.1f} us)")
    for key, label in (("small_put_per_s", "puts"), ("small_get_per_s", "gets")):
        ok = e[key] >= SMALL_TARGET_PER_S
        print(
            f"  >= {SMALL_TARGET_PER_S:,} small {label}/s: {'met' if ok else 'MISSED'} "
            f"({e[key]:,.0f}/s)"
        )


# --- main --------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--sizes", default=None, help=f"comma-separated array sizes (default {DEFAULT_SIZES})"
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="minimum samples per warm measurement (default 5; 3 with --quick)",
    )
    p.add_argument(
        "--cold-repeat",
        type=int,
        default=None,
        help="cold-store samples per size for ember and memcpy (default: --repeat)",
    )
    p.add_argument(
        "--ray-cold-repeat",
        type=int,
        default=None,
        help="fresh ray.init() samples for Ray's cold puts (default 3; 1 with --quick)",
    )
    p.add_argument(
        "--gets",
        type=int,
        default=None,
        help="timed gets per size (default 2000; 200 with --quick)",
    )
    p.add_argument(
        "--small",
        type=int,
        default=None,
        help="small-int puts and gets per run (default 10000; 2000 with --quick)",
    )
    p.add_argument(
        "--store-bytes",
        type=int,
        default=None,
        help="object_store_memory (default: max(3 GiB, 3 x the largest size))",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="first wait up to S seconds for the machine's other processes to go quiet "
        "(default 0: do not wait)",
    )
    p.add_argument("--quick", action="store_true", help=f"fast smoke run ({QUICK_SIZES})")
    p.add_argument(
        "--compare-ray",
        metavar="PYTHON",
        help="a python with Ray installed (e.g. RAY_VENV/bin/python)",
    )
    p.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    # internal: the Ray side of --compare-ray is this script under Ray's python
    p.add_argument("--backend", choices=sorted(BACKENDS), help=argparse.SUPPRESS)
    p.add_argument("--result-fd", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if (args.backend is None) != (args.result_fd is None):
        p.error("--backend and --result-fd are internal to --compare-ray; use --compare-ray")

    q = args.quick
    sizes = args.sizes or (QUICK_SIZES if q else DEFAULT_SIZES)
    args.size_list = [parse_size(s) for s in sizes.split(",")]
    args.repeat = args.repeat or (3 if q else 5)
    args.cold_repeat = args.cold_repeat or args.repeat
    args.ray_cold_repeat = args.ray_cold_repeat or (1 if q else 3)
    args.gets = args.gets or (200 if q else 2000)
    args.small = args.small or (2000 if q else 10_000)
    args.store_bytes = args.store_bytes or max(3 * GiB, 3 * max(args.size_list))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.backend:  # the Ray side of --compare-ray, driven by the ember run
        serve(Runner(args.backend, args), args.result_fd)
        return 0
    started = time.time()
    print(
        f"sizes {', '.join(fmt_size(s) for s in args.size_list)}; store "
        f"{fmt_size(args.store_bytes)}",
        flush=True,
    )
    argv_text = argv if argv is not None else sys.argv[1:]
    doc = {
        "benchmark": "put_get",
        "command": " ".join([os.path.basename(sys.executable), sys.argv[0], *argv_text]),
        "machine": machine_info(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "sizes": args.size_list,
        "store_bytes": args.store_bytes,
        "repeat": args.repeat,
    }
    doc.update(run(args))
    doc["seconds"] = round(time.time() - started, 1)
    print_report(doc)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"\nwrote {args.json}")
    print(f"total {doc['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
