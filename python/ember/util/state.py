"""ember.util.state: what the node holds right now (Ray's ray.util.state names)."""

from __future__ import annotations

from types import SimpleNamespace

from ember import _backend
from ember._ids import ActorID


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


def get_actor(id: str) -> SimpleNamespace | None:
    """The actor whose id is `id` (the hex of its ActorID, as get_runtime_context()
    .get_actor_id() and its handle's repr show it), with list_actors()'s fields as attributes
    and its id as that hex; None if this node never made it. Driver only. Under the Ray
    backend: Ray's get_actor(id)."""
    if _backend.active.name == "ray":
        from ray.util.state import get_actor as ray_get_actor  # noqa: PLC0415 (Ray is optional)

        return ray_get_actor(id)
    if not isinstance(id, str):
        raise TypeError(f"get_actor takes the actor's id as a hex str, got {id!r}")
    try:
        actor_id = ActorID.from_hex(id)
    except ValueError:
        raise ValueError(f"get_actor: {id!r} is not the hex of an ActorID") from None
    for actor in list_actors():
        if ActorID.from_int(actor["actor_id"]) == actor_id:
            return SimpleNamespace(**{**actor, "actor_id": id})
    return None
