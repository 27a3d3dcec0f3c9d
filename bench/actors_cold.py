"""Cold start of many actors: a fresh interpreter calls ``init(num_cpus=2)`` and at once
creates N actors (100) and gets one call from each (``os.getpid()``, checked distinct).

Run from the repository root::

    python bench/actors_cold.py                                   # ember
    python bench/actors_cold.py --compare-ray RAY_VENV/bin/python --json cold.json

Each launch is a new process, so nothing is warm: the forkserver (ember) or Ray's raylet and
worker pool start with the program. Reported per system, median of --runs launches (Ray:
fewer, it takes seconds): the time from ``init()`` returning to the last call's result, the
time ``init()`` itself took, and when the first result came. Launches alternate between the
systems so both meet the same state of a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

import _common
from _common import progress, table

TARGET_S = 0.5  # 100 actors right after init, one call each, at most

PROGRAM = """
import json, os, sys, time
t0 = time.perf_counter()
import {mod} as rt
rt.init(num_cpus=2{extra})
t1 = time.perf_counter()

@rt.remote
class Probe:
    def pid(self):
        return os.getpid()

handles = [Probe.remote() for _ in range({n})]
pending = [h.pid.remote() for h in handles]
first = None
pids = []
while pending:
    ready, pending = rt.wait(pending, num_returns=1)
    first = first or time.perf_counter()
    pids += rt.get(ready)
t2 = time.perf_counter()
assert len(set(pids)) == {n}, "actors share a process"
print("@@COLD " + json.dumps({{"init_s": t1 - t0, "actors_s": t2 - t1, "first_s": first - t1}}))
rt.shutdown()
"""


def launch(python: str, system: str, n: int) -> dict:
    extra = ", include_dashboard=False, logging_level='ERROR'" if system == "ray" else ""
    code = PROGRAM.format(mod="ember" if system == "ember" else "ray", n=n, extra=extra)
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=600,
                          check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("@@COLD "):
            return json.loads(line[len("@@COLD "):])
    sys.stderr.write(proc.stderr[-3000:])
    raise SystemExit(f"the {system} launch failed (exit {proc.returncode})")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--actors", type=int, default=100, metavar="N")
    p.add_argument("--runs", type=int, default=5, help="launches per system (Ray: at most 3)")
    p.add_argument("--compare-ray", metavar="PYTHON", help="also measure Ray under this Python")
    p.add_argument("--json", metavar="OUT", help="write the results to this file")
    args = p.parse_args(argv)
    pythons = {"ember": sys.executable}
    if args.compare_ray:
        pythons["ray"] = args.compare_ray
    runs: dict[str, list[dict]] = {s: [] for s in pythons}
    for i in range(args.runs):
        for system, python in pythons.items():
            if system == "ray" and i >= 3:
                continue
            r = launch(python, system, args.actors)
            runs[system].append(r)
            progress(f"{system} launch {i + 1}: {args.actors} actors in {r['actors_s']:.3f} s "
                     f"(init {r['init_s']:.3f} s, first result {r['first_s'] * 1e3:.0f} ms)")
    summary = {
        s: {k: statistics.median(r[k] for r in rs) for k in ("actors_s", "init_s", "first_s")}
        for s, rs in runs.items()
    }
    rows = [[s, f"{v['actors_s']:.3f}", f"{v['init_s']:.3f}", f"{v['first_s'] * 1e3:.0f}",
             str(len(runs[s]))] for s, v in summary.items()]
    table(f"{args.actors} actors right after init, one call each (median of launches)",
          ["system", "actors s", "init s", "first ms", "runs"], rows, [8, 10, 8, 9, 5])
    e = summary["ember"]["actors_s"]
    if "ray" in summary:
        print(f"ember {summary['ray']['actors_s'] / e:.1f}x faster than Ray")
    if args.actors == 100:
        print(f"target <= {TARGET_S} s: {e:.3f} s, {'met' if e <= TARGET_S else 'missed'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": {"command": " ".join(sys.argv), "checkout": _common.git_describe(),
                                "cpus": os.cpu_count()},
                       "runs": runs, "summary": summary}, f, indent=1)


if __name__ == "__main__":
    main()
