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
            time.sleep(0.2)
            return os.environ.get("CUDA_VISIBLE_DEVICES")

        @ember.remote
        def cpu_task():
            return os.environ.get("CUDA_VISIBLE_DEVICES")

        ids = ember.get([gpu_task.remote(), gpu_task.remote()])
        assert sorted(ids) == ["0", "1"]  # two at once, each with its own GPU
        assert ember.get(cpu_task.remote()) is None
    finally:
        ember.shutdown()
