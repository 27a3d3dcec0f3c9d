"""The public API: init, shutdown, remote, get, put, wait and the node's resources.

Each call goes to this process's backend (ember._backend): the ember node, or Ray after
``init(address=...)`` or under $EMBER_BACKEND=ray.
"""

from __future__ import annotations

import atexit
import threading
from typing import Any

from ember import _backend, _local, _node, _ray_backend
from ember._private import auto_init_hook
from ember.actor import ActorClass
from ember.object_ref import ObjectRef
from ember.remote_function import RemoteFunction

__all__ = [
    "available_resources",
    "cancel",
    "cluster_resources",
    "get",
    "get_gpu_ids",
    "init",
    "is_initialized",
    "nodes",
    "put",
    "remote",
    "shutdown",
    "timeline",
    "wait",
]

_LOCAL = _local.LocalBackend()
_RAY = _ray_backend.RayBackend()


class _StartsOnFirstUse(_backend.Backend):
    """The backend before init(), and after shutdown(): it finds the backend of the process
    and hands every call to it. In a worker that is the node (or Ray) the process was started
    by; in a driver, the calls Ray starts itself on (put, get, wait, a task's or an
    actor's .remote(), cancel, get_actor, kill, get_gpu_ids, get_runtime_context) run
    init() with its defaults, as Ray does. The others (resources, nodes, timeline, util.state)
    raise NotInitializedError, as they find no node."""

    def __init__(self):
        self._lock = threading.Lock()

    def _attached(self) -> _backend.Backend:
        """The backend this process already has: a worker's, or the one init() chose (in
        another thread); else the ember node's, which finds none."""
        if _backend.active is not self:
            return _backend.active
        if _ray_backend.in_ray_job() and _RAY.is_initialized():
            _backend.use(_RAY)  # a worker of Ray's
        elif _node.is_running():
            _backend.use(_LOCAL)  # a worker of the ember node
        else:
            return _LOCAL
        return _backend.active

    def _started(self) -> _backend.Backend:
        backend = self._attached()
        if backend is _LOCAL and not _node.is_running() and auto_init_hook.enable_auto_connect:
            with self._lock:  # two threads' first calls start one node
                if _backend.active is self:
                    init()
            backend = _backend.active
        return backend

    def init(self, address, **options):
        raise AssertionError("init() chooses a backend of its own")

    def shutdown(self) -> None:
        pass  # nothing started

    def is_initialized(self) -> bool:
        return self._attached().is_initialized()

    def put(self, value):
        return self._started().put(value)

    def get(self, object_refs, timeout):
        return self._started().get(object_refs, timeout)

    def wait(self, object_refs, num_returns, timeout, fetch_local):
        return self._started().wait(object_refs, num_returns, timeout, fetch_local)

    def submit_task(self, function, args, kwargs):
        return self._started().submit_task(function, args, kwargs)

    def create_actor(self, actor_class, args, kwargs):
        return self._started().create_actor(actor_class, args, kwargs)

    def cancel(self, object_ref, force, recursive):
        return self._started().cancel(object_ref, force, recursive)

    def get_actor(self, name, namespace):
        return self._started().get_actor(name, namespace)

    def kill(self, actor, no_restart):
        return self._started().kill(actor, no_restart)

    def exit_actor(self):
        return self._attached().exit_actor()

    def get_gpu_ids(self):
        return self._started().get_gpu_ids()

    def runtime_context(self):
        return self._started().runtime_context()

    def cluster_resources(self):
        return self._attached().cluster_resources()

    def available_resources(self):
        return self._attached().available_resources()

    def nodes(self):
        return self._attached().nodes()

    def timeline(self, filename):
        return self._attached().timeline(filename)

    def list_objects(self):
        return self._attached().list_objects()

    def list_actors(self):
        return self._attached().list_actors()

    def list_tasks(self):
        return self._attached().list_tasks()


_backend.install_default(_StartsOnFirstUse())


