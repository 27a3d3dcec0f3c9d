"""The options of tasks and actors, under Ray's names: their defaults, their checks, and what
each one means on one node.

Every option Ray takes is here. Each either works as in Ray or, set to anything but its
default, raises ValueError naming the option and saying why ember cannot honour it: an
option is never accepted and dropped. Unknown names and malformed values raise ValueError
where they are given (``@remote(...)``, ``.options()``), as in Ray; what ember's node cannot
do is refused when the task or actor is submitted to it (``refuse_unsupported``), because the
same decorated function may run on the Ray backend, which honours it.
"""

from __future__ import annotations

import inspect
import os
import re
import warnings
from typing import Any

from ember import _core, _runtime_env
from ember._scheduling import (
    NodeAffinitySchedulingStrategy,
    NodeLabelSchedulingStrategy,
    PlacementGroupSchedulingStrategy,
)
from ember.job_config import JobConfig

_LABELS = "node labels choose among the nodes of a cluster; ember's one node has none"
_GENERATORS = ("backpressure of generators (pausing one that is ahead of its consumer) is not "
               "supported by ember yet")

#: Options both take, with Ray's defaults.
_COMMON: dict[str, Any] = {
    "num_cpus": None,
    "num_gpus": None,
    "resources": None,
    "memory": None,  # bytes of the node's "memory" resource, held while the task runs
    "accelerator_type": None,  # needs resource "accelerator_type:<type>" (init(resources=))
    "name": None,
    "scheduling_strategy": None,
    "runtime_env": None,
    "object_store_memory": None,
    "placement_group": "default",
    "placement_group_bundle_index": -1,
    "placement_group_capture_child_tasks": None,
    "label_selector": None,
    "fallback_strategy": None,
    "_labels": None,
    "_metadata": None,
    "enable_task_events": True,
}

#: A remote function's options (what ``@remote(...)`` and ``.options()`` take).
TASK_OPTIONS: dict[str, Any] = {
    **_COMMON,
    "num_cpus": 1,
    "num_gpus": 0,
    "num_returns": 1,
    "max_retries": 3,
    "retry_exceptions": False,
    "max_calls": None,  # a fresh worker after this many calls; 0: never; None: 1 for GPU tasks
                        # and 0 for the others (Ray's default)
    "_generator_backpressure_num_objects": None,
    "_num_objects_per_yield": 1,
}

#: An actor class's options.
ACTOR_OPTIONS: dict[str, Any] = {
    **_COMMON,
    "namespace": None,
    "get_if_exists": False,
    "lifetime": None,
    "max_restarts": 0,
    "max_task_retries": 0,
    "max_concurrency": None,
    "max_pending_calls": -1,
    "concurrency_groups": None,
    "allow_out_of_order_execution": None,
    "enable_tensor_transport": None,
    "_actor_generator_backpressure_num_objects": None,
}

#: Options ember refuses when set to anything but their default (or None), and why.
_REFUSED = {
    # An actor's is deprecated in Ray and warned about here as there (check_actor_options).
    "object_store_memory": "Setting 'object_store_memory' is not implemented for tasks (as in "
                           "Ray)",
    "label_selector": _LABELS,
    "fallback_strategy": _LABELS,
    "_labels": _LABELS,
    "_metadata": "_metadata is for Ray's own libraries",
    "enable_task_events": "ember always records task events (ember.timeline())",
    "_generator_backpressure_num_objects": _GENERATORS,
    "_num_objects_per_yield": _GENERATORS,
    "enable_tensor_transport": "tensor transports move GPU tensors between Ray's nodes; "
                               "ember does not have them",
    "_actor_generator_backpressure_num_objects": _GENERATORS,
}


#: ray.init()'s options beyond the ones ember.init() names, with Ray's defaults: each set to
#: anything else is refused with the reason (namespace, _system_config and the logging ones
#: work: ember._local). A keyword Ray does not know is a RuntimeError, as in Ray.
_CLUSTER_PROCESS = "a setting of Ray's cluster processes, which ember's node does not have"
INIT_REFUSED: dict[str, tuple[Any, str]] = {
    "labels": (None, _LABELS),
    "local_mode": (False, "local mode (tasks run in the driver) is deprecated in Ray and not "
                          "in ember"),
    "enable_resource_isolation": (False, "resource isolation with cgroups is not supported "
                                         "by ember"),
    "cgroup_path": (None, "resource isolation with cgroups is not supported by ember"),
    "system_reserved_cpu": (None, "resource isolation with cgroups is not supported by ember"),
    "system_reserved_memory": (None, "resource isolation with cgroups is not supported by "
                                     "ember"),
    "proxy_server_url": (None, _CLUSTER_PROCESS),
    "storage": (None, "Ray's cluster storage is deprecated in Ray and not in ember"),
    "_enable_object_reconstruction": (False, "ember does not rebuild lost objects by rerunning "
                                             "their tasks"),
    "_plasma_directory": (None, "ember's store is a memfd segment, not files in a directory"),
    "_object_spilling_directory": (None, "ember spills into the session directory "
                                         "(init(_temp_dir=) moves it)"),
    "_node_ip_address": (None, "ember's node is this machine, reached at 127.0.0.1"),
    "_driver_object_store_memory": (None, _CLUSTER_PROCESS),
    "_memory": (None, _CLUSTER_PROCESS),
    "_redis_username": (None, _CLUSTER_PROCESS),
    "_redis_password": (None, _CLUSTER_PROCESS),
    "_metrics_export_port": (None, _CLUSTER_PROCESS),
    "_tracing_startup_hook": (None, _CLUSTER_PROCESS),
    "_node_name": (None, _CLUSTER_PROCESS),
    "_skip_env_hook": (False, _CLUSTER_PROCESS),
}
#: The keys of ray.init(_system_config=) that ember's node reads.
SYSTEM_CONFIG_KEYS = ("object_spilling_threshold", "actor_graceful_shutdown_timeout_ms",
                      "task_retry_delay_ms")


def system_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The node's settings (ember._node.start's keywords) from init(_system_config=), checked
    (its keys were, by check_init_options): Ray's defaults, or ember's environment's."""
    spilling = config.get("object_spilling_threshold",
                          float(os.environ.get("EMBER_OBJECT_SPILLING_THRESHOLD", "0.8")))
    if not isinstance(spilling, (int, float)) or not 0 < spilling <= 1:
        raise ValueError(f"object_spilling_threshold must be in (0, 1], got {spilling!r}")
    settings = {"spilling_threshold": float(spilling)}
    for key, setting, default in (
            ("actor_graceful_shutdown_timeout_ms", "actor_graceful_shutdown_ms", 30000),
            ("task_retry_delay_ms", "task_retry_delay_ms", 0)):
        value = config.get(key, default)
        if type(value) is not int or not 0 <= value < 2**32:
            raise ValueError(f"{key} must be an int of milliseconds >= 0, got {value!r}")
        settings[setting] = value
    return settings


def check_init_options(options: dict[str, Any]) -> None:
    """Raises for ray.init() options ember's node cannot honour (all but the ones it reads:
    namespace, job_config, runtime_env, _system_config, logging_level, logging_format,
    configure_logging, logging_config)."""
    unknown = set(options) - set(INIT_REFUSED) - {
        "namespace", "job_config", "runtime_env", "_system_config", "logging_level",
        "logging_format", "configure_logging", "logging_config"}
    if unknown:
        raise RuntimeError(f"Unknown keyword argument(s): {', '.join(sorted(unknown))}")
    for name, (default, reason) in INIT_REFUSED.items():
        value = options.get(name, default)
        if value != default and value not in (None, {}):
            raise ValueError(f"init({name}={value!r}): {reason}")
    job = options.get("job_config")
    if job is not None:
        if not isinstance(job, JobConfig):
            raise TypeError(f"job_config must be a JobConfig, got {type(job).__name__}")
        for name, reason in job.refused():
            raise ValueError(f"init(job_config=JobConfig({name}=...)): {reason}")
    config = options.get("_system_config") or {}
    for key in config:
        if key not in SYSTEM_CONFIG_KEYS:
            raise ValueError(
                f"init(_system_config={{{key!r}: ...}}): ember's node has no such setting "
                f"(it reads {', '.join(SYSTEM_CONFIG_KEYS)})")


#: What @method(...) takes (Ray's names); ``.options()`` on a call takes these and "name".
METHOD_OPTIONS = ("num_returns", "concurrency_group", "max_task_retries", "retry_exceptions",
                  "_generator_backpressure_num_objects", "_num_objects_per_yield",
                  "enable_task_events", "tensor_transport")
_METHOD_REFUSED = {
    "_generator_backpressure_num_objects": _GENERATORS,
    "_num_objects_per_yield": _GENERATORS,
    "enable_task_events": _REFUSED["enable_task_events"],
    "tensor_transport": _REFUSED["enable_tensor_transport"],
}


def _type_error(key: str, types: tuple, value) -> TypeError:
    """Ray's words for an option of the wrong type."""
    return TypeError(f"The type of keyword '{key}' must be {types}, but received type "
                     f"{type(value)}")


def _check_count(options: dict[str, Any], key: str, defaults: dict[str, Any],
                 infinite: bool) -> None:
    """A count option as Ray checks it (None: the default; -1: forever where `infinite`)."""
    v = options.get(key)
    if v is None:
        if key in options:
            options[key] = defaults[key]
        return
    if not isinstance(v, int):
        raise _type_error(key, (int, type(None)), v)
    if infinite and v < -1:
        raise ValueError(f"The keyword '{key}' only accepts None, 0, -1 or a positive integer, "
                         "where -1 represents infinity.")
    if not infinite and v < 0:
        raise ValueError(f"The keyword '{key}' only accepts None, 0 or a positive integer.")


def _check_num_returns(n) -> None:
    if n in ("streaming", "dynamic"):  # generators (ember._stream)
        return
    if not isinstance(n, (int, str)):
        raise _type_error("num_returns", (int, str, type(None)), n)
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError("The keyword 'num_returns' only accepts None, a non-negative integer, "
                         "'streaming' (for generators), or 'dynamic'.")


def _check_precision(name: str, amount: float) -> None:
    """Ray's rule: amounts are in 1/10000ths (the core's RESOURCE_UNIT)."""
    scaled = amount * _core.RESOURCE_UNIT
    if abs(scaled - round(scaled)) > 1e-6 * max(1.0, abs(scaled)):
        raise ValueError(f"The precision of the fractional quantity of resource {name} cannot "
                         f"go beyond {1 / _core.RESOURCE_UNIT}")


def core_returns(n) -> tuple[int, int]:
    """(the core's num_returns, its SpecFlags) for Ray's num_returns: a generator's one
    return is its item count ("streaming") or the list of its items ("dynamic")."""
    if n == "streaming":
        return 1, _core.SPEC_STREAMING
    if n == "dynamic":
        return 1, _core.SPEC_DYNAMIC
    return n, 0


def check_generator_returns(n, function, who: str) -> None:
    """Ray's rule: num_returns="streaming" needs a generator function."""
    if n == "streaming" and not is_generator_function(function):
        raise ValueError(f"num_returns='streaming' of {who} can only be used with generator "
                         "functions (functions that use 'yield')")


def is_generator_function(function) -> bool:
    """True for a function whose call makes a generator or an async generator: its tasks and
    calls stream their items by default, as in Ray."""
    return inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function)


def check_method_options(options: dict[str, Any], at_call: bool = False) -> None:
    """Raises ValueError for a name @method (or a call's .options()) does not take."""
    allowed = set(METHOD_OPTIONS) | ({"name"} if at_call else set())
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(f"invalid option(s) for an actor method: {', '.join(sorted(unknown))}"
                         f" (it takes {', '.join(sorted(allowed))})")
    _check_num_returns(options.get("num_returns", 1))
    name = options.get("name")
    if name is not None and not isinstance(name, str):
        raise _type_error("name", (str,), name)
    _check_count(options, "max_task_retries", {"max_task_retries": None}, infinite=True)
    _check_retry_exceptions(options)
    if at_call:
        refuse_unsupported_method_options(options, "an actor method call")


def refuse_unsupported_method_options(options: dict[str, Any], who: str) -> None:
    """Raises ValueError for a method option ember's node cannot honour."""
    for name, value in options.items():
        if name in _METHOD_REFUSED and value is not None and not (
                name == "enable_task_events" and value is True):
            raise ValueError(f"option {name}={value!r} of {who}: {_METHOD_REFUSED[name]}")


def _is_default(name: str, value: Any, defaults: dict[str, Any]) -> bool:
    return value is None or value == defaults[name] or (value == {} and name != "resources")


def _check_amounts(options: dict[str, Any]) -> None:
    """num_cpus, num_gpus, memory and resources: non-negative numbers, in 1/10000ths."""
    for key in ("num_cpus", "num_gpus", "memory"):
        v = options.get(key)
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0):
            raise ValueError(f"{key} must be a non-negative number, got {v!r}")
        if v is not None and key != "memory":
            _check_precision(key, v)
    res = options.get("resources")
    if res is None:
        return
    if not isinstance(res, dict):
        raise ValueError(f"resources must be a dict, got {type(res).__name__}")
    for name, amount in res.items():
        if isinstance(amount, (int, float)) and not isinstance(amount, bool):
            _check_precision(name, amount)


def _check_common(options: dict[str, Any], defaults: dict[str, Any], who: str) -> None:
    unknown = set(options) - set(defaults)
    if unknown:
        raise ValueError(f"invalid option(s) for {who}: {', '.join(sorted(unknown))}")
    _check_amounts(options)
    res = options.get("resources")
    if res is not None:
        for name in ("CPU", "GPU", "memory"):
            if name in res:
                option = {"CPU": "num_cpus", "GPU": "num_gpus"}.get(name, name)
                raise ValueError(f"use {option}=, not resources={{'{name}': ...}}")
    accelerator = options.get("accelerator_type")
    if accelerator is not None and not isinstance(accelerator, str):
        raise ValueError(f"accelerator_type must be a str, got {accelerator!r}")
    _check_strategy(options.get("scheduling_strategy"))
    if options.get("label_selector") is not None:
        check_label_selector(options["label_selector"], "label_selector")
    if options.get("fallback_strategy") is not None:
        _check_fallback_strategy(options["fallback_strategy"])


# Ray's label syntax (Kubernetes'): an optional DNS-subdomain prefix and "/", then a name;
# values of the same shape as names, possibly empty.
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?\Z")
_LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")


def check_label_selector(selector, where: str) -> None:
    """A label selector as Ray writes one: {key: value | "!value" | "in(a, b)" |
    "!in(a, b)"}, checked as Ray checks it (the node has no labels to match, see _REFUSED)."""
    if not isinstance(selector, dict):
        raise TypeError(f"{where} must be a dict of label names to values, got {selector!r}")
    for key, value in selector.items():
        prefix, _, name = key.rpartition("/") if isinstance(key, str) else ("", "", "")
        if not _LABEL_NAME.match(name) or (prefix and (
                len(prefix) > 253 or not _LABEL_PREFIX.match(prefix))):
            raise ValueError(f"{where}: invalid label name {key!r}")
        if not isinstance(value, str):
            raise ValueError(f"{where}: the value of label {key!r} must be a str")
        condition = value[1:] if value.startswith("!") else value
        if condition.startswith("in(") and condition.endswith(")"):
            values = [v.strip() for v in condition[3:-1].split(",")]
        else:
            values = [condition]
        for v in values:
            if (v == "" and len(values) > 1) or (v and not _LABEL_NAME.match(v)):
                raise ValueError(f"{where}: invalid value {value!r} of label {key!r}")


def _check_fallback_strategy(strategy) -> None:
    if not isinstance(strategy, list):
        raise TypeError(f"fallback_strategy must be a list of dicts, got {strategy!r}")
    for item in strategy:
        if not isinstance(item, dict):
            raise ValueError(f"fallback_strategy holds dicts, not {item!r}")
        unknown = set(item) - {"label_selector"}
        if unknown:
            raise ValueError(f"fallback_strategy: unsupported option(s) {sorted(unknown)}")
        check_label_selector(item.get("label_selector", {}), "fallback_strategy's "
                              "label_selector")


def _check_strategy(strategy) -> None:
    if strategy is None or strategy in ("DEFAULT", "SPREAD"):
        return
    if not isinstance(strategy, (NodeAffinitySchedulingStrategy, NodeLabelSchedulingStrategy,
                                 PlacementGroupSchedulingStrategy)):
        raise ValueError(
            f"Invalid scheduling_strategy {strategy!r}: use 'DEFAULT', 'SPREAD' or a strategy of "
            "ember.util.scheduling_strategies")


def max_calls_of(options: dict[str, Any]) -> int:
    """A task's max_calls: as given, else Ray's default (1 for a task that uses GPUs, so the
    memory a GPU library keeps goes back with its worker)."""
    if options["max_calls"] is not None:
        return options["max_calls"]
    return 1 if options["num_gpus"] else 0


def check_task_options(options: dict[str, Any]) -> dict[str, Any]:
    """Raises ValueError for an unknown, refused or malformed option; returns `options`."""
    _check_common(options, TASK_OPTIONS, "a remote function")
    _check_count(options, "max_calls", TASK_OPTIONS, infinite=False)
    if options.get("num_returns", 1) is None:
        options["num_returns"] = TASK_OPTIONS["num_returns"]
    _check_num_returns(options.get("num_returns", 1))
    _check_count(options, "max_retries", TASK_OPTIONS, infinite=True)
    _check_retry_exceptions(options)
    return options


def _check_retry_exceptions(options: dict[str, Any]) -> None:
    retry_on = options.get("retry_exceptions", False)
    if retry_on is not None and not isinstance(retry_on, bool) and not (
            isinstance(retry_on, list) and retry_on
            and all(isinstance(t, type) and issubclass(t, BaseException) for t in retry_on)):
        raise ValueError("retry_exceptions must be a bool or a non-empty list of exception "
                         f"classes, got {retry_on!r}")


