"""The node: ember's one piece of process-global state.

A Node is the runtime on this machine as seen from this process: in the driver it owns the
object store (and, later, the scheduler and the workers). Everything in ember that needs the
runtime reaches it through :func:`current`, never through module globals of its own.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

import psutil

from ember import _core
from ember.exceptions import NotInitializedError

#: Share of the available memory the store takes by default (Ray's default too).
DEFAULT_STORE_FRACTION = 0.3


@dataclass(frozen=True)
class NodeInfo:
    """What ``ember.init()`` returns: a description of the node that was started."""

    node_id: str
    num_cpus: int
    object_store_memory: int
    session_dir: str
    pid: int = field(default_factory=os.getpid)

    def __getitem__(self, key: str):  # Ray's init() result is also read like a dict
        return getattr(self, key)


def memory_limit() -> int:
    """Bytes this process may use: the available RAM, or the cgroup's limit if lower."""
    available = psutil.virtual_memory().available
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            raw = f.read().strip()
        if raw != "max":
            with open("/sys/fs/cgroup/memory.current") as f:
                used = int(f.read().strip())
            available = min(available, max(0, int(raw) - used))
    except (OSError, ValueError):
        pass
    return available


class Node:
    """The runtime of one machine as seen from this process: in the driver, the node it
    started; in another process of the node, the node it attached to."""

    def __init__(self, store: _core.Store, num_cpus: int, is_driver: bool):
        self.store = store  # the node's shared segment
        self.num_cpus = num_cpus  # logical CPUs the scheduler hands out
        self.is_driver = is_driver  # True in the process that created the node
        self.started_at = time.time()
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(self.started_at))
        self.info = NodeInfo(
            node_id=f"{store.node_tag:016x}",
            num_cpus=num_cpus,
            object_store_memory=store.stats()["capacity"],
            session_dir=f"/tmp/ember/session_{stamp}_{os.getpid()}",
        )

    def shutdown(self) -> None:
        """Stops the node's threads and closes the segment's fd. Views still alive keep the
        mapping until they die; ObjectRefs still alive hold nothing."""
        self.store.close()


_lock = threading.Lock()
_current: Node | None = None


def current() -> Node:
    """The running node; raises NotInitializedError when there is none."""
    node = _current
    if node is None:
        raise NotInitializedError("ember is not initialized: call ember.init() first")
    return node


def is_running() -> bool:
    return _current is not None


def start(num_cpus: int, object_store_memory: int) -> Node:
    """Creates the node (driver only)."""
    global _current
    with _lock:
        if _current is not None:
            raise RuntimeError(
                "Maybe you called ember.init twice by accident? This error can be suppressed "
                "by passing in 'ignore_reinit_error=True' or by calling 'ember.shutdown()' "
                "prior to 'ember.init()'."
            )
        _current = Node(_core.Store.create(object_store_memory), num_cpus, is_driver=True)
        return _current


def connect(segment_fd: int, num_cpus: int = 0) -> Node:
    """Attaches this process to the node whose segment fd it inherited (workers, tests)."""
    global _current
    with _lock:
        if _current is not None:
            raise RuntimeError("this process is already part of an ember node")
        _current = Node(_core.Store.attach(segment_fd), num_cpus, is_driver=False)
        return _current


def stop() -> None:
    global _current
    with _lock:
        node, _current = _current, None
    if node is not None:
        node.shutdown()
