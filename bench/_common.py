"""Helpers shared by the benchmark scripts in bench/ (put_get, tasks, actors, memory).

The scripts run as `python bench/X.py`, so bench/ is on sys.path and they import this module
as `_common`; the same holds when a script re-runs itself under another interpreter.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time

MiB = 1 << 20
GiB = 1 << 30


# --- formatting ----------------------------------------------------------------------------


def progress(msg: str) -> None:
    """Prints a time-stamped progress line at once."""
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_size(text: str) -> int:
    """Bytes in a size such as "16MiB", "1GB" or "4096"."""
    units = {"gib": GiB, "mib": MiB, "kib": 1 << 10, "gb": 10**9, "mb": 10**6, "kb": 10**3, "b": 1}
    t = text.strip().lower()
    for suffix, mult in units.items():
        if t.endswith(suffix):
            return int(float(t[: -len(suffix)]) * mult)
    return int(t)


def gbps(nbytes: int, seconds: float) -> float:
    """Throughput in GB/s (1e9 bytes a second)."""
    return nbytes / seconds / 1e9


def fmt(x, spec: str) -> str:
    """format(x, spec), or "-" for None."""
    return "-" if x is None else format(x, spec)


def times_better(ember_value, other_value, higher_is_better: bool) -> str:
    """How many times better ember is (> 1: ember better); "-" when either is missing or 0."""
    if not ember_value or not other_value:
        return "-"
    r = ember_value / other_value if higher_is_better else other_value / ember_value
    return f"{r:.2f}" if r < 100 else f"{r:.0f}"


def table(title: str, head: list[str], rows: list[list[str]], widths: list[int]) -> None:
    """Prints a titled table: first column left-aligned, the others right-aligned, " | " between."""
    print()
    print(title)
    line = " | ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(head, widths)))
    print(line)
    print("-" * len(line))
    for row in rows:
        print(
            " | ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
        )


def dig(d, *keys):
    """d[k1][k2]..., or None where a level is missing or not a dict."""
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def int_keys(d):
    """JSON turns int keys (sizes) into strings; this turns them back, at every level."""
    if not isinstance(d, dict):
        return d
    return {
        (int(k) if isinstance(k, str) and k.isdigit() else k): int_keys(v) for k, v in d.items()
    }


# --- statistics and timing -----------------------------------------------------------------


@contextlib.contextmanager
def no_gc():
    """Keeps the cyclic GC out of timed loops."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def percentile(xs: list[float], q: float) -> float:
    """The q-th percentile (0-100) of xs, interpolated linearly between the nearest ranks."""
    s = sorted(xs)
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


# --- the machine -----------------------------------------------------------------------------


def machine_info() -> dict:
    """CPU model, CPU count, memory, kernel and Python version of this machine."""
    cpu = platform.processor()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def git_describe() -> str | None:
    """`git describe --always --dirty` of the checkout bench/ is in (None if git fails)."""
    try:
        return subprocess.run(
            [
                "git",
                "-C",
                os.path.dirname(os.path.abspath(__file__)),
                "describe",
                "--always",
                "--dirty",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, CPU jiffies used by it and by its children it has reaped)."""
    procs = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # ppid; utime + stime + cutime + cstime: a reaped child's time moves to its parent,
        # so a tree's total does not drop when one of its processes ends.
        procs[int(pid)] = (int(rest[1]), sum(int(x) for x in rest[11:15]))
    return procs


def descendants(procs: dict, root: int) -> set[int]:
    """The pids below root (not root itself) in a proc_table()."""
    mine, frontier = set(), {root}
    while frontier:
        frontier = {p for p, (pp, _) in procs.items() if pp in frontier and p not in mine}
        mine |= frontier
    return mine


class LoadMonitor:
    """Samples, every period_s, how many cores processes outside this benchmark's process tree
    keep busy (the machine may be shared), so a result can be read against it."""

    def __init__(self, period_s: float = 1.0):
        self.period_s = period_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _mine_and_busy(self) -> tuple[float, float]:
        """(CPU seconds used by this process tree, CPU seconds the whole machine was busy)."""
        procs = proc_table()
        me = os.getpid()
        mine = sum(procs[p][1] for p in descendants(procs, me) | {me} if p in procs)
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        busy = v[0] + v[1] + v[2] + v[5] + v[6]  # user nice system irq softirq
        hz = os.sysconf("SC_CLK_TCK")
        return mine / hz, busy / hz

    def _run(self) -> None:
        try:
            mine0, busy0 = self._mine_and_busy()
            t0 = time.perf_counter()
            while not self._stop.wait(self.period_s):
                mine1, busy1 = self._mine_and_busy()
                t1 = time.perf_counter()
                other = ((busy1 - busy0) - (mine1 - mine0)) / (t1 - t0)
                self.samples.append(min(float(os.cpu_count() or 1), max(0.0, other)))
                mine0, busy0, t0 = mine1, busy1, t1
        except (OSError, ValueError, IndexError):  # no /proc: no numbers
            pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        s = self.samples
        return {
            "other_cores_mean": round(statistics.fmean(s), 2) if s else None,
            "other_cores_max": round(max(s), 2) if s else None,
        }


def wait_quiet(
    timeout_s: float, max_cores: float = 0.15, monitor=LoadMonitor, period_s: float = 0.5
) -> None:
    """Waits up to timeout_s for other processes to keep under max_cores busy for 3 s."""
    if timeout_s <= 0:
        return
    n = round(3.0 / period_s)
    start = time.perf_counter()
    with monitor(period_s=period_s) as mon:
        while time.perf_counter() - start < timeout_s:
            time.sleep(0.5)
            if len(mon.samples) >= n and max(mon.samples[-n:]) < max_cores:
                return
    progress(f"the machine did not get quiet within {timeout_s:.0f} s; measuring anyway")


# --- a backend in a child process ------------------------------------------------------------


def spawn_backend(python: str, script: str, backend: str, extra_args: list[str]):
    """Starts `python script --backend NAME --result-fd FD ...` with calls on its stdin;
    returns (cmd, proc, replies, stderr): replies reads the result pipe, stderr is kept."""
    read_fd, write_fd = os.pipe()
    cmd = [python, os.path.abspath(script), "--backend", backend,
           "--result-fd", str(write_fd), *extra_args]  # fmt: skip
    stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (lives with the child)
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stderr=stderr, pass_fds=(write_fd,), text=True
    )
    os.close(write_fd)
    return cmd, proc, os.fdopen(read_fd), stderr


def serve(runner, result_fd: int) -> None:
    """The child's side of spawn_backend: runs the calls read from stdin until it closes."""
    out = os.fdopen(result_fd, "w")
    for line in sys.stdin:
        msg = json.loads(line)
        out.write(json.dumps(getattr(runner, msg["method"])(*msg["args"])) + "\n")
        out.flush()
