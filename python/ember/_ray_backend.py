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

from ember import exceptions

#: Set in every process where Ray is the backend (read once: a worker inherits it).
_ENV_RAY = os.environ.get("EMBER_BACKEND") == "ray"

#: The ray module once the backend is on in this process; None for an ember node.
_ray: Any = None


def requested(address: str | None) -> bool:
    """True if ``init(address=...)`` (or the environment) asks for Ray."""
    return address not in (None, "local", "auto") or os.environ.get("EMBER_BACKEND") == "ray"


def active() -> bool:
    """True if ember calls in this process go to Ray (cheap when they do not)."""
    return _ray is not None or (_ENV_RAY and _attach_worker())


def _attach_worker() -> bool:
    """In a process Ray started (a worker), Ray is connected before our code runs."""
    global _ray
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        _ray = ray
        return True
    return False


def _import_ray():
    try:
        import ray  # noqa: PLC0415 (optional: only this backend needs it)
    except ImportError as e:
        raise ImportError(
            "ember's Ray backend needs Ray in this environment: pip install 'ember[ray]' "
            "(or pip install ray)") from e
    return ray


def init(address: str | None, **kwargs):
    """Starts or joins a Ray cluster with ray.init(); returns Ray's context."""
    global _ray
    ray = _import_ray()
    runtime_env = dict(kwargs.pop("runtime_env", None) or {})
    env_vars = dict(runtime_env.get("env_vars") or {})
    env_vars["EMBER_BACKEND"] = "ray"
    runtime_env["env_vars"] = env_vars
    options = {k: v for k, v in kwargs.items() if v is not None}
    context = ray.init(address=address, runtime_env=runtime_env, **options)
    _ray = ray
    return context


def shutdown() -> None:
    global _ray
    if _ray is not None:
        _ray.shutdown()
        _ray = None


def ray_options(options: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """ember's options for ray.remote(): those set, without ember's own defaults for Ray's."""
    return {k: v for k, v in options.items() if v is not None and v != defaults.get(k, object())}


def remote(target, options: dict[str, Any], defaults: dict[str, Any]):
    """ray.remote() of a function or class, with the options ember was given."""
    opts = ray_options(options, defaults)
    return _ray.remote(**opts)(target) if opts else _ray.remote(target)


def get(object_refs, timeout: float | None):
    try:
        return _ray.get(object_refs, timeout=timeout)
    except _ray.exceptions.RayError as e:
        raise translate(e) from e


def translate(error: BaseException) -> BaseException:
    """Ray's error as the ember class users catch on both backends."""
    rx = _ray.exceptions
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


def module():
    """The ray module (the backend is active)."""
    return _ray
