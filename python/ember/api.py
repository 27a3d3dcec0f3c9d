"""The public API: init, shutdown, remote, get, put, wait and the node's resources."""

from __future__ import annotations

import atexit
import os
import sys
from typing import Any

from ember import _core, _node
from ember import _ray_backend as _ray
from ember.exceptions import GetTimeoutError, _BadArgument
from ember.object_ref import ObjectRef
from ember.serialization import deserialize, serialize

__all__ = [
    "available_resources",
    "cancel",
    "cluster_resources",
    "get",
    "init",
    "is_initialized",
    "put",
    "remote",
    "shutdown",
    "wait",
]


def init(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    resources: dict[str, float] | None = None,
    object_store_memory: int | None = None,
    log_to_driver: bool = True,
    ignore_reinit_error: bool = False,
    memory_usage_threshold: float | None = None,
    include_dashboard: bool | None = None,
    dashboard_host: str = "127.0.0.1",
    dashboard_port: int | None = None,
    _memory_limit: int | None = None,
    _temp_dir: str | None = None,
    **_ray_options: Any,
) -> _node.NodeInfo:
    """Starts the node on this machine and returns a description of it.

    Args:
        address: None, "local" or "auto": ember runs the node in this process. Any other
            address (e.g. "ray://head:10001"), or $EMBER_BACKEND=ray, runs the program on Ray
            instead: ray.init() gets the arguments (and Ray's own, e.g. namespace), and every
            ember call goes to Ray (see ember._ray_backend).
        num_cpus: CPUs the node may use (default: the machine's logical CPUs).
        num_gpus: GPUs the node may hand out (default 0).
        resources: custom resources, e.g. ``{"accelerator": 2}``.
        object_store_memory: bytes of shared memory for objects (default: 30% of the
            available memory, as in Ray).
        log_to_driver: print the workers' output here, prefixed ``(task pid=N)``.
        ignore_reinit_error: return the running node instead of raising if already started.
        memory_usage_threshold: when this fraction of the machine's (or cgroup's) memory is
            in use, the memory monitor kills the worker of the task holding the most memory
            (the newest retriable one among near-equals); the task is retried after a backoff
            of 1 s, doubling ($EMBER_TASK_OOM_RETRY_DELAY_BASE_MS), or fails with
            OutOfMemoryError (default 0.95, or $EMBER_MEMORY_USAGE_THRESHOLD; 0: no monitor).
        include_dashboard: serve the dashboard (ember.dashboard) from this process, at
            http://127.0.0.1:8265 or a free port, behind a token of this session: the URL
            with the token is printed once and is ``init(...).dashboard_url``. Off by
            default ($EMBER_DASHBOARD=1 turns it on): it costs ~30 ms of start-up.
        dashboard_host, dashboard_port: where it listens (any host but a loopback address
            warns: other machines can reach it then).
        _memory_limit: bytes the monitor treats as all the memory there is (tests;
            or $EMBER_MEMORY_LIMIT).
        _temp_dir: the directory that holds this user's session directories (logs, spill
            files), as in Ray (default: $EMBER_TMPDIR, else /tmp/ember-<uid>). It must belong
            to the user and be writable by nobody else; session directories are 0700.
        _system_config: as in Ray; ember reads ``object_spilling_threshold``: above this
            fraction of the store, a background thread spills least recently used objects
            (default 0.8, or $EMBER_OBJECT_SPILLING_THRESHOLD; 1: spill only when a put
            does not fit). Other keys are ignored.
    """
    if _ray.requested(address) or _ray.active():
        return _ray.init(address, num_cpus=num_cpus, num_gpus=num_gpus, resources=resources,
                         object_store_memory=object_store_memory, log_to_driver=log_to_driver,
                         ignore_reinit_error=ignore_reinit_error,
                         include_dashboard=include_dashboard, dashboard_port=dashboard_port,
                         _temp_dir=_temp_dir, **_ray_options)
    if _node.is_running():
        if ignore_reinit_error:
            return _node.current().info
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
        if not isinstance(amount, (int, float)) or amount < 0:
            raise ValueError(f"resource {name!r} must be a non-negative number, got {amount!r}")
    if len(custom) + 2 > _core.MAX_RESOURCES:
        raise ValueError(f"at most {_core.MAX_RESOURCES - 2} custom resources are supported")
    if object_store_memory is None:
        object_store_memory = int(_node.memory_limit() * _node.DEFAULT_STORE_FRACTION)
    elif not isinstance(object_store_memory, int) or object_store_memory < (1 << 20):
        raise ValueError(
            f"object_store_memory must be an int of at least 1 MiB, got {object_store_memory!r}"
        )
    if memory_usage_threshold is None:
        memory_usage_threshold = float(os.environ.get("EMBER_MEMORY_USAGE_THRESHOLD", 0.95))
    if not 0 <= memory_usage_threshold <= 1:
        raise ValueError(
            f"memory_usage_threshold must be between 0 and 1, got {memory_usage_threshold!r}")
    if _memory_limit is None:
        _memory_limit = int(os.environ.get("EMBER_MEMORY_LIMIT", 0))
    system_config = dict(_ray_options.get("_system_config") or {})
    spilling = system_config.get(
        "object_spilling_threshold", float(os.environ.get("EMBER_OBJECT_SPILLING_THRESHOLD", 0.8)))
    if not isinstance(spilling, (int, float)) or not 0 < spilling <= 1:
        raise ValueError(f"object_spilling_threshold must be in (0, 1], got {spilling!r}")
    if include_dashboard is None:
        include_dashboard = os.environ.get("EMBER_DASHBOARD", "0") not in ("", "0")
    dashboard = None
    if include_dashboard:
        from ember.dashboard import DEFAULT_PORT  # noqa: PLC0415

        dashboard = (dashboard_host, DEFAULT_PORT if dashboard_port is None else dashboard_port)
    totals = {"CPU": num_cpus, "GPU": num_gpus, **custom}
    info = _node.start(totals, object_store_memory, log_to_driver=log_to_driver,
                       memory_threshold=memory_usage_threshold, memory_limit=_memory_limit,
                       spilling_threshold=float(spilling), dashboard=dashboard,
                       temp_dir=_temp_dir).info
    if info.dashboard_url is not None:  # once, here: the token is in it (as Jupyter prints)
        print(f"ember: the dashboard is at {info.dashboard_url}", file=sys.stderr, flush=True)
    return info


