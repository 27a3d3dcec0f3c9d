"""The store across processes: zero-copy reads in a child, a dead lock holder, and leaks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import psutil

import ember

from .conftest import STORE_BYTES, open_fds, run_python, segment_mappings, thread_count


def test_a_child_process_reads_an_array_zero_copy(node):
    array = np.arange(8 << 20, dtype=np.int64)  # 64 MiB
    ref = ember.put(array)
    fd = node.store.fd
    result = run_python(
        f"""
        import resource, numpy as np, ember
        from ember import _node, object_ref
        node = _node.connect({fd})
        ref = object_ref._rebuild(bytes.fromhex("{ref.hex()}"))
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        arr = ember.get(ref)
        lo, hi = node.store.segment_range
        ptr = arr.__array_interface__["data"][0]
        print(lo <= ptr and ptr + arr.nbytes <= hi, arr.flags.writeable, int(arr.sum()),
              arr.nbytes >> 20)
        """,
        pass_fds=[fd],
    )
    assert result.returncode == 0, result.stderr
    in_segment, writeable, total, mib = result.stdout.split()
    assert in_segment == "True"  # the child's array lies in its mapping of the segment
    assert writeable == "False"
    assert int(total) == int(array.sum())
    assert int(mib) == 64


def test_a_child_killed_while_holding_the_lock_does_not_wedge_put(node):
    fd = node.store.fd
    used_before = node.store.stats()["used_bytes"]
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys
                from ember import _node
                store = _node.connect({fd}).store
                print("locking", flush=True)
                store.debug_die_holding_lock()
                """
            ),
        ],
        pass_fds=[fd],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "locking"
        time.sleep(0.3)  # let it take the lock and leak its block
    finally:
        child.kill()
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    ref = ember.put(np.ones(1000))  # would hang forever without the robust lock
    assert ember.get(ref).sum() == 1000
    stats = node.store.stats()
    assert stats["recoveries"] == 1
    node.store.check()
    del ref
    # The 1 MiB block the child took but never entered in the table was freed on recovery.
    assert node.store.stats()["used_bytes"] == used_before


def test_shutdown_leaves_no_fd_mapping_or_thread():
    fds, threads = open_fds(), thread_count()
    ember.init(num_cpus=1, object_store_memory=STORE_BYTES)
    ref = ember.put(np.ones(16 << 20))  # big enough to wake the prefaulter
    view = ember.get(ref)
    assert segment_mappings()
    del view, ref
    ember.shutdown()
    assert open_fds() == fds
    assert not segment_mappings()
    assert thread_count() <= threads  # (a thread of an earlier test may still be ending)


def test_a_view_outliving_shutdown_stays_readable_then_unmaps():
    ember.init(num_cpus=1, object_store_memory=STORE_BYTES)
    view = ember.get(ember.put(np.arange(100)))
    ember.shutdown()
    assert view.sum() == 4950  # still mapped: the view holds the segment
    del view
    assert not segment_mappings()


def test_repeated_init_shutdown_leaks_nothing():
    fds, threads = open_fds(), thread_count()
    for _ in range(20):
        ember.init(num_cpus=1, object_store_memory=STORE_BYTES)
        ember.get(ember.put(np.ones(1 << 20)))
        ember.shutdown()
    assert open_fds() == fds
    assert thread_count() <= threads  # (a thread of an earlier test may still be ending)
    assert not segment_mappings()


def test_kill_9_of_the_driver_leaves_nothing_behind():
    shm_before = set(os.listdir("/dev/shm"))
    driver = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import time, numpy as np, ember
                ember.init(num_cpus=1, object_store_memory=64 << 20)
                ref = ember.put(np.ones(1 << 20))
                print("ready", flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert driver.stdout.readline().strip() == "ready"
    assert segment_mappings(driver.pid)
    driver.kill()
    driver.wait(timeout=10)
    assert set(os.listdir("/dev/shm")) == shm_before
    leftovers = subprocess.run(
        ["pgrep", "-P", str(driver.pid)], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout == ""


def test_init_keeps_a_few_ended_sessions_and_every_live_one(tmp_path):
    from ember import _node, _session

    dead = subprocess.Popen(["true"])
    dead.wait()
    ended = [f"session_2099-01-01_00-00-{i:02d}_{dead.pid}" for i in range(8)]
    now = time.strftime("%Y-%m-%d_%H-%M-%S")
    live = f"session_{now}_{os.getppid()}"  # older than the ended ones, but its driver runs
    for name in ended + [live, "not_a_session"]:
        (tmp_path / name).mkdir()
    (tmp_path / ended[-1] / "logs").mkdir()
    ember.init(num_cpus=1, object_store_memory=STORE_BYTES, _temp_dir=str(tmp_path))
    try:
        current = _node.current().session_dir
    finally:
        ember.shutdown()
    left = sorted(p.name for p in tmp_path.iterdir())
    kept = ended[-_session.KEEP_ENDED_SESSIONS:]  # the newest ended ones, with their logs
    assert left == sorted(kept + [live, "not_a_session", os.path.basename(current),
                                  "session_latest"])
    assert os.readlink(tmp_path / "session_latest") == current


def test_a_worker_shows_what_it_runs_as_its_process_title(node):
    @ember.remote
    def titled():
        return psutil.Process().cmdline()[0], psutil.Process().name()

    @ember.remote
    class Titled:
        def __init__(self):
            self.at_init = psutil.Process().cmdline()[0]

        def titles(self):
            return self.at_init, psutil.Process().cmdline()[0]

    assert ember.get(titled.remote()) == ("ember::titled", "ember::titled")
    assert ember.get(Titled.remote().titles.remote()) == ("ember::Titled.__init__",
                                                          "ember::Titled.titles")
    deadline = time.monotonic() + 10  # a task's worker a second without a task shows IDLE
    while not any(psutil.Process(pid).cmdline()[:1] == ["ember::IDLE"]
                  for pid in node.scheduler.worker_pids()):
        assert time.monotonic() < deadline
        time.sleep(0.2)
