"""Soak: a mixed workload for a given time, with the node's footprint sampled as it runs.

Run from the repository root::

    python bench/soak.py --minutes 10            # the documented run
    python bench/soak.py --minutes 1 --every 5   # a smoke run

One node (``init(num_cpus=2, object_store_memory=256 MiB)``) runs rounds of, in turn:

    tasks    200 tasks returning an int and 20 returning a 1 MB array (max_retries=-1)
    actors   100 calls on each of 2 actors (max_restarts=-1, max_task_retries=-1)
    puts     2 objects of 1 KB, 100 KB, 1 MB, 10 MB or 100 MB, drawn at random, the last 24
             kept: more than the store holds, so the oldest are spilled and some are read back
    kills    a SIGKILL of a random worker (task or actor) every 2 s, from another thread

and checks every value it gets back (an int, an array's first and last element, a put's
contents). Every ``--every`` seconds it samples the node: PSS of the driver and all its
descendants (``/proc/<pid>/smaps_rollup``: shared pages split between the processes mapping
them, so the store counts once), their open fds, how many processes, the store's bytes in use
and the spill directory's size on disk. The report compares the samples after the warm-up
(the first fifth of the run) with each other: flat means every series' last sample is within
5% of the mean of its samples after the warm-up and the spread of fds and processes is a few
(a killed worker is replaced within the sampling interval, so one may be missing).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import sys
import threading
import time

import numpy as np
import psutil

import _common
from _common import MiB, progress
from memory import pss_bytes

import ember

SIZES = [1_000, 100_000, 1_000_000, 10_000_000, 100_000_000]  # bytes per put
KEEP = 24  # puts kept alive at once
FLAT = 0.05  # a series is flat if its last sample is within 5% of its post-warm-up mean


def square(i):
    return i * i


def ramp(i):
    return np.arange(i, i + 125_000, dtype=np.int64)  # 1 MB


class Echo:
    def __init__(self):
        self.calls = 0

    def echo(self, i):
        self.calls += 1
        return i


def footprint(spill_dir: str) -> dict:
    """The node's processes (this one and its descendants), their PSS and fds, the spill
    directory's bytes on disk."""
    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    fds = 0
    for p in procs:
        try:
            fds += p.num_fds()
        except psutil.Error:
            pass
    spilled = 0
    try:
        for e in os.scandir(spill_dir):
            spilled += e.stat().st_blocks * 512
    except OSError:
        pass
    store = ember._node.current().store.stats()
    return {"pss": sum(pss_bytes(p.pid) for p in procs), "fds": fds, "procs": len(procs),
            "store_used": store["used_bytes"], "spill_disk": spilled}


class Killer(threading.Thread):
    """SIGKILLs a random worker of the node every `period` seconds."""

    def __init__(self, period: float):
        super().__init__(daemon=True)
        self.period = period
        self.kills = 0
        self.stop = threading.Event()
        self.rng = random.Random(1)

    def run(self) -> None:
        scheduler = ember._node.current().scheduler
        while not self.stop.wait(self.period):
            pids = sorted(scheduler.worker_pids())
            if pids:
                try:
                    os.kill(self.rng.choice(pids), signal.SIGKILL)
                    self.kills += 1
                except ProcessLookupError:
                    pass


def one_round(rng: random.Random, task, array_task, actors, kept: list, counts: dict) -> None:
    """One round of the workload; every wrong or missing value is counted in counts["errors"]."""
    def check(ok: bool, what: str) -> None:
        if not ok:
            counts["errors"] += 1
            progress(f"WRONG: {what}")

    first = rng.randrange(1 << 20)
    refs, arrays, calls = [], [], []
    try:
        refs = [task.remote(first + i) for i in range(200)]
        arrays = [array_task.remote(first + i) for i in range(20)]
        calls = [a.echo.remote(first + i) for a in actors for i in range(100)]
        for size in rng.choices(SIZES, k=2):
            fill = float(rng.randrange(1000))
            kept.append((ember.put(np.full(size // 8, fill)), size, fill))
            counts["put_bytes"] += size
        del kept[:-KEEP]
        check(ember.get(refs, timeout=120) == [(first + i) ** 2 for i in range(200)],
              "task results")
        for i, a in enumerate(ember.get(arrays, timeout=120)):
            check(a[0] == first + i and a[-1] == first + i + 124_999, "an array result")
        check(ember.get(calls, timeout=120) == [first + i for _ in actors for i in range(100)],
              "actor replies")
        for ref, size, fill in rng.sample(kept, k=min(4, len(kept))):  # some come off disk
            v = ember.get(ref, timeout=120)
            check(v.nbytes == size // 8 * 8 and v[0] == fill and v[-1] == fill, "a put's value")
            del v
    except ember.exceptions.EmberError as e:
        counts["errors"] += 1
        progress(f"ERROR: {type(e).__name__}: {str(e)[:200]}")
    counts["tasks"] += len(refs) + len(arrays)
    counts["calls"] += len(calls)
    counts["rounds"] += 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--store", default="256MiB", help="object_store_memory")
    ap.add_argument("--kill-every", type=float, default=2.0, help="seconds between kills")
    ap.add_argument("--json", help="write the samples and the verdict here")
    args = ap.parse_args()

    info = ember.init(num_cpus=2, object_store_memory=_common.parse_size(args.store),
                      log_to_driver=False)
    spill_dir = ember._node.current().spill_dir
    task = ember.remote(square).options(max_retries=-1)
    array_task = ember.remote(ramp).options(max_retries=-1)
    actors = [ember.remote(Echo).options(max_restarts=-1, max_task_retries=-1).remote()
              for _ in range(2)]
    rng = random.Random(0)
    kept: list = []
    counts = {"errors": 0, "tasks": 0, "calls": 0, "rounds": 0, "put_bytes": 0}
    killer = Killer(args.kill_every)
    samples = []
    start = time.monotonic()
    end = start + args.minutes * 60
    next_sample = start
    progress(f"soak for {args.minutes} min, session {info.session_dir}")
    killer.start()
    try:
        while True:
            now = time.monotonic()
            if now >= next_sample:
                s = {"t": round(now - start), **footprint(spill_dir), **counts,
                     "kills": killer.kills}
                samples.append(s)
                progress(f"t={s['t']:>4} s  PSS {s['pss'] / MiB:7.1f} MiB  fds {s['fds']:4}  "
                         f"procs {s['procs']:3}  store {s['store_used'] / MiB:6.1f} MiB  "
                         f"spill {s['spill_disk'] / MiB:6.1f} MiB  tasks {s['tasks']:>7}  "
                         f"kills {s['kills']:>4}  errors {s['errors']}")
                next_sample += args.every
            if now >= end or counts["errors"] >= 20:  # a broken node: stop, report it
                break
            one_round(rng, task, array_task, actors, kept, counts)
    finally:
        killer.stop.set()
        killer.join()
        kept.clear()
        ember.shutdown()

    verdict = judge(samples)
    _common.table(
        f"Soak: {args.minutes:g} min, {counts['rounds']} rounds, {counts['tasks']:,} tasks, "
        f"{counts['calls']:,} actor calls, {counts['put_bytes'] / 1e9:.1f} GB put, "
        f"{killer.kills} workers killed, {counts['errors']} errors",
        ["series", "after warm-up: mean", "min", "max", "last", "last vs mean", "flat"],
        [[name, *v["cells"]] for name, v in verdict.items()],
        [10, 19, 9, 9, 9, 12, 5])
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "machine": _common.machine_info(), "counts": counts,
                       "kills": killer.kills, "samples": samples,
                       "verdict": {k: v["flat"] for k, v in verdict.items()}}, f, indent=1)
    flat = all(v["flat"] for v in verdict.values())
    return 0 if flat and counts["errors"] == 0 else 1


def judge(samples: list[dict]) -> dict:
    """Per series: the post-warm-up mean, min, max, last, and whether it is flat."""
    after = samples[max(1, len(samples) // 5):] or samples
    out = {}
    for name, unit, slack in (("pss", MiB, 0), ("fds", 1, 4), ("procs", 1, 1)):
        xs = [s[name] / unit for s in after]
        mean = statistics.fmean(xs)
        last = xs[-1]
        # fds and processes are small integers: one worker being replaced at the instant of a
        # sample moves them by its few fds, which is not growth.
        flat = abs(last - mean) <= max(FLAT * mean, slack)
        fmt = ".1f" if unit != 1 else ".0f"
        out[name] = {"flat": flat, "cells": [format(mean, fmt), format(min(xs), fmt),
                                              format(max(xs), fmt), format(last, fmt),
                                              f"{(last - mean) / mean:+.1%}", "yes" if flat else "NO"]}
    return out


if __name__ == "__main__":
    sys.exit(main())
