"""The node: ember's one piece of process-global state.

A Node is the runtime on this machine as seen from this process: in the driver it owns the
object store (and, later, the scheduler and the workers). Everything in ember that needs the
runtime reaches it through :func:`current`, never through module globals of its own.
"""

from __future__ import annotations

import contextvars
import dataclasses
import gc
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field

from ember import _core, _names, _runtime_env, _session
from ember._ids import JobID, NodeID
from ember.exceptions import NotInitializedError

#: Share of the available memory the store takes by default (Ray's default too).
DEFAULT_STORE_FRACTION = 0.3


@dataclass(frozen=True)
class NodeInfo:
    """What ``ember.init()`` returns: a description of the node that was started."""

    node_id: str
    num_cpus: int
    num_gpus: int
    resources: dict
    object_store_memory: int
    session_dir: str
    pid: int = field(default_factory=os.getpid)
    dashboard_url: str | None = None

    def __getitem__(self, key: str):  # Ray's init() result is also read like a dict
        return getattr(self, key)

    def with_dashboard(self, url: str) -> NodeInfo:
        return dataclasses.replace(self, dashboard_url=url)

    @property
    def address_info(self) -> dict:
        return {"node_id": self.node_id, "session_dir": self.session_dir}


def memory_limit() -> int:
    """Bytes this process may still use: the machine's memory, or its cgroup's if lower, minus
    what is in use (the same reading as the core's memory monitor)."""
    capacity, used = _core.memory_snapshot()
    return max(0, capacity - used)


def idle_trim_seconds() -> float:
    """How long the store must go without allocations before the driver gives its free pages
    back to the kernel: 10 s, like jemalloc's decay, because a put into given-back memory
    pays its page faults again (200 MB: ~60 ms instead of ~15 ms here);
    $EMBER_IDLE_TRIM_SECONDS changes it (0: never)."""
    return float(os.environ.get("EMBER_IDLE_TRIM_SECONDS", "10"))


#: How a worker learns its job's namespace and its actors' default lifetime (JobConfig's),
#: set in the forkserver's environment.
_NAMESPACE_ENV = "EMBER_NAMESPACE"
_LIFETIME_ENV = "EMBER_DEFAULT_ACTOR_LIFETIME"
_RETRY_DELAY_ENV = "EMBER_TASK_RETRY_DELAY_MS"

#: Resource names in the order of the C++ core's resource slots (CPU, GPU, then custom).
BUILTIN_RESOURCES = ("CPU", "GPU")


class Node:
    """The runtime of one machine as seen from this process: in the driver, the node it
    started (store, scheduler, forkserver, log printer); in a worker, the node it attached to.
    """

    def __init__(self, store: _core.Store, resources: dict[str, float], is_driver: bool):
        self.store = store  # the node's shared segment
        self.resources = resources  # name -> total, in the C++ core's slot order
        self.is_driver = is_driver  # True in the process that created the node
        self.scheduler: _core.Scheduler | None = None  # driver only
        self.worker: _core.Worker | None = None  # worker only
        self.forkserver: subprocess.Popen | None = None  # driver only
        self._forkserver_pipe: int | None = None  # write end; closing it stops the forkserver
        self.log_printer = None  # driver only, with log_to_driver
        self.unhandled_reporter = None  # driver only (ember._unhandled)
        self.dashboard = None  # driver only, with include_dashboard
        self.session_dir = ""
        self.log_dir = ""
        self.spill_dir = ""  # driver only: removed at shutdown
        self.info: NodeInfo | None = None
        self.actor_state = None  # in an actor's process: its _ActorState
        self.actor_id: int | None = None  # in an actor's process: its id
        self.actor_name: str | None = None  # ... the name it was created with
        self.actor_reconstructed = False  # ... True after a restart
        self.actor_resources: list[int] | None = None  # ... what it holds (explicit ones)
        self.worker_state = None  # in a worker: its _WorkerState (the functions it loaded)
        self.gpu_ids: list[int] = []  # in a worker: the GPUs of its task (or actor)
        # In a worker: (placement group id, bundle index, captures child tasks) of the running
        # task, or of the actor (ember._placement); None when it is not placed in a group.
        self.placement: tuple[int, int, bool] | None = None
        # Where named actors are made and looked up unless a call names another: init()'s
        # namespace, which workers inherit through the forkserver's environment.
        self.namespace = os.environ.get(_NAMESPACE_ENV, "default")
        # An actor's lifetime when its options say none (JobConfig.default_actor_lifetime).
        self.default_actor_lifetime = os.environ.get(_LIFETIME_ENV, "non_detached")
        # The job's runtime_env (init(runtime_env=)); each worker puts it on when it starts.
        self.runtime_env = _runtime_env.job_env()
        # How long a task or actor call waits before it runs again after an exception
        # (_system_config's task_retry_delay_ms; the scheduler waits as long after a crash).
        self.task_retry_delay_s = int(os.environ.get(_RETRY_DELAY_ENV, "0")) / 1000

    @property
    def node_id(self) -> str:
        """The node's id as Ray writes one (the hex of a NodeID); the same in every process."""
        return NodeID.from_int(self.store.node_tag).hex()

    @property
    def job_id(self) -> JobID:
        """The node's one job (Ray's ids of objects, tasks and groups end with their job's)."""
        return JobID.from_int(self.store.node_tag & 0xFFFFFFFF)

    @property
    def num_cpus(self) -> int:
        return int(self.resources.get("CPU", 0))

    def resource_vector(self, request: dict[str, float], who: str = "task") -> list[int]:
        """A resource request as the core's fixed-point vector; unknown names raise."""
        names = list(self.resources)
        vec = [0] * _core.MAX_RESOURCES
        for name, amount in request.items():
            if amount is None or amount == 0:
                continue
            if name not in self.resources:
                raise ValueError(
                    f"{who} needs {amount} of resource {name!r}, which this node does not have "
                    f"(it has {', '.join(names)}); declare it with ember.init(resources=...)")
            vec[names.index(name)] = round(amount * _core.RESOURCE_UNIT)
        return vec

    # --- driver ---------------------------------------------------------------------

    def start_runtime(self, max_workers: int, task_capacity: int, memory_threshold: float,
                      memory_limit: int, *, actor_graceful_shutdown_ms: int = 30000,
                      task_retry_delay_ms: int = 0) -> None:
        """Starts the scheduler and the forkserver (driver). The log printer and the dashboard
        are the caller's to start (ember._local): they read the node, the node needs neither.
        """
        self.log_dir = os.path.join(self.session_dir, "logs")  # made by _session, 0700
        totals = [round(v * _core.RESOURCE_UNIT) for v in self.resources.values()]
        # Ray's name for it is RAY_task_oom_retry_delay_base_ms.
        oom_retry_delay_ms = int(os.environ.get("EMBER_TASK_OOM_RETRY_DELAY_BASE_MS", "1000"))
        self.scheduler = _core.Scheduler(self.store, _core.SchedulerConfig(
            totals=totals, names=list(self.resources), num_cpus=self.num_cpus,
            max_workers=max_workers, task_capacity=task_capacity, log_dir=self.log_dir,
            memory_threshold=memory_threshold, memory_limit=memory_limit,
            oom_retry_delay_ms=oom_retry_delay_ms,
            actor_graceful_shutdown_ms=actor_graceful_shutdown_ms,
            task_retry_delay_ms=task_retry_delay_ms))
        self.task_retry_delay_s = task_retry_delay_ms / 1000
        self.scheduler.start()
        self._start_forkserver()
        self.info = NodeInfo(
            node_id=self.node_id,
            num_cpus=self.num_cpus,
            num_gpus=int(self.resources.get("GPU", 0)),
            resources=dict(self.resources),
            object_store_memory=self.store.stats()["capacity"],
            session_dir=self.session_dir,
        )

    # --- what the node has -----------------------------------------------------------------

    def cluster_resources(self) -> dict[str, float]:
        """The node's total resources."""
        return {k: float(v) for k, v in self.resources.items() if v}

    def available_resources(self) -> dict[str, float]:
        """The node's resources not held by running tasks (in a worker: as of the scheduler's
        last round)."""
        if self.scheduler is None:
            return _core.runtime_available(self.store)
        available = self.scheduler.stats()["available"]
        return {name: available[i] / _core.RESOURCE_UNIT
                for i, name in enumerate(self.resources)
                if available[i] > 0}  # Ray leaves out what is all taken

    def timeline(self) -> list[dict]:
        """Every finished task and actor call (the last 200,000) as Chrome trace events, one
        row per worker process (driver only)."""
        if self.scheduler is None:
            raise RuntimeError("ember.timeline() can only be called from the driver")
        raw = self.scheduler.task_events()
        origin = min((event[2] for event in raw), default=0)
        return [
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
            for name, pid, started, finished, *_ in raw
        ]

    def _start_forkserver(self) -> None:
        read_end, write_end = os.pipe()
        env = dict(os.environ)
        env["EMBER_SYS_PATH"] = os.pathsep.join(p for p in sys.path if p)
        env[_NAMESPACE_ENV] = self.namespace
        env[_LIFETIME_ENV] = self.default_actor_lifetime
        env[_RETRY_DELAY_ENV] = str(round(self.task_retry_delay_s * 1000))
        env[_runtime_env.JOB_ENV] = _runtime_env.to_environ(self.runtime_env)
        if _names.as_ray():  # workers name things as the driver does
            env[_names.AS_RAY_ENV] = "1"
        self.forkserver = subprocess.Popen(
            [sys.executable, "-m", "ember._forkserver", str(self.store.fd), str(read_end),
             self.log_dir, self.spill_dir],
            pass_fds=(self.store.fd, read_end),
            env=env,
            start_new_session=True,  # Ctrl-C in the terminal reaches the driver only
            stdin=subprocess.DEVNULL,
        )
        os.close(read_end)
        os.set_inheritable(write_end, False)
        self._forkserver_pipe = write_end

    def shutdown(self) -> None:
        """Stops the node: the scheduler, every worker, the forkserver, the log printer, then
        the store. Views still alive keep the mapping until they die; ObjectRefs hold nothing.
        """
        if self.dashboard is not None:
            self.dashboard.stop()
            self.dashboard = None
        if self.scheduler is not None:
            self.scheduler.stop()  # workers see shutting_down and leave their loops
        if self.forkserver is not None:
            os.close(self._forkserver_pipe)  # EOF: the forkserver kills what is left and exits
            try:
                self.forkserver.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.forkserver.kill()
                self.forkserver.wait()
            self.forkserver = None
        if self.log_printer is not None:
            self.log_printer.stop()
            self.log_printer = None
        self.store.close()
        if self.unhandled_reporter is not None:
            self.unhandled_reporter.stop()  # close() woke it
            self.unhandled_reporter = None
        if self.spill_dir:  # spill files die with the node; logs stay for the user
            shutil.rmtree(self.spill_dir, ignore_errors=True)
        # Drop the C++ objects: the segment is unmapped when the last holder goes, and a Node
        # kept alive by someone (a fixture, a closure) must not keep it mapped.
        self.scheduler = None
        self.worker = None
        self.store = None


_lock = threading.Lock()
_current: Node | None = None

#: In a worker: the call this thread (or asyncio task) runs, as (task name, task id, index
#: of its record, the function's id or the actor's bound method); None elsewhere.
current_call: contextvars.ContextVar[tuple | None] = contextvars.ContextVar(
    "ember_current_call", default=None)


def current() -> Node:
    """The running node; raises NotInitializedError when there is none."""
    node = _current
    if node is None:
        raise NotInitializedError("ember is not initialized: call ember.init() first")
    return node


def is_running() -> bool:
    return _current is not None


def start(resources: dict[str, float], object_store_memory: int, *, max_workers: int = 256,
          task_capacity: int = 8192, memory_threshold: float = 0.95, memory_limit: int = 0,
          spilling_threshold: float = 0.8, temp_dir: str | None = None,
          namespace: str = "default", default_actor_lifetime: str | None = None,
          runtime_env: dict | None = None, actor_graceful_shutdown_ms: int = 30000,
          task_retry_delay_ms: int = 0) -> Node:
    """Creates the node (driver only); its session directory goes under `temp_dir`
    (default: ember._session.default_root()). An actor no handle refers to has
    `actor_graceful_shutdown_ms` to end itself (its __ray_shutdown__, atexit) before it is
    killed; a task or call runs again `task_retry_delay_ms` after it failed."""
    global _current
    with _lock:
        if _current is not None:
            raise RuntimeError(
                "Maybe you called ember.init twice by accident? This error can be suppressed "
                "by passing in 'ignore_reinit_error=True' or by calling 'ember.shutdown()' "
                "prior to 'ember.init()'."
            )
        session_dir = _session.new_session_dir(temp_dir)
        spill_dir = os.path.join(session_dir, "spill")
        store = _core.Store.create(_core.StoreOptions(
            capacity=object_store_memory,
            runtime_bytes=_core.runtime_bytes(max_workers, task_capacity),
            ledger_clients=max_workers + 1, spill_dir=spill_dir,
            spill_high_water=spilling_threshold, idle_trim_s=idle_trim_seconds()))
        node = Node(store, resources, is_driver=True)
        node.namespace = namespace
        node.default_actor_lifetime = default_actor_lifetime or "non_detached"
        node.runtime_env = runtime_env or {}
        node.session_dir = session_dir
        node.spill_dir = spill_dir
        try:
            node.start_runtime(max_workers, task_capacity, memory_threshold, memory_limit,
                               actor_graceful_shutdown_ms=actor_graceful_shutdown_ms,
                               task_retry_delay_ms=task_retry_delay_ms)
        except BaseException:
            node.shutdown()
            raise
        _current = node
        return node


def connect(segment_fd: int, worker_slot: int | None = None) -> Node:
    """Attaches this process to the node whose segment fd it inherited (workers, tests)."""
    global _current
    with _lock:
        if _current is not None:
            raise RuntimeError("this process is already part of an ember node")
        store = _core.Store.attach(segment_fd)
        node = Node(store, _core.runtime_resources(store), is_driver=False)
        if worker_slot is not None:
            node.worker = _core.Worker(store, worker_slot)
        _current = node
        return node


def stop() -> None:
    global _current
    with _lock:
        node, _current = _current, None
    if node is not None:
        node.shutdown()
        # Tracebacks of exceptions raised through ember's frames hold the store in reference
        # cycles; collect them so the segment is unmapped now, not at some later collection.
        gc.collect()
