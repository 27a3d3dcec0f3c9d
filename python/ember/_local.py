"""The ember node as the backend: the public API answered by the node on this machine.

Each call is the function of the module that owns the concept (objects: ``_objects``; tasks:
``remote_function``; actors: ``actor``; the node's resources and timeline: ``_node``); this
class is their table, plus ``init``, which checks the arguments and starts the node, its log
printer and its dashboard.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from ember import _backend, _core, _node, _objects, _options, _runtime_env, _unhandled, actor
from ember._logs import LogPrinter
from ember._stream import ObjectRefGenerator
from ember.exceptions import NODE_IP, _BadArgument
from ember.remote_function import RemoteFunction
from ember.runtime_context import RuntimeContext


class LocalBackend(_backend.Backend):
    name = "ember"

    # The hot calls go straight to their functions: no frame of this class in between.
    put = staticmethod(_objects.put)
    get = staticmethod(_objects.get)
    wait = staticmethod(_objects.wait)
    submit_task = staticmethod(RemoteFunction._submit)
    create_actor = staticmethod(actor.ActorClass._create)
    get_actor = staticmethod(actor._get_actor)
    kill = staticmethod(actor._kill)
    exit_actor = staticmethod(actor._exit_actor)

    def init(self, address: str | None, **options: Any) -> _node.NodeInfo:
        del address  # None, "local" or "auto": this machine
        return _start(**options)

    def shutdown(self) -> None:
        _node.stop()

    def is_initialized(self) -> bool:
        return _node.is_running()  # in a worker too, as in Ray

    def cancel(self, object_ref, force: bool, recursive: bool) -> None:
        if isinstance(object_ref, ObjectRefGenerator):
            object_ref = object_ref.completed()  # its task's return
        if not isinstance(object_ref, _core.ObjectRef):
            raise _BadArgument(f"cancel() takes an ObjectRef, not a {type(object_ref).__name__}")
        node = _node.current()
        if node.scheduler is None:  # in a task or actor: the scheduler does it when it reads it
            node.worker.cancel(object_ref, force, recursive)
        else:
            node.scheduler.cancel(object_ref, force, recursive)

    def cluster_resources(self) -> dict[str, float]:
        return _node.current().cluster_resources()

    def available_resources(self) -> dict[str, float]:
        return _node.current().available_resources()

    def nodes(self) -> list[dict]:
        node = _node.current()
        return [{
            "NodeID": node.node_id,
            "Alive": True,
            "NodeManagerAddress": NODE_IP,
            "NodeManagerHostname": os.uname().nodename,
            "Resources": node.cluster_resources(),
            "alive": True,
        }]

    def timeline(self, filename: str | None) -> list[dict] | None:
        events = _node.current().timeline()
        if filename is None:
            return events
        import json  # noqa: PLC0415 (~2 ms, for this rare call only: not at start-up)

        with open(filename, "w") as f:
            json.dump(events, f)
        return None

    def get_gpu_ids(self) -> list[int]:
        return list(_node.current().gpu_ids)

    def runtime_context(self) -> RuntimeContext:
        return RuntimeContext(_node.current())

    def list_objects(self) -> list[dict]:
        return _node.current().store.list_objects()

    def list_actors(self) -> list[dict]:
        return _driver_scheduler("list_actors").actors()

    def list_tasks(self) -> list[dict]:
        """The tasks not finished, then those finished lately (the timeline's, newest first,
        with how each ended); task ids as get_runtime_context().get_task_id() gives them."""
        scheduler = _driver_scheduler("list_tasks")
        rows = [{**task, "task_id": _TASK_ID_PAD + task["task_id"], "type": "NORMAL_TASK"}
                for task in scheduler.tasks()]
        for name, pid, _, _, returns, failed, kind in reversed(scheduler.task_events()):
            rows.append({"name": name, "task_id": _TASK_ID_PAD + returns, "worker_pid": pid,
                         "state": "FAILED" if failed else "FINISHED", "type": _TASK_TYPES[kind]})
        return rows


#: A task's id is its first return's, in a TaskID's 24 bytes (runtime_context.get_task_id).
_TASK_ID_PAD = "00" * 8
#: Ray's task types, by the core's TaskKind (task_events.h).
_TASK_TYPES = ("NORMAL_TASK", "ACTOR_TASK", "ACTOR_CREATION_TASK")


def _driver_scheduler(call: str) -> _core.Scheduler:
    node = _node.current()
    if node.scheduler is None:
        raise RuntimeError(f"{call}() can only be called from the driver")
    return node.scheduler


def _start(*, num_cpus, num_gpus, resources, object_store_memory, log_to_driver,
           ignore_reinit_error, memory_usage_threshold, include_dashboard, dashboard_host,
           dashboard_port, _memory_limit, _temp_dir, **ray_options) -> _node.NodeInfo:
    """init() on this machine: checks the arguments (ember.api.init documents them), starts
    the node, then its log printer and dashboard."""
    if _node.is_running() and ignore_reinit_error:
        return _node.current().info
    _options.check_init_options(ray_options)
    job = ray_options.get("job_config")
    namespace = ray_options.get("namespace") or (job and job.ray_namespace) or "default"
    runtime_env = _runtime_env.check(
        ray_options.get("runtime_env") or (job.runtime_env if job else None), "the job")
    if not isinstance(namespace, str):
        raise ValueError(f"namespace must be a str, got {namespace!r}")
    _configure_logging(ray_options)
    totals = _resource_totals(num_cpus, num_gpus, resources)
    available_memory = _node.memory_limit()
    if object_store_memory is None:
        object_store_memory = int(available_memory * _node.DEFAULT_STORE_FRACTION)
    elif not isinstance(object_store_memory, int) or object_store_memory < (1 << 20):
        raise ValueError(
            f"object_store_memory must be an int of at least 1 MiB, got {object_store_memory!r}"
        )
    if memory_usage_threshold is None:
        memory_usage_threshold = float(os.environ.get("EMBER_MEMORY_USAGE_THRESHOLD", "0.95"))
    if not 0 <= memory_usage_threshold <= 1:
        raise ValueError(
            f"memory_usage_threshold must be between 0 and 1, got {memory_usage_threshold!r}")
    if _memory_limit is None:
        _memory_limit = int(os.environ.get("EMBER_MEMORY_LIMIT", "0"))
    settings = _options.system_settings(ray_options.get("_system_config") or {})
    if include_dashboard is None:
        include_dashboard = os.environ.get("EMBER_DASHBOARD", "0") not in ("", "0")
    # The "memory" resource that tasks' and actors' memory= options hold, as in Ray: what is
    # available beside the store.
    totals["memory"] = max(0, available_memory - object_store_memory)
    node = _node.start(totals, object_store_memory, memory_threshold=memory_usage_threshold,
                       memory_limit=_memory_limit, **settings,
                       temp_dir=_temp_dir, namespace=namespace,
                       default_actor_lifetime=job.default_actor_lifetime if job else None,
                       runtime_env=runtime_env)
    try:
        node.unhandled_reporter = _unhandled.Reporter(node.store)
        if _log_to_driver(log_to_driver):
            node.log_printer = LogPrinter(node.log_dir)
        if include_dashboard:
            _start_dashboard(node, dashboard_host, dashboard_port)
    except BaseException:
        _node.stop()
        raise
    return node.info


def _log_to_driver(asked: bool | None) -> bool:
    """init(log_to_driver=): as asked, else what $EMBER_LOG_TO_DRIVER or Ray's
    $RAY_LOG_TO_DRIVER says (as Ray reads it: "1" or "true" is yes), else yes."""
    if asked is not None:
        return bool(asked)
    for name in ("EMBER_LOG_TO_DRIVER", "RAY_LOG_TO_DRIVER"):
        if name in os.environ:
            return os.environ[name].lower() in ("1", "true")
    return True


def _configure_logging(options: dict[str, Any]) -> None:
    """Ray's logging options, for ember's logger ("ember"): its level, and with
    configure_logging (the default) a handler on stderr in logging_format."""
    if options.get("logging_config") is not None:
        raise ValueError("init(logging_config=...): Ray's LoggingConfig is not supported by "
                         "ember; logging_level= and logging_format= are")
    if not options.get("configure_logging", True):
        return
    logger = logging.getLogger("ember")
    logger.setLevel(options.get("logging_level", logging.INFO))
    fmt = options.get("logging_format")
    if fmt is not None:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(fmt))
        logger.handlers[:] = [handler]


def _resource_totals(num_cpus, num_gpus, resources) -> dict[str, float]:
    if num_cpus is None:
        num_cpus = os.cpu_count() or 1
    if not isinstance(num_cpus, int) or isinstance(num_cpus, bool) or num_cpus < 0:
        raise ValueError(f"num_cpus must be a non-negative int, got {num_cpus!r}")
    num_gpus = 0 if num_gpus is None else num_gpus
    if not isinstance(num_gpus, int) or isinstance(num_gpus, bool) or num_gpus < 0:
        raise ValueError(f"num_gpus must be a non-negative int, got {num_gpus!r}")
    custom = dict(resources or {})
    for name, amount in custom.items():
        if name in _node.BUILTIN_RESOURCES:
            raise ValueError(f"use num_{name.lower()}s=, not resources={{'{name}': ...}}")
        if name == "memory":
            raise ValueError("the node's memory resource is what object_store_memory leaves "
                             "of the available memory; resources={'memory': ...} cannot set it")
        if not isinstance(amount, (int, float)) or amount < 0:
            raise ValueError(f"resource {name!r} must be a non-negative number, got {amount!r}")
    if len(custom) + 3 > _core.MAX_RESOURCES:  # CPU, GPU and memory take three slots
        raise ValueError(f"at most {_core.MAX_RESOURCES - 3} custom resources are supported")
    return {"CPU": num_cpus, "GPU": num_gpus, **custom}


def _start_dashboard(node: _node.Node, host: str, port: int | None) -> None:
    # Imported here: the HTTP server costs ~30 ms of start-up, paid only when asked for.
    from ember import dashboard  # noqa: PLC0415

    node.dashboard = dashboard.Dashboard(node, host,
                                         dashboard.DEFAULT_PORT if port is None else port)
    node.info = node.info.with_dashboard(node.dashboard.url)
    # Once, here: the token is in it (as Jupyter prints it).
    print(f"ember: the dashboard is at {node.dashboard.url}", file=sys.stderr, flush=True)