def shutdown() -> None:
    """Stops the node and every process it started. Safe to call when it is not running."""
    if _ray.active():
        _ray.shutdown()
        return
    _node.stop()


def is_initialized() -> bool:
    """True between init() and shutdown()."""
    if _ray.active():
        return _ray.module().is_initialized()
    return _node.is_running() and _node.current().is_driver


def remote(*args, **options):
    """``@ember.remote`` / ``@ember.remote(num_cpus=..., ...)`` on a function (a task) or a
    class (an actor)."""
    from ember.actor import ActorClass  # noqa: PLC0415
    from ember.remote_function import RemoteFunction  # noqa: PLC0415

    def make(target):
        if isinstance(target, type):
            return ActorClass(target, options)
        if not callable(target):
            raise TypeError(f"@ember.remote needs a function or a class, got {target!r}")
        return RemoteFunction(target, options)

    if len(args) == 1 and not options and callable(args[0]):
        return make(args[0])
    if args:
        raise TypeError("@ember.remote takes keyword options only, e.g. @ember.remote(num_cpus=2)")
    return make


def put(value: Any) -> ObjectRef:
    """Stores `value` in the node's object store and returns an ObjectRef to it.

    Large buffers (numpy arrays, bytes) are copied once into shared memory; ``get`` returns
    them as zero-copy read-only views.
    """
    if _ray.active():
        return _ray.module().put(value)
    store = _node.current().store
    if isinstance(value, ObjectRef):
        raise _BadArgument(
            "Calling 'put' on an ObjectRef is not allowed. If you really want to do this, you "
            "can wrap the ObjectRef in a list and call 'put' on it."
        )
    return store.put(*serialize(value))


def _raise_first_failure(parts: list) -> None:
    """Raises the failure stored in the first fetched object that is one (kFlagError)."""
    for p in parts:
        if p is not None and p[2] & _core.FLAG_ERROR:
            deserialize(*p)


def get(object_refs: ObjectRef | list[ObjectRef], *, timeout: float | None = None) -> Any:
    """Returns the object(s) behind one ObjectRef or a list of them, waiting for tasks to
    finish. numpy arrays come back as read-only views on the shared segment (no copy); each
    view keeps its object alive.

    Raises GetTimeoutError after `timeout` seconds, and a task's exception (as an instance of
    both TaskError and the exception's own class) if the task failed.
    """
    if _ray.active():
        return _ray.get(object_refs, timeout)
    node = _node.current()
    single = isinstance(object_refs, ObjectRef)
    refs = [object_refs] if single else object_refs
    if not isinstance(refs, list):
        raise _BadArgument(
            "ember.get() takes an ObjectRef or a list of ObjectRefs, not a "
            f"{type(object_refs).__name__}"
        )
    for i, ref in enumerate(refs):
        if not isinstance(ref, ObjectRef):
            raise _BadArgument(
                f"ember.get() takes an ObjectRef or a list of ObjectRefs; item {i} of the "
                f"list is a {type(ref).__name__}"
            )
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be None or >= 0, got {timeout}")
    parts = node.store.get_many(refs, timeout, node.worker)
    _raise_first_failure(parts)  # as Ray: a failure is raised without waiting for the rest
    missing = sum(p is None for p in parts)
    if missing:
        raise GetTimeoutError(
            f"Get timed out: {missing} of {len(refs)} object(s) not ready after {timeout} s")
    values = [deserialize(*p) for p in parts]
    return values[0] if single else values


