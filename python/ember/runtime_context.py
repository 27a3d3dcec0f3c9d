"""get_runtime_context(): where the calling code runs (job, node, worker, task)."""

from __future__ import annotations

import os

from ember import _backend, _node


class RuntimeContext:
    """A snapshot of the caller's place in the node, with Ray's accessors."""

    def __init__(self, node: _node.Node):
        self._node = node

    def get_job_id(self) -> str:
        return f"{self._node.store.node_tag & 0xFFFFFFFF:08x}"

    def get_node_id(self) -> str:
        return self._node.node_id

    def get_worker_id(self) -> str:
        return f"{os.getpid():08x}"

    def get_task_id(self) -> str | None:
        """An id of the running task (None in the driver)."""
        task = getattr(self._node, "current_task", None)
        return None if task is None else task[1].hex()

    def get_task_name(self) -> str | None:
        task = getattr(self._node, "current_task", None)
        return None if task is None else task[0]

    def get_actor_id(self) -> str | None:
        """The id of the actor this code runs in (its handle's repr shows it); None outside
        an actor."""
        actor_id = getattr(self._node, "actor_id", None)
        return None if actor_id is None else f"{actor_id:016x}"

    @property
    def namespace(self) -> str:
        """Where named actors are made and found unless a call names another (init's)."""
        return self._node.namespace

    def get_namespace(self) -> str:
        return self._node.namespace

    @property
    def worker_pid(self) -> int:
        return os.getpid()

    @property
    def job_id(self) -> str:
        return self.get_job_id()

    @property
    def node_id(self) -> str:
        return self.get_node_id()

    @property
    def task_id(self) -> str | None:
        return self.get_task_id()

    @property
    def was_current_actor_reconstructed(self) -> bool:
        return False

    def get(self) -> dict:
        return {"job_id": self.get_job_id(), "node_id": self.get_node_id(),
                "task_id": self.get_task_id(), "worker_pid": os.getpid()}


def get_runtime_context() -> RuntimeContext:
    """Where the calling code runs: in the driver, a task or an actor."""
    return _backend.active.runtime_context()
