"""The joblib backend (``EmberBackend``, also under Ray's name ``RayBackend``): joblib's
multiprocessing backend with ember's Pool in place of its process pool.

joblib batches its calls (AutoBatchingMixin) and hands each batch to ``Pool.apply_async``;
the Pool's processes are ember actors, which ``ray_remote_args`` configure (resources, ...).
``n_jobs=-1`` means every CPU of the node, ``-2`` all but one, as in joblib.
"""

from __future__ import annotations

from joblib._parallel_backends import (
    FallbackToBackend,
    MultiprocessingBackend,
    SequentialBackend,
)

from ember import api
from ember.util.multiprocessing import Pool

__all__ = ["EmberBackend", "RayBackend"]


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
        self._pool = Pool(processes=n_jobs, ray_remote_args=self.ray_remote_args)
        return n_jobs


RayBackend = EmberBackend