def wait(
    object_refs: list[ObjectRef],
    *,
    num_returns: int = 1,
    timeout: float | None = None,
    fetch_local: bool = True,
) -> tuple[list[ObjectRef], list[ObjectRef]]:
    """Waits until `num_returns` of the refs are ready or `timeout` seconds pass.

    Returns (ready, not_ready), each in the order of `object_refs`, as Ray does.
    """
    if _ray.active():
        return _ray.module().wait(object_refs, num_returns=num_returns, timeout=timeout,
                                  fetch_local=fetch_local)
    del fetch_local  # one node: every object is local
    node = _node.current()
    if isinstance(object_refs, ObjectRef) or not isinstance(object_refs, list):
        raise _BadArgument(
            f"wait() expected a list of ObjectRefs, got {type(object_refs).__name__}")
    for i, ref in enumerate(object_refs):
        if not isinstance(ref, ObjectRef):
            raise _BadArgument(f"wait() expected a list of ObjectRefs; item {i} is a "
                               f"{type(ref).__name__}")
    if not object_refs:
        return [], []  # as Ray: whatever num_returns asks for
    if len(set(object_refs)) != len(object_refs):
        raise ValueError("Wait requires a list of unique object refs.")
    if not isinstance(num_returns, int) or num_returns < 0:
        raise ValueError(f"num_returns must be a non-negative int, got {num_returns!r}")
    if num_returns > len(object_refs):
        raise ValueError("num_returns cannot be greater than the number of objects provided.")
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be None or >= 0, got {timeout}")
    ready = node.store.wait(object_refs, num_returns, timeout, node.worker)
    done, pending = [], []
    for ref, ok in zip(object_refs, ready):
        (done if ok and len(done) < num_returns else pending).append(ref)
    return done, pending


def cancel(object_ref: ObjectRef, *, force: bool = False, recursive: bool = True) -> None:
    """Cancels the task that returns `object_ref`: a queued task never runs; a running one gets
    KeyboardInterrupt (or, with force=True, its worker is killed). ``get`` then raises
    TaskCancelledError. With recursive=True (the default, as in Ray) the tasks it submitted,
    and theirs, are cancelled too. Cancelling a finished task does nothing."""
    if _ray.active():
        return _ray.module().cancel(object_ref, force=force, recursive=recursive)
    if not isinstance(object_ref, ObjectRef):
        raise _BadArgument(f"cancel() takes an ObjectRef, not a {type(object_ref).__name__}")
    node = _node.current()
    if node.scheduler is None:
        raise RuntimeError("ember.cancel() can only be called from the driver for now")
    node.scheduler.cancel(object_ref, force, recursive)


def cluster_resources() -> dict[str, float]:
    """The node's total resources."""
    if _ray.active():
        return _ray.module().cluster_resources()
    node = _node.current()
    return {k: float(v) for k, v in node.resources.items() if v}


def available_resources() -> dict[str, float]:
    """The node's resources not held by running tasks (driver only)."""
    if _ray.active():
        return _ray.module().available_resources()
    node = _node.current()
    if node.scheduler is None:
        return cluster_resources()
    available = node.scheduler.stats()["available"]
    out = {}
    for i, name in enumerate(node.resources):
        if available[i] > 0:  # Ray leaves out what is all taken
            out[name] = available[i] / _core.RESOURCE_UNIT
    return out



atexit.register(shutdown)


def timeline(filename: str | None = None) -> list[dict] | None:
    """Every finished task and actor call (the last 200,000) as Chrome trace events, one row
    per worker process, as Ray's ``ray.timeline()``: returned as a list, or written as JSON to
    `filename` (open it in chrome://tracing or https://ui.perfetto.dev). Driver only."""
    if _ray.active():
        return _ray.module().timeline(filename=filename)
    node = _node.current()
    if node.scheduler is None:
        raise RuntimeError("ember.timeline() can only be called from the driver")
    raw = node.scheduler.task_events()
    origin = min((started for _, _, started, _ in raw), default=0)
    events = [
        {
            "cat": "task",
            "name": name,
            "pid": "ember node",
            "tid": f"worker {pid}",
            "ts": (started - origin) / 1e3,  # microseconds
            "dur": max(0, finished - started) / 1e3,
            "ph": "X",
            "args": {"worker_pid": pid},
        }
        for name, pid, started, finished in raw
    ]
    if filename is None:
        return events
    import json  # noqa: PLC0415 (rarely needed: keep it off import time)

    with open(filename, "w") as f:
        json.dump(events, f)
    return None


def get_gpu_ids() -> list[int]:
    """The GPU ids given to the calling task or actor (its CUDA_VISIBLE_DEVICES); [] in the
    driver and in tasks without GPUs."""
    if _ray.active():
        return _ray.module().get_gpu_ids()
    return list(_node.current().gpu_ids)


def nodes() -> list[dict]:
    """The cluster's nodes, as Ray lists them: here, this one machine."""
    if _ray.active():
        return _ray.module().nodes()
    node = _node.current()
    return [{
        "NodeID": f"{node.store.node_tag:016x}",
        "Alive": True,
        "NodeManagerAddress": "127.0.0.1",
        "NodeManagerHostname": os.uname().nodename,
        "Resources": cluster_resources(),
        "alive": True,
    }]