def init(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    resources: dict[str, float] | None = None,
    object_store_memory: int | None = None,
    log_to_driver: bool | None = None,
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
        log_to_driver: print the workers' output here, prefixed ``(task pid=N)``; by default
            yes, unless $EMBER_LOG_TO_DRIVER (or Ray's $RAY_LOG_TO_DRIVER) is other than 1 or
            true.
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
            does not fit), and ``actor_graceful_shutdown_timeout_ms``: how long an actor
            no handle refers to has to run its ``__ray_shutdown__`` and atexit handlers
            before it is killed (default 30000, as in Ray; 0: killed at once), and
            ``task_retry_delay_ms``: how long a task or actor call that crashed or raised
            waits before it runs again (default 0, as in Ray). Any other key is a
            ValueError: ember's node has no such setting.
        namespace: where named actors are made and found unless a call names another
            (default "default"), as in Ray.
        logging_level, logging_format, configure_logging: as in Ray, for ember's logger
            ("ember").
        Ray's other options (``runtime_env``, ``job_config``, ``labels``, ``local_mode``, its
        private ones, ...) raise ValueError, naming the option and why ember's node cannot
        honour it, unless left at Ray's default; a keyword Ray does not take either is a
        RuntimeError, as in Ray. Under the Ray backend all of them go to ray.init().
    """
    backend = _RAY if _ray_backend.requested(address) or _backend.active is _RAY else _LOCAL
    info = backend.init(
        address, num_cpus=num_cpus, num_gpus=num_gpus, resources=resources,
        object_store_memory=object_store_memory, log_to_driver=log_to_driver,
        ignore_reinit_error=ignore_reinit_error, memory_usage_threshold=memory_usage_threshold,
        include_dashboard=include_dashboard, dashboard_host=dashboard_host,
        dashboard_port=dashboard_port, _memory_limit=_memory_limit, _temp_dir=_temp_dir,
        **_ray_options)
    _backend.use(backend)
    return info


def shutdown() -> None:
    """Stops the node and every process it started. Safe to call when it is not running."""
    _backend.active.shutdown()
    _backend.reset()


def is_initialized() -> bool:
    """True between init() and shutdown()."""
    return _backend.active.is_initialized()


def remote(*args, **options):
    """``@ember.remote`` / ``@ember.remote(num_cpus=..., ...)`` on a function (a task) or a
    class (an actor)."""

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
    if not options:  # as in Ray: `@remote()` is a mistake for `@remote`
        raise TypeError("@ember.remote is used without parentheses, or with options: "
                        "@ember.remote or @ember.remote(num_cpus=2, ...), not @ember.remote()")
    return make


def put(value: Any) -> ObjectRef:
    """Stores `value` in the node's object store and returns an ObjectRef to it.

    Large buffers (numpy arrays, bytes) are copied once into shared memory; ``get`` returns
    them as zero-copy read-only views.
    """
    return _backend.active.put(value)


def get(object_refs: ObjectRef | list[ObjectRef], *, timeout: float | None = None) -> Any:
    """Returns the object(s) behind one ObjectRef or a list of them, waiting for tasks to
    finish. numpy arrays come back as read-only views on the shared segment (no copy); each
    view keeps its object alive.

    Raises GetTimeoutError after `timeout` seconds, and a task's exception (as an instance of
    both TaskError and the exception's own class) if the task failed.
    """
    return _backend.active.get(object_refs, timeout)


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
    return _backend.active.wait(object_refs, num_returns, timeout, fetch_local)


def cancel(object_ref: ObjectRef, *, force: bool = False, recursive: bool = True) -> None:
    """Cancels the task that returns `object_ref`: a queued task never runs; a running one gets
    KeyboardInterrupt (or, with force=True, its worker is killed). ``get`` then raises
    TaskCancelledError. With recursive=True (the default, as in Ray) the tasks it submitted,
    and theirs, are cancelled too. Cancelling a finished task does nothing."""
    return _backend.active.cancel(object_ref, force, recursive)


def cluster_resources() -> dict[str, float]:
    """The node's total resources."""
    return _backend.active.cluster_resources()


def available_resources() -> dict[str, float]:
    """The node's resources not held by running tasks (driver only)."""
    return _backend.active.available_resources()


def timeline(filename: str | None = None) -> list[dict] | None:
    """Every finished task and actor call (the last 200,000) as Chrome trace events, one row
    per worker process, as Ray's ``ray.timeline()``: returned as a list, or written as JSON to
    `filename` (open it in chrome://tracing or https://ui.perfetto.dev). Driver only."""
    return _backend.active.timeline(filename)


def get_gpu_ids() -> list[int]:
    """The GPU ids given to the calling task or actor (its CUDA_VISIBLE_DEVICES); [] in the
    driver and in tasks without GPUs."""
    return _backend.active.get_gpu_ids()


def nodes() -> list[dict]:
    """The cluster's nodes, as Ray lists them: here, this one machine."""
    return _backend.active.nodes()


atexit.register(shutdown)
