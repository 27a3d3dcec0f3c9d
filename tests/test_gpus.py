"""GPU resources: tasks see the GPU ids their lease holds (no GPU needed: ids only)."""

from __future__ import annotations

import os
import time

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
