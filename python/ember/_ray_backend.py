"""The Ray backend: the same ember program on a Ray cluster.

``ember.init(address="ray://head:10001")`` (any address but None, "local" or "auto"), or
``EMBER_BACKEND=ray`` in the environment, starts Ray instead of an ember node. From then on
every ember call in this process is Ray's call: tasks, actors and objects are Ray's, ember
forwards and does nothing of its own. The job's ``runtime_env`` carries ``EMBER_BACKEND=ray``
to Ray's workers, so ember calls made inside tasks and actors forward too (ember must be
installed where they run).

What differs from an ember node, by design: ObjectRefs and actor handles are Ray's types, and
Ray's errors are raised as ember's classes (a task's exception still derives from the task's
own exception class), so ``except ember.exceptions.GetTimeoutError`` works on both backends.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

from ember import _backend, _scheduling, exceptions


def requested(address: str | None) -> bool:
    """True if ``init(address=...)`` (or the environment) asks for Ray."""
    return address not in (None, "local", "auto") or os.environ.get("EMBER_BACKEND") == "ray"


def in_ray_job() -> bool:
    """True in a process of a job that runs on Ray ($EMBER_BACKEND=ray: its driver before
    init(), and every worker Ray starts for it, where Ray connects before our code runs)."""
    return os.environ.get("EMBER_BACKEND") == "ray"


class RayBackend(_backend.Backend):
    """Every call is Ray's own; errors are translated to ember's classes."""

    name = "ray"

    def __init__(self):
        self._ray: Any = None  # the ray module, once connected

    def ray(self):
        """The ray module, connected: init() connected it, or Ray did (in a worker)."""
        if self._ray is None:
            ray = sys.modules.get("ray")
            if ray is None or not ray.is_initialized():
                raise exceptions.NotInitializedError(
                    "ember is not initialized: call ember.init() first")
            self._ray = ray
        return self._ray

    def init(self, address: str | None, **options: Any):
        """Starts or joins a Ray cluster with ray.init(); returns Ray's context."""
        runtime_env = dict(options.pop("runtime_env", None) or {})
        env_vars = dict(runtime_env.get("env_vars") or {})
        env_vars["EMBER_BACKEND"] = "ray"
        runtime_env["env_vars"] = env_vars
        for name in _NODE_ONLY:  # an ember node's own options: Ray has none of the kind
            if options.pop(name, None) is not None:
                raise ValueError(
                    f"init({name}=...) is an option of ember's own node; Ray's backend has no "
                    "such argument (Ray reads its memory monitor's settings from RAY_* "
                    "environment variables of the cluster)")
        if options.get("dashboard_host") == _DEFAULT_DASHBOARD_HOST:
            del options["dashboard_host"]  # Ray's default too; joining a cluster refuses it
        options = {k: v for k, v in options.items() if v is not None}
        ray = _import_ray()
        job = options.get("job_config")
        if job is not None and not isinstance(job, ray.job_config.JobConfig):
            options["job_config"] = ray.job_config.JobConfig(**job.arguments())
        context = ray.init(address=address, runtime_env=runtime_env, **options)
        self._ray = ray
        return context

    def shutdown(self) -> None:
        if self._ray is not None:
            self._ray.shutdown()
            self._ray = None

    def is_initialized(self) -> bool:
        ray = sys.modules.get("ray")
        return ray is not None and ray.is_initialized()

    def put(self, value):
        return self.ray().put(value)

    def get(self, object_refs, timeout):
        ray = self.ray()
        try:
            return ray.get(object_refs, timeout=timeout)
        except ray.exceptions.RayError as e:
            raise self.translate(e) from e

    def wait(self, object_refs, num_returns, timeout, fetch_local):
        return self.ray().wait(object_refs, num_returns=num_returns, timeout=timeout,
                               fetch_local=fetch_local)

    def submit_task(self, function, args, kwargs):
        remote = function.__dict__.get("_ray_function")  # made once per RemoteFunction
        if remote is None:
            remote = self._remote(function._function, function._options,
                                  function.DEFAULT_OPTIONS)
            function._ray_function = remote
        return remote.remote(*args, **kwargs)

    def create_actor(self, actor_class, args, kwargs):
        return self._remote(actor_class._cls, actor_class._options,
                            actor_class.DEFAULT_OPTIONS).remote(*args, **kwargs)

    def _remote(self, target, options: dict[str, Any], defaults: dict[str, Any]):
        """ray.remote() of a function or class, with the options ember was given (those set,
        without ember's own defaults for Ray's)."""
        opts = {k: v for k, v in options.items()
                if v is not None and v != defaults.get(k, object())}
        if "scheduling_strategy" in opts:
            opts["scheduling_strategy"] = self._strategy(opts["scheduling_strategy"])
        ray = self.ray()
        return ray.remote(**opts)(target) if opts else ray.remote(target)

    def _strategy(self, strategy):
        """Ray's scheduling strategy for one of ember.util.scheduling_strategies (a string
        strategy is the same in both)."""
        from ray.util import scheduling_strategies as ray_strategies  # noqa: PLC0415

        if isinstance(strategy, _scheduling.PlacementGroupSchedulingStrategy):
            return ray_strategies.PlacementGroupSchedulingStrategy(
                strategy.placement_group, strategy.placement_group_bundle_index,
                strategy.placement_group_capture_child_tasks)
        if isinstance(strategy, _scheduling.NodeAffinitySchedulingStrategy):
            return ray_strategies.NodeAffinitySchedulingStrategy(
                strategy.node_id, strategy.soft, strategy._spill_on_unavailable,
                strategy._fail_on_unavailable)
        if isinstance(strategy, _scheduling.NodeLabelSchedulingStrategy):
            return ray_strategies.NodeLabelSchedulingStrategy(strategy.hard, soft=strategy.soft)
        return strategy

    def cancel(self, object_ref, force, recursive):
        return self.ray().cancel(object_ref, force=force, recursive=recursive)

    def get_actor(self, name, namespace):
        return self.ray().get_actor(name, namespace=namespace)

    def kill(self, actor, no_restart):
        return self.ray().kill(actor, no_restart=no_restart)

    def exit_actor(self):
        self.ray().actor.exit_actor()

    def cluster_resources(self):
        return self.ray().cluster_resources()

    def available_resources(self):
        return self.ray().available_resources()

    def nodes(self):
        return self.ray().nodes()

    def timeline(self, filename):
        return self.ray().timeline(filename=filename)

    def get_gpu_ids(self):
        return self.ray().get_gpu_ids()

    def runtime_context(self):
        return self.ray().get_runtime_context()

    def list_objects(self):
        self.ray()
        from ray.util.state import list_objects  # noqa: PLC0415 (Ray is optional)

        return list_objects()

    def list_actors(self):
        self.ray()
        from ray.util.state import list_actors  # noqa: PLC0415 (Ray is optional)

        return list_actors()

    def list_tasks(self):
        self.ray()
        from ray.util.state import list_tasks  # noqa: PLC0415 (Ray is optional)

        return list_tasks()

    def translate(self, error: BaseException) -> BaseException:
        """Ray's error as the ember class users catch on both backends."""
        rx = self._ray.exceptions
        if isinstance(error, rx.RayTaskError):
            # get() raises Ray's dual instance, which keeps only `cause` (other attributes are
            # looked up on the cause); its text names the task: "ray::name() (pid=..., ...)".
            text = str(error)
            named = re.search(r"ray::([\w.<>]+)\(\)", text)
            pid = re.search(r"\(pid=(\d+)", text)
            return exceptions.TaskError(
                named.group(1) if named else "task", _ANSI.sub("", text),
                error.__dict__.get("cause"), int(pid.group(1)) if pid else 0).as_instanceof_cause()
        for ray_name, ember_cls in _TRANSLATED:
            ray_cls = getattr(rx, ray_name, None)
            if ray_cls is not None and isinstance(error, ray_cls):
                return ember_cls(str(error))
        return error


#: init() arguments only an ember node takes.
_NODE_ONLY = ("memory_usage_threshold", "_memory_limit")
_DEFAULT_DASHBOARD_HOST = "127.0.0.1"


def _import_ray():
    try:
        import ray  # noqa: PLC0415 (optional: only this backend needs it)
    except ImportError as e:
        raise ImportError(
            "ember's Ray backend needs Ray in this environment: pip install 'ember[ray]' "
            "(or pip install ray)") from e
    return ray


_ANSI = re.compile(r"\x1b\[[0-9;]*m")

#: Ray's error classes and ember's, most specific first.
_TRANSLATED = (
    ("GetTimeoutError", exceptions.GetTimeoutError),
    ("TaskCancelledError", exceptions.TaskCancelledError),
    ("OutOfMemoryError", exceptions.OutOfMemoryError),
    ("ObjectStoreFullError", exceptions.ObjectStoreFullError),
    ("ObjectLostError", exceptions.ObjectLostError),
    ("WorkerCrashedError", exceptions.WorkerCrashedError),
    ("ActorDiedError", exceptions.ActorDiedError),
    ("RayActorError", exceptions.ActorDiedError),
)
