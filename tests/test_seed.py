"""The seed tutorial's examples (../shared/seed), run as written with ``import ember as ray``."""

from __future__ import annotations

import re

from .conftest import run_python

SEED_PROGRAM = '''
import ember as ray
import datetime
import time
import numpy as np
import psutil

print(ray.__version__)

def print_current_datetime():
    time.sleep(0.3)
    current_datetime = datetime.datetime.now()
    print(current_datetime)
    return current_datetime

print_current_datetime()

num_logical_cpus = psutil.cpu_count()
ray.init(num_cpus=4, object_store_memory=512 << 20)

@ray.remote
def print_current_datetime():
    time.sleep(0.3)
    current_datetime = datetime.datetime.now()
    print(current_datetime)
    return current_datetime

try:
    print_current_datetime()
except TypeError as e:
    print("TypeError:", e)

print(print_current_datetime.remote())
print(type(ray.get(print_current_datetime.remote())).__name__)
futures = [print_current_datetime.remote() for i in range(4)]
print(len(ray.get(futures)))
futures = [print_current_datetime.remote() for i in range(8)]
print(len(ray.get(futures)))

@ray.remote
def do_some_work(x):
    time.sleep(0.01)
    return x

results = ray.get([do_some_work.remote(x) for x in range(4)])
print(results)

@ray.remote
def no_work(a):
    return

start = time.time()
a = np.zeros((5000, 5000))
result_ids = [no_work.remote(a) for x in range(10)]
results = ray.get(result_ids)
print("by value duration =", time.time() - start)

start = time.time()
a_id = ray.put(np.zeros((5000, 5000)))
result_ids = [no_work.remote(a_id) for x in range(10)]
results = ray.get(result_ids)
print("put duration =", time.time() - start)
print(results == [None] * 10)
ray.shutdown()
'''


def test_the_seed_tutorial_runs_as_written():
    result = run_python(SEED_PROGRAM, timeout=60)
    assert result.returncode == 0, result.stderr
    check_seed_output(result.stdout)


def check_seed_output(out: str) -> None:
    """What the seed program prints, on either backend."""
    out = re.sub(r"\x1b\[[0-9;]*m", "", out)  # Ray colours its worker prefixes
    assert (
        "TypeError: Remote functions cannot be called directly. Instead of running "
        "'__main__.print_current_datetime()', try '__main__.print_current_datetime.remote()'."
    ) in out
    assert "ObjectRef(" in out
    # The driver's own lines: worker lines are printed by another thread and may land in the
    # middle of one of them.
    own = re.sub(r"\(\w+ pid=\d+\) [^\n]*\n", "", out)
    lines = [line for line in own.splitlines() if line]
    # A worker's line can also start before a driver's line and end after it (Ray prints the
    # two from different processes): the type name is then found at a line's end.
    assert "datetime\n" in out
    # In order; a worker's line may still split one of the driver's earlier lines in two (a
    # line "datetime" was seen among them on Ray), so the results are picked, not counted.
    results = [line for line in lines[:-3] if line in ("4", "8", "[0, 1, 2, 3]")]
    assert results[-3:] == ["4", "8", "[0, 1, 2, 3]"]
    assert lines[-3].startswith("by value duration =")
    assert lines[-2].startswith("put duration =")
    assert lines[-1] == "True"
    # Worker output reaches the driver with Ray's prefix.
    assert "(print_current_datetime pid=" in out
