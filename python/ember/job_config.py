"""JobConfig: Ray's per-job settings, as ``init(job_config=...)`` takes them.

On ember's node the namespace, the runtime_env and the default lifetime of actors work; the
other settings describe a job of a Ray cluster (Java workers, a client job, job metadata in
Ray's job table, lineage reconstruction) and are refused by ``init`` when set, naming the setting.
Under the Ray backend the same object becomes a ``ray.job_config.JobConfig``.
"""

from __future__ import annotations

from typing import Any

_LIFETIMES = ("detached", "non_detached")


class JobConfig:
    """``ray.job_config.JobConfig`` (the same arguments)."""

    def __init__(self, jvm_options: list[str] | None = None,
                 code_search_path: list[str] | None = None, runtime_env: dict | None = None,
                 _client_job: bool = False, metadata: dict | None = None,
                 ray_namespace: str | None = None,
                 default_actor_lifetime: str = "non_detached",
                 _disable_job_level_lineage_reconstruction: bool = False,
                 _py_driver_sys_path: list[str] | None = None):
        self.jvm_options = jvm_options or []
        self.code_search_path = code_search_path or []
        self.runtime_env = runtime_env or {}
        self._client_job = _client_job
        self.metadata = metadata or {}
        self.ray_namespace = None
        self.set_ray_namespace(ray_namespace)
        self.default_actor_lifetime = "non_detached"
        self.set_default_actor_lifetime(default_actor_lifetime)
        self._disable_job_level_lineage_reconstruction = _disable_job_level_lineage_reconstruction
        self._py_driver_sys_path = _py_driver_sys_path or []

    def set_ray_namespace(self, ray_namespace: str | None) -> None:
        if ray_namespace is not None and not isinstance(ray_namespace, str):
            raise TypeError(f"ray_namespace must be a str, got {type(ray_namespace).__name__}")
        self.ray_namespace = ray_namespace

    def set_default_actor_lifetime(self, default_actor_lifetime: str) -> None:
        if default_actor_lifetime not in _LIFETIMES:
            raise ValueError(f"default_actor_lifetime must be one of {_LIFETIMES}, got "
                             f"{default_actor_lifetime!r}")
        self.default_actor_lifetime = default_actor_lifetime

    def set_metadata(self, key: str, value: str) -> None:
        self.metadata[key] = value

    def set_runtime_env(self, runtime_env: dict | None, validate: bool = False) -> None:
        del validate  # init checks the runtime_env, as it checks one passed to it directly
        self.runtime_env = runtime_env or {}

    def arguments(self) -> dict[str, Any]:
        """The constructor's arguments that differ from its defaults."""
        out = {"jvm_options": self.jvm_options, "code_search_path": self.code_search_path,
               "runtime_env": self.runtime_env, "_client_job": self._client_job,
               "metadata": self.metadata, "ray_namespace": self.ray_namespace,
               "_disable_job_level_lineage_reconstruction":
                   self._disable_job_level_lineage_reconstruction,
               "_py_driver_sys_path": self._py_driver_sys_path}
        out = {k: v for k, v in out.items() if v}
        if self.default_actor_lifetime != "non_detached":
            out["default_actor_lifetime"] = self.default_actor_lifetime
        return out

    def refused(self) -> list[tuple[str, str]]:
        """(setting, why) for each setting ember's node cannot honour that is set."""
        why = {
            "jvm_options": "ember runs Python workers only",
            "code_search_path": "ember runs Python workers only",
            "_client_job": "a Ray Client job runs on a remote cluster",
            "metadata": "job metadata is shown in Ray's job table; ember's node has none",
            "_disable_job_level_lineage_reconstruction":
                "ember does not rebuild lost objects by rerunning their tasks",
            "_py_driver_sys_path": "ember's workers take the driver's sys.path as it is",
        }
        args = self.arguments()
        return [(name, reason) for name, reason in why.items() if name in args]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.arguments().items())
        return f"JobConfig({args})"
