"""get_runtime_context(): where the calling code runs (job, node, worker, task, actor), with
Ray's accessors. Ids are the hex of Ray's id classes (ember._ids), so ``ray.NodeID.from_hex(
ctx.get_node_id())`` works; ``ctx.node_id`` and the other id properties are those objects
(deprecated in Ray in favour of the getters, and warned about the same way)."""

from __future__ import annotations

import inspect
import json
import os
import warnings

from ember import _backend, _core, _node, _placement, _runtime_env
from ember._ids import ActorID, JobID, NodeID, PlacementGroupID, TaskID, WorkerID


class RuntimeContext:
    """The caller's place in the node: the driver, a task or an actor's call."""

    def __init__(self, node: _node.Node):
        self._node = node

    # --- ids ------------------------------------------------------------------------

    def get_job_id(self) -> str:
        return self._job_id().hex()

    def get_node_id(self) -> str:
        return self._node.node_id

    def get_worker_id(self) -> str:
        return WorkerID.from_int(os.getpid()).hex()

    def get_task_id(self) -> str | None:
        """The running task's or actor call's id (None in the driver)."""
        task_id = self._task_id()
        return None if task_id is None else task_id.hex()

    def get_actor_id(self) -> str | None:
        """The id of the actor this code runs in (its handle's repr shows it); None outside
        an actor."""
        actor_id = self._actor_id()
        return None if actor_id is None else actor_id.hex()

    def _job_id(self) -> JobID:
        return self._node.job_id

    def _task_id(self) -> TaskID | None:
        call = _node.current_call.get()
        return None if call is None else TaskID(bytes(TaskID.SIZE - len(call[1])) + call[1])

    def _actor_id(self) -> ActorID | None:
        actor_id = self._node.actor_id
        return None if actor_id is None else ActorID.from_int(actor_id)

    @property
    def job_id(self) -> JobID:
        _deprecated("job_id", "get_job_id")
        return self._job_id()

    @property
    def node_id(self) -> NodeID:
        _deprecated("node_id", "get_node_id")
        return NodeID.from_hex(self._node.node_id)

    @property
    def task_id(self) -> TaskID | None:
        _deprecated("task_id", "get_task_id")
        return self._task_id()

    @property
    def actor_id(self) -> ActorID | None:
        _deprecated("actor_id", "get_actor_id")
        return self._actor_id()

    @property
    def current_placement_group_id(self) -> PlacementGroupID:
        """The placement group's id (nil outside one), as Ray's deprecated property."""
        _deprecated("current_placement_group_id", "get_placement_group_id")
        placed = self._node.placement
        return PlacementGroupID.nil() if placed is None else \
            _placement.group_id(self._node, placed[0])

    # --- what runs here -------------------------------------------------------------

    def get_task_name(self) -> str | None:
        call = _node.current_call.get()
        return None if call is None else call[0]

    def get_task_function_name(self) -> str | None:
        """The module-qualified name of the running function or actor method, as Ray writes
        it (for an async actor's method, its __qualname__)."""
        call = _node.current_call.get()
        if call is None:
            return None
        target = call[3]
        if isinstance(target, bytes):  # a task: its function's id
            fn = self._node.worker_state.function(target)
            return f"{fn.__module__}.{fn.__name__}"
        fn = getattr(target, "__func__", target)
        if inspect.iscoroutinefunction(fn):
            return f"{fn.__module__}.{fn.__qualname__}"
        owner = type(getattr(target, "__self__", None)).__name__
        return f"{fn.__module__}.{owner}.{getattr(fn, '__name__', call[0])}"

    def is_canceled(self) -> bool:
        """True once ember.cancel() was called on the running task (a task can check it to
        stop cleanly; also inside the KeyboardInterrupt the cancel raises). As in Ray, a
        RuntimeError in the driver and in an async actor."""
        if self._node.worker is None:
            raise RuntimeError("is_canceled() is only available in a task or an actor's call, "
                               "not in the driver")
        state = self._node.actor_state
        if state is not None and state.is_async:
            raise RuntimeError("is_canceled() is not supported in an async actor")
        call = _node.current_call.get()
        return call is not None and self._node.worker.cancel_requested(call[2])

    def get_actor_name(self) -> str | None:
        """The running actor's name ("" for an unnamed actor, as Ray's); None outside one."""
        if self._node.actor_id is None:
            return None
        return self._node.actor_name or ""

    @property
    def current_actor(self):
        """A handle to the actor this code runs in (RuntimeError outside an actor)."""
        state = self._node.actor_state
        if state is None or self._node.actor_id is None:
            raise RuntimeError("current_actor is only available inside an actor")
        return state.own_handle()

    @property
    def was_current_actor_reconstructed(self) -> bool:
        """True in an actor that was restarted after its process died (max_restarts)."""
        return self._node.actor_reconstructed

    def get_assigned_resources(self) -> dict[str, float]:
        """The resources the running task holds (an actor's: those it was given explicitly;
        the driver: none)."""
        node = self._node
        if node.actor_id is not None:
            amounts = node.actor_resources
        else:
            call = _node.current_call.get()
            amounts = None if call is None else node.worker.task_resources(call[2])
        if not amounts:
            return {}
        return {name: amounts[i] / _core.RESOURCE_UNIT
                for i, name in enumerate(node.resources) if amounts[i] > 0}

    def get_accelerator_ids(self) -> dict[str, list[str]]:
        return {"GPU": [str(i) for i in self._node.gpu_ids]}

    # --- the job --------------------------------------------------------------------

    @property
    def namespace(self) -> str:
        """Where named actors are made and found unless a call names another (init's)."""
        return self._node.namespace

    def get_namespace(self) -> str:
        return self._node.namespace

    def get_session_name(self) -> str:
        """The session directory's name (the same in every process of the node)."""
        return os.path.basename(self._node.session_dir)

    def get_node_labels(self) -> dict[str, str]:
        return {"ray.io/node-id": self._node.node_id}

    def get_placement_group_id(self) -> str | None:
        """The hex id of the placement group the running task or actor is placed in, or None."""
        placed = self._node.placement
        return None if placed is None else _placement.group_id(self._node, placed[0]).hex()

    def get_runtime_env_string(self) -> str:
        return json.dumps(self.runtime_env)

    @property
    def runtime_env(self) -> dict:
        """The runtime_env in effect: the job's, or the running task's or actor's over it."""
        return dict(_runtime_env.active or self._node.runtime_env)

    @property
    def worker_pid(self) -> int:
        return os.getpid()

    def get(self) -> dict:
        """Ray's dict of the context: job_id, node_id (id objects), namespace, and task_id and
        actor_id where they exist."""
        out = {"job_id": self._job_id(), "node_id": NodeID.from_hex(self._node.node_id),
               "namespace": self._node.namespace}
        task_id = self._task_id()
        if task_id is not None:
            out["task_id"] = task_id
        actor_id = self._actor_id()
        if actor_id is not None:
            out["actor_id"] = actor_id
        return out


def _deprecated(name: str, getter: str) -> None:
    warnings.warn(f"Use {getter}() instead of the {name} property", DeprecationWarning,
                  stacklevel=3)


def get_runtime_context() -> RuntimeContext:
    """Where the calling code runs: in the driver, a task or an actor."""
    return _backend.active.runtime_context()