def check_actor_options(options: dict[str, Any]) -> dict[str, Any]:
    """Raises ValueError for an unknown, refused or malformed option; returns `options`."""
    _check_common(options, ACTOR_OPTIONS, "an actor")
    if options.get("object_store_memory") is not None:
        warnings.warn("Setting 'object_store_memory' for actors is deprecated since it doesn't "
                      "actually reserve the required object store memory; ember does not "
                      "reserve it either (objects spill to disk when the store is full).",
                      DeprecationWarning, stacklevel=3)
    mc = options.get("max_concurrency")
    if mc is not None and (not isinstance(mc, int) or mc < 1):
        raise ValueError(f"max_concurrency must be an int >= 1, got {mc!r}")
    groups = options.get("concurrency_groups")
    if groups is not None:
        if not isinstance(groups, dict):
            raise ValueError("concurrency_groups must be a dict of group name to its "
                             f"max_concurrency, got {groups!r}")
        for name, size in groups.items():
            if not isinstance(name, str) or not isinstance(size, int) or size < 1:
                raise ValueError(f"concurrency group {name!r} must have a max_concurrency of "
                                 f"at least 1, got {size!r}")
    for key in ("max_restarts", "max_task_retries"):
        _check_count(options, key, ACTOR_OPTIONS, infinite=True)
    pending = options.get("max_pending_calls", -1)
    if not isinstance(pending, int) or isinstance(pending, bool) or pending == 0 or pending < -1:
        raise ValueError(f"max_pending_calls must be -1 (no limit) or an int >= 1, got "
                         f"{pending!r}")
    out_of_order = options.get("allow_out_of_order_execution")
    if out_of_order not in (None, True, False):
        raise ValueError(f"allow_out_of_order_execution must be a bool, got {out_of_order!r}")
    if options.get("lifetime") not in (None, "detached", "non_detached"):
        raise ValueError("lifetime must be 'detached' or 'non_detached'")
    _check_actor_name(options)
    return options


def _check_actor_name(options: dict[str, Any]) -> None:
    for key in ("name", "namespace"):
        v = options.get(key)
        if v is not None and not isinstance(v, str):
            raise TypeError(f"actor {key} must be a str, got {type(v).__name__}")
    if options.get("name") == "":
        raise ValueError("actor name must not be empty")
    if options.get("get_if_exists") and options.get("name") is None:
        raise ValueError("get_if_exists=True needs a name: it reuses the actor of that name")


def resource_request(options: dict[str, Any], default_cpus: float) -> dict[str, float]:
    """What a task or actor with these options asks of the node's resources."""
    request = dict(options["resources"] or {})
    request["CPU"] = default_cpus if options["num_cpus"] is None else options["num_cpus"]
    request["GPU"] = options["num_gpus"] or 0
    if options["memory"]:
        request["memory"] = options["memory"]
    if options["accelerator_type"] is not None:
        # As in Ray: a sliver of the resource the node declares for that accelerator.
        request[f"accelerator_type:{options['accelerator_type']}"] = 0.001
    return request


def refuse_unsupported(options: dict[str, Any], defaults: dict[str, Any], node_id: str,
                       who: str) -> None:
    """On submission to ember's node: raises ValueError for an option set (away from
    `defaults`, TASK_OPTIONS or ACTOR_OPTIONS) to what this node cannot do, naming it and why
    (a hard affinity to another node among them)."""
    for name, reason in _REFUSED.items():
        if name == "object_store_memory" and defaults is ACTOR_OPTIONS:
            continue  # deprecated for actors, and warned about (check_actor_options)
        if name in options and not _is_default(name, options[name], defaults):
            raise ValueError(f"option {name}={options[name]!r} of {who}: {reason}")
    _runtime_env.check(options.get("runtime_env"), who)
    strategy = options["scheduling_strategy"]
    if isinstance(strategy, NodeLabelSchedulingStrategy):
        raise ValueError(f"scheduling_strategy=NodeLabelSchedulingStrategy of {who}: {_LABELS}")
    if isinstance(strategy, NodeAffinitySchedulingStrategy) and not strategy.soft \
            and strategy.node_id != node_id:
        raise ValueError(
            f"{who} must run on node {strategy.node_id} (NodeAffinitySchedulingStrategy, "
            f"soft=False), but this node is {node_id}, the only one")


def remote_with_options(target, args=None, kwargs=None, **options):
    """Ray's older form of a call, kept by Ray as ``_remote``: ``f._remote(args=[...],
    kwargs={...}, **options)`` is ``f.options(**options).remote(*args, **kwargs)``, for remote
    functions, actor classes and actor methods alike."""
    chosen = target.options(**options) if options else target
    return chosen.remote(*(args or ()), **(kwargs or {}))
