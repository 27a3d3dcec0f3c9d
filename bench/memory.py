"""Memory benchmark: put/free churn, a workload twice the store's size, and restore cost.

Run from the repository root::

    python bench/memory.py --json memory.json                 # ember only, about 1-2 minutes
    python bench/memory.py --compare-ray RAY_VENV/bin/python   # + Ray for parts 1 and 2
    python bench/memory.py --quick                            # smoke run, about 15 s

One run measures, each part on a fresh node (``init(num_cpus=2, object_store_memory=...)``):

    1 churn    1,000 ``put`` of one 50 MB float64 array into a 1 GiB store, two ways:
               "drop": each ref dropped right after its put; "window": the last 4 refs kept
               (a deque), and each object read back with ``get`` (a view, dropped at once).
               Every 50 puts: the PSS of the driver and all its descendants
               (``/proc/<pid>/smaps_rollup``; shared-memory pages are split between the
               processes that map them, so the sum counts the store once) and the store's
               ``used_bytes`` / ``high_water``, and the store's pages resident in the driver
               (``Rss`` of the segment's mapping in ``/proc/self/smaps``). Reported: before
               the first put (start), after a fifth of the puts (warm: the store's prefaulter
               may still be warming pages just after the start), after the last ref is
               dropped (end), and the peak.
    2 spill    a 512 MiB store and 1 GiB of distinct int64 arrays (32 MiB each): all put
               (every ref kept), then each one read back with ``get`` and compared in full
               with what was put. Then the same amount produced as task results (32 tasks,
               each returning a 32 MiB array: the workers spill), read back and compared.
               Reported: times, objects and bytes spilled, restores, and what is left in
               the store and the spill directory once every ref is dropped.
    3 restore  ``get`` of one spilled object, by size, against reading a file of that size
               on the same filesystem (a file in the node's session directory, read with
               one ``readv`` into a written buffer, as ember's restore reads into the store).
               cold: the file was flushed (``fsync``) and dropped from the page cache
               (``posix_fadvise(DONTNEED)``) first, and ``fincore`` confirms no page of it
               is cached; warm: the file's pages are in the page cache (a spill file is
               written without ``fsync``, so a restore soon after a spill reads memory).
               To spill an object, the benchmark puts it, then puts a filler of
               (store - size/2) bytes, which pushes it out, and drops the filler, so the
               restore lands in free, already written store memory. Also timed: a get of the
               object once restored, and deleting a file just read (a restore deletes its
               spill file). Median of 5 samples per size, cold and warm in turns.

With ``--compare-ray PYTHON`` parts 1 and 2 also run under Ray (this script, in a child
process under that interpreter). Ray's store statistics need gRPC, which a minimal Ray
install lacks; for Ray, "spilled" is the size of its spill directory after the puts. Part 3 is
ember's only: Ray fuses spilled objects into shared files, so one object's file cannot be
dropped from the cache alone. A thread samples once a second how many cores processes
outside the benchmark keep busy; the report states it, and ``--wait-quiet S`` first waits up
to S seconds for a quiet machine. Times are ``time.perf_counter``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import psutil

import _common
from _common import gbps, int_keys, machine_info, parse_size, progress, wait_quiet

MiB = 1 << 20
GiB = 1 << 30
MB = 10**6

#: Targets for ember (docs/performance.md states them).
RETURN_TOLERANCE = 0.05  # memory in use after the churn within 5% of its level
RESTORE_VS_DISK = 0.5  # a restore reads at >= half the disk's sequential read speed
TRIM_WAIT_S = 11.0  # churn's end is measured this long after the last ref goes (ember: 10 s)


# --- formatting --------------------------------------------------------------------------


def fmt_size(n: int) -> str:
    for unit, mult in (("GiB", GiB), ("MiB", MiB), ("KiB", 1 << 10)):
        if n >= mult and n % mult == 0:
            return f"{n // mult} {unit}"
    if n >= MB and n % MB == 0:
        return f"{n // MB} MB"
    return f"{n} B"


def mb(n) -> str:
    return "-" if n is None else f"{n / MB:,.0f}"


# --- process-tree memory, CPU and the page cache ------------------------------------------


def tree() -> list[psutil.Process]:
    me = psutil.Process()
    return [me, *me.children(recursive=True)]


def pss_bytes(pid: int) -> int:
    """Proportional set size of one process (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_pss() -> tuple[int, int]:
    """(PSS of this process and all its descendants, how many processes)."""
    procs = tree()
    return sum(pss_bytes(p.pid) for p in procs), len(procs)


def segment_rss() -> int:
    """Bytes of ember's shared segment (the store) mapped in this process."""
    rss, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            if not line[0].isupper():  # a mapping's header: "start-end perms ... name"
                inside = "memfd:ember-segment" in line
            elif inside and line.startswith("Rss:"):
                rss += int(line.split()[1]) * 1024
    return rss


def tree_cpu_s() -> float:
    total = 0.0
    for p in tree():
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def wait_settled(min_s: float, max_s: float = 30.0, window_s: float = 0.5) -> float:
    """Waits at least min_s, then until the process tree uses under 5% of a core for two
    windows in a row (Ray starts processes in the background of init; CPU times tick in
    10 ms steps, so a lower bar would read an idle tree's housekeeping as busy)."""
    start = time.perf_counter()
    time.sleep(min_s)
    calm, before = 0, tree_cpu_s()
    while calm < 2 and time.perf_counter() - start < max_s:
        time.sleep(window_s)
        now = tree_cpu_s()
        calm = calm + 1 if now - before < 0.05 * window_s else 0
        before = now
    return time.perf_counter() - start


class LoadMonitor(_common.LoadMonitor):
    """_common.LoadMonitor, counting this process tree's CPU time through psutil."""

    def _mine_and_busy(self) -> tuple[float, float]:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return tree_cpu_s(), (v[0] + v[1] + v[2] + v[5] + v[6]) / os.sysconf("SC_CLK_TCK")


def drop_from_cache(path: str) -> None:
    """Writes the file's dirty pages out, then asks the kernel to drop its cached pages."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def cached_bytes(path: str) -> int | None:
    """Bytes of the file in the page cache (util-linux fincore), None if unknown."""
    try:
        out = subprocess.run(
            ["fincore", "--bytes", "--noheadings", "--output", "RES", path],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return int(out.split()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def read_into(path: str, buf: np.ndarray) -> float:
    """Seconds to open `path` and read all of it into `buf` (read calls of up to 1 GiB, as
    ember's restore does)."""
    view = memoryview(buf).cast("B")
    t = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    try:
        at = 0
        while at < len(view):
            n = os.readv(fd, [view[at : at + GiB]])
            if n <= 0:
                raise OSError(f"short read of {path}")
            at += n
    finally:
        os.close(fd)
    return time.perf_counter() - t


def write_file(path: str, data: np.ndarray) -> None:
    with open(path, "wb") as f:
        f.write(memoryview(data).cast("B"))


# --- backends: the same measurements drive ember and Ray ------------------------------------


class Ember:
    name = "ember"

    def __init__(self):
        import ember  # noqa: PLC0415 (ember is not importable in the Ray run)

        self.mod = ember
        self.version = ember.__version__
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            here = os.path.dirname(os.path.abspath(__file__))
            head = subprocess.run(
                ["git", "-C", here, "describe", "--always", "--dirty"],
                capture_output=True, text=True, timeout=10, check=False,
            ).stdout.strip()  # fmt: skip
            self.version += f" ({head} checkout; the installed build may differ)"

    def init(self, store_bytes: int) -> None:
        self.info = self.mod.init(num_cpus=2, object_store_memory=store_bytes)
        self.store = self.mod._node.current().store

    def shutdown(self) -> None:
        self.mod.shutdown()

    def stats(self) -> dict:
        return dict(self.store.stats())

    def spill_dir(self) -> str:
        return os.path.join(self.info.session_dir, "spill")

    def put(self, value):
        return self.mod.put(value)

    def get(self, ref):
        return self.mod.get(ref)

    def remote(self, fn):
        return self.mod.remote(fn)

    def wait_all(self, refs) -> None:
        self.mod.wait(refs, num_returns=len(refs))


class Ray:
    name = "ray"

    def __init__(self):
        import ray  # noqa: PLC0415 (Ray is not importable in the ember run)

        self.mod = ray
        self.version = ray.__version__

    def init(self, store_bytes: int) -> None:
        self.ctx = self.mod.init(
            num_cpus=2,
            object_store_memory=store_bytes,
            include_dashboard=False,
            logging_level="ERROR",
        )

    def shutdown(self) -> None:
        self.mod.shutdown()

    def spill_dir(self) -> str | None:
        session = self.ctx.address_info["session_dir"]
        dirs = [d for d in os.listdir(session) if d.startswith("ray_spilled_objects")]
        return os.path.join(session, dirs[0]) if dirs else None

    def stats(self) -> dict:
        """What can be had without gRPC: the files in the spill directory."""
        d = self.spill_dir()
        files = [os.path.join(d, f) for f in os.listdir(d)] if d else []
        return {
            "spill_files": len(files),
            "spill_file_bytes": sum(os.path.getsize(f) for f in files),
        }

    def put(self, value):
        return self.mod.put(value)

    def get(self, ref):
        return self.mod.get(ref)

    def remote(self, fn):
        return self.mod.remote(fn)

    def wait_all(self, refs) -> None:
        self.mod.wait(refs, num_returns=len(refs), fetch_local=False)


BACKENDS = {"ember": Ember, "ray": Ray}


def make_block(i: int, count: int):
    """A task's result: block i of int64 counting, distinct from every other block."""
    import numpy as np  # noqa: PLC0415 (runs in a worker)

    return np.arange(i * count, (i + 1) * count, dtype=np.int64)


# --- 1 churn -----------------------------------------------------------------------------


def churn(b, args, window: int) -> dict:
    """args.churn_n puts of one array; window=0 drops each ref at once, else keeps the last
    `window` refs and reads each object back."""
    b.init(args.churn_store)
    src = np.arange(args.churn_size // 8, dtype=np.float64)
    last = src[-1]
    settled = wait_settled(0.3)
    gc.collect()

    def sample(i: int, put_s: float) -> dict:
        pss, nproc = tree_pss()
        s = {"iteration": i, "pss": pss, "processes": nproc, "put_s": put_s}
        if b.name == "ember":
            st = b.stats()
            s.update(
                used_bytes=st["used_bytes"],
                high_water=st["high_water"],
                num_objects=st["num_objects"],
                segment_rss=segment_rss(),
            )
        return s

    samples = [sample(0, 0.0)]
    held: collections.deque = collections.deque(maxlen=max(window, 1))
    block_s = total_s = 0.0
    gc.disable()
    try:
        for i in range(1, args.churn_n + 1):
            t = time.perf_counter()
            ref = b.put(src)
            dt = time.perf_counter() - t
            block_s += dt
            total_s += dt
            if window:
                view = b.get(ref)
                if view[-1] != last:
                    raise AssertionError(f"churn: object {i} reads back wrong")
                del view
                held.append(ref)
            del ref
            if i % args.churn_every == 0:
                samples.append(sample(i, block_s))
                block_s = 0.0
    finally:
        gc.enable()
    held.clear()
    gc.collect()
    # "After refs are dropped": Ray frees plasma objects asynchronously, and ember gives free
    # pages back to the kernel after 10 s without allocations. Same wait for both.
    time.sleep(TRIM_WAIT_S)
    end = sample(args.churn_n, 0.0)
    b.shutdown()

    # "warm": the first sample after a fifth of the run; the prefaulter (an idle-priority
    # thread) may still be warming pages ahead of the high-water mark just after the start.
    start = samples[0]
    warm = next((s for s in samples if s["iteration"] >= args.churn_n // 5), samples[-1])
    out = {
        "window": window,
        "iterations": args.churn_n,
        "object_bytes": int(src.nbytes),
        "settle_s": round(settled, 2),
        "put_gbps": gbps(src.nbytes * args.churn_n, total_s),
        "samples": samples,
        "end": end,
        "pss_start": start["pss"],
        "warm_iteration": warm["iteration"],
        "pss_warm": warm["pss"],
        "pss_end": end["pss"],
        "pss_peak": max(s["pss"] for s in [*samples, end]),
        "end_vs_start": end["pss"] / start["pss"] - 1,
        "end_vs_warm": end["pss"] / warm["pss"] - 1,
    }
    if "used_bytes" in end:
        out.update(
            used_start=start["used_bytes"],
            used_end=end["used_bytes"],
            used_peak=max(s["used_bytes"] for s in samples),
            high_water=end["high_water"],
            segment_rss_end=end["segment_rss"],
        )
    progress(
        f"{b.name} churn {'drop' if not window else f'window {window}'}: "
        f"{out['put_gbps']:.1f} GB/s; PSS start {mb(out['pss_start'])} MB, warm "
        f"{mb(out['pss_warm'])}, end {mb(out['pss_end'])}, peak {mb(out['pss_peak'])}"
    )
    return out


# --- 2 a workload twice the store ----------------------------------------------------------


def read_back(b, refs: list, count: int) -> dict:
    """get() each ref in order and compare it in full with block i; times each side."""
    get_s = verify_s = 0.0
    bad = []
    for i, ref in enumerate(refs):
        t0 = time.perf_counter()
        view = b.get(ref)
        t1 = time.perf_counter()
        ok = (
            view.shape == (count,)
            and view[0] == i * count
            and bool((view == np.arange(i * count, (i + 1) * count, dtype=np.int64)).all())
        )
        verify_s += time.perf_counter() - t1
        get_s += t1 - t0
        if not ok:
            bad.append(i)
        del view
    return {"get_s": get_s, "verify_s": verify_s, "wrong": bad}


def spill(b, args) -> dict:
    b.init(args.spill_store)
    settled = wait_settled(0.3)
    n = args.spill_total // args.spill_object
    count = args.spill_object // 8
    out: dict = {
        "store": args.spill_store,
        "total": n * args.spill_object,
        "objects": n,
        "object_bytes": args.spill_object,
        "settle_s": round(settled, 2),
    }

    # puts from the driver
    before = b.stats()
    t0 = time.perf_counter()
    refs, put_s = [], 0.0
    for i in range(n):
        block = np.arange(i * count, (i + 1) * count, dtype=np.int64)
        t = time.perf_counter()
        refs.append(b.put(block))
        put_s += time.perf_counter() - t
        del block
    out["put"] = {"in_s": put_s, "stats_before": before, "stats": b.stats()}
    out["put"].update(read_back(b, refs, count))
    out["put"]["wall_s"] = time.perf_counter() - t0
    out["put"]["stats_after_get"] = b.stats()

    # task results, written (and spilled) by the workers
    before = b.stats()
    t0 = time.perf_counter()
    task = b.remote(make_block)
    trefs = [task.remote(i, count) for i in range(n)]
    b.wait_all(trefs)
    out["tasks"] = {"in_s": time.perf_counter() - t0, "stats_before": before, "stats": b.stats()}
    out["tasks"].update(read_back(b, trefs, count))
    out["tasks"]["wall_s"] = time.perf_counter() - t0
    out["tasks"]["stats_after_get"] = b.stats()

    del refs, trefs, task
    gc.collect()
    time.sleep(0.5)  # Ray frees (and deletes spill files) asynchronously
    out["after_drop"] = b.stats()
    d = b.spill_dir()
    out["after_drop"]["files_left"] = len(os.listdir(d)) if d and os.path.isdir(d) else 0
    b.shutdown()
    for part in ("put", "tasks"):
        p = out[part]
        progress(
            f"{b.name} spill, {part}: {p['in_s']:.2f} s in, "
            f"{p['get_s']:.2f} s back, {len(p['wrong'])} wrong; {p['stats']}"
        )
    return out


# --- 3 restore cost --------------------------------------------------------------------------


def spilled_object(b, src: np.ndarray, store_bytes: int) -> tuple[object, str]:
    """Puts src and pushes it out to a spill file with a filler; returns (ref, its file)."""
    spill_dir = b.spill_dir()
    before = set(os.listdir(spill_dir))
    ref = b.put(src)
    filler = b.put(np.zeros(store_bytes - src.nbytes // 2, dtype=np.uint8))  # zero pages
    del filler
    new = set(os.listdir(spill_dir)) - before
    st = b.stats()
    if len(new) != 1 or st["spilled_objects"] != 1:
        raise AssertionError(f"restore: expected one spilled object, got {new} and {st}")
    return ref, os.path.join(spill_dir, new.pop())


def restore(args) -> dict:
    b = Ember()
    out: dict = {"sizes": {}}
    for size in args.restore_sizes:
        # A store of twice the object (16 MiB at least) per size: the filler that pushes the
        # object out is then about its size. A filler of a fixed 2 GiB would also flush the
        # CPU caches before every small get, which the file read it is compared with is spared.
        store_bytes = max(2 * size, 16 * MiB)
        b.init(store_bytes)
        ref_path = os.path.join(b.info.session_dir, "disk_reference")
        out["filesystem_of"] = b.spill_dir()
        src = np.arange(size // 8, dtype=np.int64)
        write_file(ref_path, src)
        dst = np.ones(size // 8, dtype=np.int64)  # written: page faults are not measured
        r: dict = {
            k: []
            for k in (
                "disk_cold",
                "disk_warm",
                "ember_cold",
                "ember_warm",
                "resident_get",
                "cached_cold",
            )
        }
        for _ in range(args.repeat):
            drop_from_cache(ref_path)
            r["cached_cold"].append(cached_bytes(ref_path))
            r["disk_cold"].append(read_into(ref_path, dst))
            r["disk_warm"].append(read_into(ref_path, dst))
            if not np.array_equal(dst, src):
                raise AssertionError("disk reference read back wrong")
            for kind in ("ember_cold", "ember_warm"):
                ref, path = spilled_object(b, src, store_bytes)
                if kind == "ember_cold":
                    drop_from_cache(path)
                    r["cached_cold"].append(cached_bytes(path))
                t = time.perf_counter()
                view = b.get(ref)
                r[kind].append(time.perf_counter() - t)
                if not np.array_equal(view, src):
                    raise AssertionError(f"restore of {fmt_size(size)} read back wrong")
                deadline = time.monotonic() + 2  # the driver's spiller thread deletes it
                while os.path.exists(path) and time.monotonic() < deadline:
                    time.sleep(0.005)
                if os.path.exists(path):
                    raise AssertionError(f"restore of {fmt_size(size)} left its spill file")
                del view
                for _ in range(5):  # in memory now
                    t = time.perf_counter()
                    view = b.get(ref)
                    r["resident_get"].append(time.perf_counter() - t)
                    del view
                del ref
        t = time.perf_counter()
        os.unlink(ref_path)  # as a restore does (its file just read: clean, in the cache)
        r["unlink_s"] = time.perf_counter() - t
        res = dict(r)
        for k in ("disk_cold", "disk_warm", "ember_cold", "ember_warm"):
            res[k + "_gbps"] = gbps(size, statistics.median(r[k]))
        res["resident_get_us"] = statistics.median(r["resident_get"]) * 1e6
        res["store"] = store_bytes
        res["stats"] = b.stats()
        b.shutdown()
        out["sizes"][size] = res
        progress(
            f"restore {fmt_size(size)}: cold ember {res['ember_cold_gbps']:.2f} vs disk "
            f"{res['disk_cold_gbps']:.2f} GB/s; warm ember {res['ember_warm_gbps']:.2f} vs "
            f"page cache {res['disk_warm_gbps']:.2f} GB/s; cached before cold reads: "
            f"{r['cached_cold']}"
        )
    return out


# --- running both systems ----------------------------------------------------------------


def run_parts(name: str, args, with_restore: bool) -> dict:
    b = BACKENDS[name]()
    res: dict = {"version": b.version}
    res["churn_drop"] = churn(b, args, 0)
    res["churn_window"] = churn(b, args, args.window)
    res["spill"] = spill(b, args)
    if with_restore:
        res["restore"] = restore(args)
    return res


def forwarded_args(args) -> list[str]:
    return [
        "--churn-n", str(args.churn_n), "--churn-size", str(args.churn_size),
        "--churn-every", str(args.churn_every), "--churn-store", str(args.churn_store),
        "--window", str(args.window), "--spill-store", str(args.spill_store),
        "--spill-total", str(args.spill_total), "--spill-object", str(args.spill_object),
    ]  # fmt: skip


def run_ray(python: str, args) -> dict:
    """Parts 1 and 2 under Ray: this script under `python`, results in a temporary file."""
    with tempfile.TemporaryDirectory() as tmp:
        out, err = os.path.join(tmp, "ray.json"), os.path.join(tmp, "stderr")
        cmd = [
            python,
            os.path.abspath(__file__),
            "--backend",
            "ray",
            "--child-out",
            out,
            *forwarded_args(args),
        ]
        with open(err, "w") as ef:
            rc = subprocess.run(cmd, stderr=ef, check=False).returncode
        if rc != 0:
            with open(err) as ef:
                sys.stderr.write(ef.read()[-20000:])
            raise SystemExit(f"the Ray run failed (exit {rc}): {' '.join(cmd)}")
        with open(out) as f:
            return json.load(f)


# --- report ------------------------------------------------------------------------------


def table(title: str, head: list[str], rows: list[list[str]], widths: list[int]) -> None:
    print()
    print(title)
    line = " ".join(f"{h:>{w}}" for h, w in zip(head, widths, strict=True))
    print(line)
    print("-" * len(line))
    for r in rows:
        print(" ".join(f"{c:>{w}}" for c, w in zip(r, widths, strict=True)))


def targets(doc: dict) -> list[tuple[str, bool, str]]:
    e = doc["results"]["ember"]
    out = []
    for key in ("churn_drop", "churn_window"):
        c = e[key]
        out.append(
            (
                f"{key}: store used_bytes back to its start level",
                c["used_end"] <= c["used_start"],
                f"{c['used_start']:,} -> {c['used_end']:,} bytes",
            )
        )
        out.append(
            (
                f"{key}: no growth (end PSS at most {RETURN_TOLERANCE:.0%} above warm PSS)",
                c["end_vs_warm"] <= RETURN_TOLERANCE,  # ending lower is not growth
                f"{c['end_vs_warm']:+.1%}",
            )
        )
        out.append(
            (
                f"{key}: end PSS within {RETURN_TOLERANCE:.0%} of the start (before any put)",
                abs(c["end_vs_start"]) <= RETURN_TOLERANCE,
                f"{c['end_vs_start']:+.1%}: {mb(c['pss_end'] - c['pss_start'])} MB kept; "
                f"store pages resident {mb(c['segment_rss_end'])} MB, high water "
                f"{mb(c['high_water'])} MB",
            )
        )
    s = e["spill"]
    ok = not s["put"]["wrong"] and not s["tasks"]["wrong"]
    out.append(
        (
            "spill: 2x the store completes, every byte read back right",
            ok,
            f"{s['total'] // MiB} MiB through a {s['store'] // MiB} MiB store",
        )
    )
    for size, r in e.get("restore", {}).get("sizes", {}).items():
        for kind, ref in (("cold", "disk_cold"), ("warm", "disk_warm")):
            ratio = r[f"ember_{kind}_gbps"] / r[f"{ref}_gbps"]
            label = f"restore {fmt_size(size)} {kind} >= {RESTORE_VS_DISK:.0%} of the file read"
            out.append((label, ratio >= RESTORE_VS_DISK, f"{ratio:.0%}"))
    return out


def print_report(doc: dict) -> None:
    res = doc["results"]
    systems = [n for n in ("ember", "ray") if n in res]
    rows = []
    for n in systems:
        for key in ("churn_drop", "churn_window"):
            c = res[n][key]
            rows.append([
                n, "drop" if not c["window"] else f"window {c['window']}", str(c["iterations"]),
                f"{c['put_gbps']:.1f}", mb(c["pss_start"]), mb(c["pss_warm"]), mb(c["pss_end"]),
                mb(c["pss_peak"]), f"{c['end_vs_start']:+.0%}", f"{c['end_vs_warm']:+.1%}",
                mb(c.get("used_end")), mb(c.get("high_water")), mb(c.get("segment_rss_end")),
            ])  # fmt: skip
    table(
        f"1 churn: {fmt_size(doc['config']['churn_size'])} puts; PSS of the process tree in MB "
        f"(warm: after {res['ember']['churn_drop']['warm_iteration']} puts; end: every ref "
        "dropped)\n  used end, high water: the store's counters; store rss: the store's pages "
        "resident in the driver at the end (MB)",
        ["system", "variant", "puts", "GB/s", "start", "warm", "end", "peak", "end/start",
         "end/warm", "used end", "high water", "store rss"],
        rows, [6, 9, 5, 5, 6, 6, 6, 6, 9, 8, 8, 10, 9])  # fmt: skip

    rows = []
    for n in systems:
        s = res[n]["spill"]
        for part in ("put", "tasks"):
            p = s[part]
            s0, s1, s2 = p["stats_before"], p["stats"], p["stats_after_get"]
            grew = lambda a, b, key: b[key] - a[key]  # noqa: E731
            if "spills_total" in s1:  # ember: its counters
                spills_in, spills_back = grew(s0, s1, "spills_total"), grew(s1, s2, "spills_total")
                disk_in = grew(s0, s1, "spilled_bytes")
                restores = str(grew(s1, s2, "restores_total"))
            else:  # Ray: its spill directory
                spills_in = spills_back = restores = "-"
                disk_in = grew(s0, s1, "spill_file_bytes")
            rows.append([
                n, part, f"{p['in_s']:.2f}", f"{gbps(s['total'], p['in_s']):.2f}", str(spills_in),
                mb(disk_in), f"{p['get_s']:.2f}", f"{gbps(s['total'], p['get_s']):.2f}",
                restores, str(spills_back), f"{p['wall_s']:.1f}",
                "yes" if not p["wrong"] else f"NO ({len(p['wrong'])})",
            ])  # fmt: skip
    s0 = res["ember"]["spill"]
    table(
        f"2 spill: {s0['total'] // MiB} MiB of {s0['object_bytes'] // MiB} MiB int64 arrays "
        f"through a {s0['store'] // MiB} MiB store\n  in: all put, or all made by tasks; "
        "back: get of each in order, compared in full; disk MB: growth of spilled bytes",
        ["system", "via", "in s", "GB/s", "spills", "disk MB", "back s", "GB/s", "restores",
         "spills", "wall s", "correct"],
        rows, [6, 5, 5, 5, 6, 7, 6, 5, 8, 6, 6, 7])  # fmt: skip
    for n in systems:
        print(f"  {n}, every ref dropped: {res[n]['spill']['after_drop']}")

    if "restore" in res["ember"]:
        rows = []
        for size, r in res["ember"]["restore"]["sizes"].items():
            rows.append([
                fmt_size(size), f"{r['disk_cold_gbps']:.2f}", f"{r['ember_cold_gbps']:.2f}",
                f"{r['ember_cold_gbps'] / r['disk_cold_gbps']:.0%}", f"{r['disk_warm_gbps']:.2f}",
                f"{r['ember_warm_gbps']:.2f}", f"{r['ember_warm_gbps'] / r['disk_warm_gbps']:.0%}",
                f"{r['resident_get_us']:.0f}", f"{r['unlink_s'] * 1e3:.1f}",
            ])  # fmt: skip
        table(
            "3 restore: get of a spilled object vs reading a file of that size on the same "
            "filesystem, GB/s (medians)",
            ["size", "disk cold", "get cold", "ratio", "disk warm", "get warm", "ratio",
             "get in mem us", "unlink ms"],
            rows, [8, 9, 8, 6, 9, 8, 6, 13, 9])  # fmt: skip
        print(
            "  cold: file fsync'ed and dropped from the page cache first; warm: in the page "
            "cache (a fresh spill file is).\n  get in mem: a get once restored; unlink: "
            "deleting the reference file after reading it (a restored object's file is\n"
            "  punched and deleted later by the driver's spiller thread)"
        )

    load = doc["load"]
    print()
    print(
        f"cores kept busy by other processes during the run: {load['other_cores_mean']} on "
        f"average, {load['other_cores_max']} at most (1 s samples)"
    )
    print()
    print("targets (ember):")
    for label, ok, detail in targets(doc):
        print(f"  {'met   ' if ok else 'MISSED'} {label}: {detail}")


# --- main --------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="fast smoke run (smaller everything)")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    p.add_argument(
        "--compare-ray",
        metavar="PYTHON",
        help="a python with Ray installed: also run parts 1 and 2 under Ray",
    )
    p.add_argument("--churn-n", type=int, help="puts per churn variant (default 1000; 200 quick)")
    p.add_argument("--churn-size", type=parse_size, default=50 * MB, help="default 50MB")
    p.add_argument("--churn-every", type=int, default=50, help="sample every N puts (50)")
    p.add_argument("--churn-store", type=parse_size, default=GiB, help="default 1GiB")
    p.add_argument("--window", type=int, default=4, help="refs kept by the window variant (4)")
    p.add_argument("--spill-store", type=parse_size, help="default 512MiB; 256MiB quick")
    p.add_argument("--spill-total", type=parse_size, help="default 2 x the spill store")
    p.add_argument("--spill-object", type=parse_size, help="default 32MiB; 16MiB quick")
    p.add_argument("--restore-sizes", help="default 1MiB,16MiB,256MiB,1GiB; quick 1MiB,64MiB")
    p.add_argument("--repeat", type=int, help="restore samples per size (default 5; 1 quick)")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="first wait up to S seconds for other processes to go quiet",
    )
    # internal: the Ray side of --compare-ray is this script under Ray's python
    p.add_argument("--backend", choices=sorted(BACKENDS), help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    q = args.quick
    args.churn_n = args.churn_n or (200 if q else 1000)
    args.spill_store = args.spill_store or (256 * MiB if q else 512 * MiB)
    args.spill_total = args.spill_total or 2 * args.spill_store
    args.spill_object = args.spill_object or (16 * MiB if q else 32 * MiB)
    sizes = args.restore_sizes or ("1MiB,64MiB" if q else "1MiB,16MiB,256MiB,1GiB")
    args.restore_sizes = [parse_size(s) for s in sizes.split(",")]
    args.repeat = args.repeat or (1 if q else 5)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.backend:  # the Ray side of --compare-ray
        res = run_parts(args.backend, args, with_restore=False)
        with open(args.child_out, "w") as f:
            json.dump(res, f)
        return 0
    started = time.time()
    doc = {
        "benchmark": "memory",
        "command": " ".join([os.path.basename(sys.executable), sys.argv[0],
                             *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine_info(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "config": {k: getattr(args, k) for k in (
            "churn_n", "churn_size", "churn_every", "churn_store", "window", "spill_store",
            "spill_total", "spill_object", "restore_sizes", "repeat")},
        "results": {},
    }  # fmt: skip
    wait_quiet(args.wait_quiet, monitor=LoadMonitor, period_s=1.0)
    with LoadMonitor() as mon:
        doc["results"]["ember"] = run_parts("ember", args, with_restore=True)
        if args.compare_ray:
            progress(f"ray: parts 1 and 2 under {args.compare_ray}")
            doc["results"]["ray"] = run_ray(args.compare_ray, args)
    doc["load"] = mon.summary()
    doc["seconds"] = round(time.time() - started, 1)
    doc = int_keys(json.loads(json.dumps(doc)))  # the same view as a reader of the JSON gets
    print_report(doc)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"\nwrote {args.json}")
    print(f"total {doc['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
