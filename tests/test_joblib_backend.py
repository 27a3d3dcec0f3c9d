"""joblib's Parallel on ember: register_ember()/register_ray() and what the backend runs."""

from __future__ import annotations

import os
import time

import psutil
import pytest

joblib = pytest.importorskip("joblib")

import ember  # noqa: E402
from ember.util.joblib import register_ember, register_ray  # noqa: E402
from ember.util.joblib import ray_backend  # noqa: E402
from ember.util.joblib.ray_backend import EmberBackend, RayBackend  # noqa: E402


def where_and_square(x):
    return os.getpid(), x * x


def fails_on(x):
    if x == 3:
        raise KeyError(x)
    return x


def custom_left():
    return ember.available_resources().get("custom", 0)


def test_registering_starts_no_node():
    register_ember()
    register_ray()
    assert not ember.is_initialized()
    assert joblib.parallel.BACKENDS["ember"] is EmberBackend
    assert joblib.parallel.BACKENDS["ray"] is RayBackend is EmberBackend


def test_parallel_runs_in_the_nodes_workers(node):
    register_ember()
    with joblib.parallel_backend("ember", n_jobs=2):
        assert type(joblib.parallel.get_active_backend()[0]) is EmberBackend
        out = joblib.Parallel()(joblib.delayed(where_and_square)(i) for i in range(200))
    assert [square for _, square in out] == [i * i for i in range(200)]  # in order
    pids = {pid for pid, _ in out}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def test_an_exception_in_a_call_reaches_the_caller(node):
    register_ember()
    with joblib.parallel_backend("ember", n_jobs=2), pytest.raises(KeyError):
        joblib.Parallel()(joblib.delayed(fails_on)(i) for i in range(6))


def test_n_jobs_minus_one_is_the_nodes_cpus(node):
    backend = EmberBackend()
    assert backend.effective_n_jobs(-1) == 2  # the node fixture's num_cpus
    assert backend.effective_n_jobs(-2) == 1
    assert backend.effective_n_jobs(3) == 3
    with pytest.raises(ValueError, match="n_jobs == 0"):
        backend.effective_n_jobs(0)


def test_ray_remote_args_configure_the_pools_actors():
    ember.init(num_cpus=2, resources={"custom": 4})
    try:
        register_ray()
        with joblib.parallel_backend("ray", n_jobs=2,
                                     ray_remote_args={"resources": {"custom": 1}}):
            left = joblib.Parallel()(joblib.delayed(custom_left)() for _ in range(4))
        assert set(left) == {2}  # each of the two pool actors holds one
        deadline = time.monotonic() + 10  # the pool's actors end after the block
        while ember.available_resources().get("custom") != 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ember.available_resources().get("custom") == 4
    finally:
        ember.shutdown()


def pids_of_a_call() -> set[int]:
    return {pid for pid, _ in
            joblib.Parallel()(joblib.delayed(where_and_square)(i) for i in range(40))}


@ember.remote(num_cpus=2)
def needs_every_cpu():
    return "ran"


def test_parallel_calls_share_one_pool_that_holds_no_cpus(node):
    register_ember()
    with joblib.parallel_backend("ember", n_jobs=2):
        first = pids_of_a_call()
        assert pids_of_a_call() == first  # the same processes: no start, no import again
    # Kept between calls, the pool's actors leave the node's CPUs to other work.
    assert ember.get(needs_every_cpu.remote(), timeout=60) == "ran"
    with joblib.parallel_backend("ember", n_jobs=2):  # a later block too
        assert pids_of_a_call() == first


def test_a_failed_call_ends_the_shared_pool(node):
    register_ember()
    with joblib.parallel_backend("ember", n_jobs=2):
        before = pids_of_a_call()
        with pytest.raises(KeyError):
            joblib.Parallel()(joblib.delayed(fails_on)(i) for i in range(6))
        after = pids_of_a_call()  # a fresh pool
    assert not before & after
    deadline = time.monotonic() + 10
    while any(psutil.pid_exists(pid) for pid in before) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(psutil.pid_exists(pid) for pid in before)


def test_the_shared_pool_ends_once_idle(node, monkeypatch):
    monkeypatch.setattr(ray_backend, "IDLE_SECONDS", 0.2)
    register_ember()
    with joblib.parallel_backend("ember", n_jobs=2):
        pids = pids_of_a_call()
    deadline = time.monotonic() + 10
    while any(psutil.pid_exists(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(psutil.pid_exists(pid) for pid in pids)
    with joblib.parallel_backend("ember", n_jobs=2):  # and the next call makes a new one
        assert not pids_of_a_call() & pids


def test_a_new_node_gets_a_new_pool():
    register_ember()
    pids = []
    for _ in range(2):
        ember.init(num_cpus=2)
        try:
            with joblib.parallel_backend("ember", n_jobs=2):
                pids.append(pids_of_a_call())
        finally:
            ember.shutdown()
    assert not pids[0] & pids[1]
