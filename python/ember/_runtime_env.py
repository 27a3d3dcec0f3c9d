"""runtime_env on one node: what a job's, task's or actor's environment may hold, and putting
it on and taking it off a worker process.

    init(runtime_env=)  the job's: every worker puts it on when it starts (the forkserver
                        passes it in $EMBER_RUNTIME_ENV)
    .options(runtime_env=) / @remote(runtime_env=)
                        a task's: merged over the job's (env_vars key by key, the other
                        fields replace the job's), put on around the call; the worker then
                        retires, so no later task shares its process (as in Ray, where
                        workers of different runtime envs are never shared)
                        an actor's: put on before __init__, for the actor's life

- What works: ``env_vars`` (str -> str), ``working_dir`` (a local directory: the cwd and the
  first entry of sys.path), ``py_modules`` (local package directories or .py files: their
  parent directories go on sys.path), ``config`` (``setup_timeout_seconds``,
  ``eager_install``: nothing is installed on one node, so there is nothing to wait for).
- The node uses the directories where they are, without copying them (Ray uploads a copy);
  a remote URI (``s3://``, ``gcs://``, ``https://``) names a copy Ray would download, and is
  refused. ``excludes`` (what Ray leaves out of the copy) is refused for the same reason.
- Every other key (``pip``, ``uv``, ``conda``, ``container``, ``image_uri``, ...) would
  install or start something: RuntimeEnvSetupError at the call that gave it, saying what to
  do instead. Nothing is ever accepted and dropped.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from ember.exceptions import RuntimeEnvSetupError

#: The job's runtime_env, as JSON, in every worker's environment.
JOB_ENV = "EMBER_RUNTIME_ENV"

#: The runtime_env in effect in this process now (get_runtime_context().runtime_env): the
#: job's, or the running task's merged over it.
active: dict = {}

_INSTALLERS = {
    "pip": "install the packages into the driver's environment (pip install ...): ember's "
           "workers run in the Python environment of the driver that started the node",
    "uv": "install the packages into the driver's environment (uv pip install ...): ember's "
          "workers run in the Python environment of the driver that started the node",
    "conda": "activate the conda environment before starting the driver: ember's workers run "
             "in the driver's environment",
    "container": "start the driver inside the container: ember's workers run on the "
                 "driver's machine",
    "image_uri": "start the driver inside the image: ember's workers run on the driver's "
                 "machine",
    "java_jars": "ember runs Python workers only",
    "nsight": "run the driver under the profiler instead",
    "excludes": "ember uses working_dir where it is, without copying it, so there is nothing "
                "to leave out",
}
_CONFIG_KEYS = ("setup_timeout_seconds", "eager_install")


def check(env: Any, who: str) -> dict:
    """The runtime_env `env` of `who`, checked: a dict of the keys ember honours (TypeError,
    ValueError or RuntimeEnvSetupError naming the key otherwise)."""
    if env is None:
        return {}
    if not isinstance(env, dict):
        raise TypeError(f"runtime_env of {who} must be a dict, got {type(env).__name__}")
    for key in env:
        if key in _INSTALLERS:
            raise RuntimeEnvSetupError(
                f"runtime_env={{{key!r}: ...}} of {who} is not supported by ember: "
                f"{_INSTALLERS[key]}")
        if key not in ("env_vars", "working_dir", "py_modules", "config"):
            raise RuntimeEnvSetupError(
                f"runtime_env of {who} has an unknown key {key!r} (ember takes env_vars, "
                "working_dir, py_modules and config)")
    env_vars = env.get("env_vars") or {}
    if not isinstance(env_vars, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items()):
        raise TypeError(f"runtime_env['env_vars'] of {who} must be a dict of str to str")
    if env.get("working_dir") is not None:
        _local_path(env["working_dir"], "working_dir", who, directory=True)
    modules = env.get("py_modules") or []
    if not isinstance(modules, list):
        raise TypeError(f"runtime_env['py_modules'] of {who} must be a list of paths")
    for module in modules:
        _local_path(module, "py_modules", who, directory=False)
    config = env.get("config") or {}
    if not isinstance(config, dict) or set(config) - set(_CONFIG_KEYS):
        raise ValueError(f"runtime_env['config'] of {who} takes {', '.join(_CONFIG_KEYS)}, "
                         f"got {config!r}")
    return {k: v for k, v in env.items() if v not in (None, {}, [])}


def _local_path(path: Any, key: str, who: str, *, directory: bool) -> None:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"runtime_env[{key!r}] of {who} must be a path, got "
                        f"{type(path).__name__}")
    path = os.fspath(path)
    if "://" in path:
        raise RuntimeEnvSetupError(
            f"runtime_env[{key!r}]={path!r} of {who}: ember's node uses local paths where "
            "they are and downloads nothing; give a local directory")
    if directory and not os.path.isdir(path):
        raise RuntimeEnvSetupError(f"runtime_env[{key!r}]={path!r} of {who}: no such directory")
    is_module = os.path.isdir(path) or (path.endswith(".py") and os.path.isfile(path))
    if not directory and not is_module:
        raise RuntimeEnvSetupError(
            f"runtime_env[{key!r}] entry {path!r} of {who}: not a package directory or a .py "
            "file on this machine")


def merged(job: dict, own: dict) -> dict:
    """A task's or actor's runtime_env over the job's, as Ray merges them: env_vars key by
    key, every other field replaced."""
    if not own:
        return dict(job)
    out = {**job, **own}
    if "env_vars" in job and "env_vars" in own:
        out["env_vars"] = {**job["env_vars"], **own["env_vars"]}
    return out


def job_env() -> dict:
    """The job's runtime_env, in a worker (from $EMBER_RUNTIME_ENV)."""
    raw = os.environ.get(JOB_ENV)
    return json.loads(raw) if raw else {}


def to_environ(env: dict) -> str:
    """The job's runtime_env as the forkserver passes it to workers (absolute paths: a
    worker's cwd may differ from the driver's)."""
    env = dict(env)
    if "working_dir" in env:
        env["working_dir"] = os.path.abspath(env["working_dir"])
    if "py_modules" in env:
        env["py_modules"] = [os.path.abspath(m) for m in env["py_modules"]]
    return json.dumps(env)


def put_on_for_life(env: dict, job: dict | None = None) -> None:
    """Puts `env` on this worker for good (the job's at start, an actor's before __init__);
    `job`: the job's, already on, that `env` is merged over."""
    global active
    if env:
        Applied(env).apply()
        active = merged(job or {}, env)


class Applied:
    """A runtime_env put on this process (apply()), with what it replaced (undo())."""

    def __init__(self, env: dict):
        self.env = env
        self._environ: dict[str, str | None] = {}
        self._cwd: str | None = None
        self._paths: list[str] = []

    def apply(self) -> Applied:
        for key, value in (self.env.get("env_vars") or {}).items():
            self._environ[key] = os.environ.get(key)
            os.environ[key] = value
        paths = [os.path.dirname(os.path.abspath(m)) for m in self.env.get("py_modules") or []]
        if self.env.get("working_dir"):
            self._cwd = os.getcwd()
            os.chdir(self.env["working_dir"])
            paths.insert(0, os.path.abspath(self.env["working_dir"]))
        for path in reversed(paths):
            sys.path.insert(0, path)
            self._paths.append(path)
        return self

    def undo(self) -> None:
        for key, old in self._environ.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        if self._cwd is not None:
            os.chdir(self._cwd)
        for path in self._paths:
            if path in sys.path:
                sys.path.remove(path)
