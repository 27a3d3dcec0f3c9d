"""Shared fixtures: a small node per test, and probes of what this process holds."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import ember

#: Small enough for a 2-core CI machine, big enough for the arrays the tests put.
STORE_BYTES = 256 << 20


def _small_node():
    ember.init(num_cpus=2, object_store_memory=STORE_BYTES)
    try:
        yield ember._node.current()
    finally:
        ember.shutdown()


#: A running node with a small store, shut down after the test.
node = pytest.fixture(_small_node, name="node")
#: One such node for a whole module whose tests do not disturb each other.
shared_node = pytest.fixture(_small_node, scope="module", name="shared_node")


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def segment_mappings(pid: int | str = "self") -> list[str]:
    with open(f"/proc/{pid}/maps") as f:
        return [line for line in f if "ember-segment" in line]


def run_python(code: str, *, pass_fds=(), timeout=30, **kwargs) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter (inheriting `pass_fds`) and returns the result."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        pass_fds=pass_fds,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )
