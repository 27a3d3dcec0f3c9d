"""The joblib backend (``EmberBackend``, also under Ray's name ``RayBackend``): joblib's
multiprocessing backend with ember's Pool in place of its process pool.

joblib batches its calls (AutoBatchingMixin) and hands each batch to ``Pool.apply_async``;
the Pool's processes are ember actors, which ``ray_remote_args`` configure (resources, ...).
``n_jobs=-1`` means every CPU of the node, ``-2`` all but one, as in joblib.

Parallel calls without ``ray_remote_args`` share one pool, kept for the next call until it
has been idle for five minutes, as loky keeps its workers: a new pool per call costs its
actors' start and, in each, joblib's import (~40 ms of a call that may take 50). Such actors
hold no resources while they wait (an actor's CPU is only for its placement), so keeping them
takes nothing from other tasks; actors that ``ray_remote_args`` give resources to would, so
those pools are made per call and end with it.
"""

from __future__ import annotations

import threading

from joblib._parallel_backends import (
    FallbackToBackend,
    MultiprocessingBackend,
    SequentialBackend,
)

from ember import api
from ember.runtime_context import get_runtime_context
from ember.util.multiprocessing import Pool

__all__ = ["EmberBackend", "RayBackend"]

IDLE_SECONDS = 300.0  # how long the shared pool outlives its last Parallel call (loky's)


class _SharedPool:
    """The pool that Parallel calls without ``ray_remote_args`` share (module docstring).

    Invariants: ``pool`` runs on the node ``node_id`` names, with ``processes`` actors;
    ``users`` counts the calls between take() and give_back(); the idle timer runs only
    while ``users`` is 0, and ends the pool when it fires."""

    def __init__(self):
        self._lock = threading.Lock()
        self.pool: Pool | None = None
        self.node_id: str | None = None
        self.processes = 0
        self.users = 0
        self._timer: threading.Timer | None = None

    def take(self, processes: int) -> Pool:
        with self._lock:
            self._stop_timer()
            if not api.is_initialized():
                api.init()
            node_id = _node_id()
            if self.pool is not None and (self.node_id != node_id or
                                          (self.processes != processes and not self.users)):
                self._end()
            if self.pool is None:
                self.pool, self.node_id, self.processes = Pool(processes), node_id, processes
            elif self.processes != processes:  # in use by another call: this one gets its own
                return Pool(processes)
            self.users += 1
            return self.pool

    def give_back(self, pool: Pool, abort: bool) -> None:
        """The end of a call's use of `pool`; `abort`: its calls are no longer wanted."""
        with self._lock:
            if pool is not self.pool:  # a pool of its own, or one the node no longer runs
                pool.terminate()
                return
            self.users -= 1
            if abort and not self.users:
                self._end()  # stop what it still runs; the next call makes one
            elif not self.users:
                self._timer = threading.Timer(IDLE_SECONDS, self._idle)
                self._timer.daemon = True
                self._timer.start()

    def _idle(self) -> None:
        with self._lock:
            if not self.users and self.pool is not None:
                self._end()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _end(self) -> None:
        """Drops the pool; ends its actors if the node they run on still runs."""
        pool, self.pool = self.pool, None
        self.users = 0
        if self.node_id == _node_id():
            pool.terminate()


def _node_id() -> str | None:
    """The id of the node this process uses; None if none runs (and none is started)."""
    return get_runtime_context().get_node_id() if api.is_initialized() else None


_shared = _SharedPool()


class EmberBackend(MultiprocessingBackend):
    """joblib's calls as ember actor calls (see the module docstring)."""

    def __init__(self, nesting_level: int | None = None,
                 inner_max_num_threads: int | None = None,
                 ray_remote_args: dict | None = None, **kwargs):
        super().__init__(nesting_level=nesting_level,
                         inner_max_num_threads=inner_max_num_threads, **kwargs)
        self.ray_remote_args = ray_remote_args

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        if n_jobs is None:
            return 1
        if n_jobs < 0:
            if not api.is_initialized():
                api.init()
            cpus = int(api.cluster_resources().get("CPU", 1))
            return max(cpus + 1 + n_jobs, 1)
        return n_jobs

    def configure(self, n_jobs: int = 1, parallel=None, prefer=None, require=None,
                  **unused_memmapping_args) -> int:
        n_jobs = self.effective_n_jobs(n_jobs)
        if n_jobs == 1:
            raise FallbackToBackend(SequentialBackend(nesting_level=self.nesting_level))
        self.parallel = parallel
        if self.ray_remote_args:
            self._pool = Pool(processes=n_jobs, ray_remote_args=self.ray_remote_args)
        else:
            self._pool = _shared.take(n_jobs)
        return n_jobs

    def terminate(self) -> None:
        self._give_back(abort=False)
        self.reset_batch_stats()  # the next call tunes its batches afresh, as joblib's do

    def abort_everything(self, ensure_ready: bool = True) -> None:
        self._give_back(abort=True)
        if ensure_ready:
            self.configure(n_jobs=self.parallel.n_jobs, parallel=self.parallel,
                           **self.parallel._backend_kwargs)

    def _give_back(self, abort: bool) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if self.ray_remote_args:
            pool.terminate()
        else:
            _shared.give_back(pool, abort)


RayBackend = EmberBackend
