"""ember.util.state: what the node holds right now (Ray's ray.util.state names)."""

from __future__ import annotations

from ember import _backend


def list_objects() -> list[dict]:
    """Every object in the node's store: id, state, size, reference and pin counts, the pid of
    the process that created it, and which worker slots hold refs or views on it (a worker's
    own holds; the rest of ref_count is held by the driver, by queued tasks, or by other
    objects that contain the ref). Under the Ray backend: Ray's list_objects()."""
    return _backend.active.list_objects()


def list_actors() -> list[dict]:
    """Every actor the node has made: id, class name, state (PENDING_CREATION, ALIVE,
    RESTARTING, DEAD), pid, why it died, and calls waiting in the scheduler. Driver only.
    Under the Ray backend: Ray's list_actors()."""
    return _backend.active.list_actors()


def list_tasks() -> list[dict]:
    """Every task not finished yet: name, task id (its first return's id), state
    (PENDING_ARGS, PENDING_RESOURCES, BACKOFF after an OOM kill, QUEUED_ON_WORKER, RUNNING),
    worker pid and seconds running; what a program that seems stuck is waiting for. Actor
    calls are not listed (see list_actors). Driver only. Under the Ray backend: Ray's."""
    return _backend.active.list_tasks()
