"""GPU resources: tasks see the GPU ids their lease holds (no GPU needed: ids only), and GPU
tasks get a fresh worker per call (max_calls)."""

from __future__ import annotations

import collections
import os
import time

import pytest

import ember

from .conftest import STORE_BYTES


def test_gpu_tasks_get_their_own_cuda_visible_devices():
    ember.init(num_cpus=2, num_gpus=2, object_store_memory=STORE_BYTES)
    try:
        @ember.remote(num_gpus=1)
        def gpu_task():
            start = time.monotonic()
            time.sleep(0.2)
            return os.environ.get("CUDA_VISIBLE_DEVICES"), start, time.monotonic()

        @ember.remote
        def cpu_task():
            return os.environ.get("CUDA_VISIBLE_DEVICES")

        (a, a0, a1), (b, b0, b1) = ember.get([gpu_task.remote(), gpu_task.remote()])
        assert {a, b} <= {"0", "1"}
        if a0 < b1 and b0 < a1:  # they ran at the same time: never on the same GPU
            assert a != b
        assert ember.get(cpu_task.remote()) is None
    finally:
        ember.shutdown()


def test_get_gpu_ids_in_tasks_and_gpu_actors():
    ember.init(num_cpus=2, num_gpus=2, object_store_memory=STORE_BYTES)
    try:
        @ember.remote(num_gpus=1)
        def gpu_task():
            return ember.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")

        @ember.remote(num_gpus=2)
        class Trainer:
            def ids(self):
                return ember.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")

        ids, env = ember.get(gpu_task.remote())
        assert len(ids) == 1 and env == str(ids[0])
        trainer = Trainer.remote()  # an actor keeps the GPUs of its creation for every call
        assert ember.get([trainer.ids.remote() for _ in range(2)]) == [([0, 1], "0,1")] * 2
        assert ember.get_gpu_ids() == []
    finally:
        ember.shutdown()


def test_a_gpu_task_gets_a_fresh_worker_each_call_and_max_calls_sets_the_count():
    # Ray's default max_calls is 1 for tasks that use GPUs, so the GPU memory a library keeps
    # goes back with the worker; max_calls=N lets one worker run N calls (of that function).
    ember.init(num_cpus=2, num_gpus=1, object_store_memory=STORE_BYTES)
    try:
        gpu_pid = ember.remote(num_gpus=1)(os.getpid)
        pids = [ember.get(gpu_pid.remote(), timeout=20) for _ in range(3)]
        assert len(set(pids)) == 3
        two_each = ember.remote(max_calls=2)(os.getpid)
        pids = [ember.get(two_each.remote(), timeout=20) for _ in range(6)]
        # Which idle worker takes a call is the scheduler's choice; none takes a third.
        assert max(collections.Counter(pids).values()) == 2
        # Nested work from a max_calls=1 GPU task does not hold the GPU (Ray's regression).
        inner = ember.remote(num_cpus=0)(os.getpid)
        outer = ember.remote(num_gpus=1, max_calls=1, max_retries=0)(lambda: [inner.remote()])
        for _ in range(4):
            assert ember.get(ember.get(outer.remote(), timeout=20)[0], timeout=20) > 0
        plain = ember.remote(os.getpid)
        assert len(set(ember.get([plain.remote() for _ in range(20)]))) <= 2  # no limit
    finally:
        ember.shutdown()


def test_max_calls_must_be_a_non_negative_int():
    with pytest.raises(ValueError, match="'max_calls' only accepts None, 0 or a positive"):
        ember.remote(max_calls=-1)(os.getpid)
    with pytest.raises(TypeError, match="The type of keyword 'max_calls' must be"):
        ember.remote(max_calls=1.5)(os.getpid)


def test_tasks_with_and_without_gpus_never_share_a_worker():
    ember.init(num_cpus=1, num_gpus=1, object_store_memory=STORE_BYTES)  # one worker at first
    try:
        @ember.remote(num_gpus=1, max_calls=0)  # kept after its call: it could be reused
        def with_gpu():
            return os.getpid()

        @ember.remote
        def without_gpu():
            return os.getpid()

        gpu_pid = ember.get(with_gpu.remote(), timeout=30)
        cpu_pid = ember.get(without_gpu.remote(), timeout=30)  # a new worker is started for it
        assert cpu_pid != gpu_pid
        assert ember.get(with_gpu.remote(), timeout=30) == gpu_pid  # each kind keeps its own
        assert ember.get(without_gpu.remote(), timeout=30) == cpu_pid
    finally:
        ember.shutdown()
