"""The backend: what answers the public API in this process, chosen once, not at each call.

Two do the work: the ember node (``ember._local.LocalBackend``) and Ray
(``ember._ray_backend``). Before ``init()`` (and after ``shutdown()``) the active one is
``ember.api``'s starter, which finds the process's backend on first use (a worker's node, or
Ray in a worker of Ray's) or starts one as Ray does. ``init()`` makes the chosen backend
active; every public call is ``_backend.active.<call>(...)``, one attribute lookup. This
module is near the bottom of the package, so that the classes which make tasks and actors
(``remote_function``, ``actor``) reach the backend without importing the modules that
implement it.
"""

from __future__ import annotations

from typing import Any


class Backend:
    """The calls that differ between the ember node and Ray. Arguments are already those of
    the public API (``ember.api`` documents them); each backend checks what it needs."""

    name = ""

    def init(self, address: str | None, **options: Any) -> Any: raise NotImplementedError
    def shutdown(self) -> None: raise NotImplementedError
    def is_initialized(self) -> bool: raise NotImplementedError

    # objects
    def put(self, value: Any) -> Any: raise NotImplementedError
    def get(self, object_refs: Any, timeout: float | None) -> Any: raise NotImplementedError
    def wait(self, object_refs: list, num_returns: int, timeout: float | None,
             fetch_local: bool) -> tuple[list, list]: raise NotImplementedError

    # tasks and actors: `function` is a RemoteFunction, `actor_class` an ActorClass
    def submit_task(self, function: Any, args: tuple, kwargs: dict) -> Any:
        raise NotImplementedError
    def create_actor(self, actor_class: Any, args: tuple, kwargs: dict) -> Any:
        raise NotImplementedError
    def cancel(self, object_ref: Any, force: bool, recursive: bool) -> None:
        raise NotImplementedError
    def get_actor(self, name: str, namespace: str | None) -> Any: raise NotImplementedError
    def kill(self, actor: Any, no_restart: bool) -> None: raise NotImplementedError
    def exit_actor(self) -> None: raise NotImplementedError

    # the node
    def cluster_resources(self) -> dict[str, float]: raise NotImplementedError
    def available_resources(self) -> dict[str, float]: raise NotImplementedError
    def nodes(self) -> list[dict]: raise NotImplementedError
    def timeline(self, filename: str | None) -> list[dict] | None: raise NotImplementedError
    def get_gpu_ids(self) -> list[int]: raise NotImplementedError
    def runtime_context(self) -> Any: raise NotImplementedError
    def list_objects(self) -> list[dict]: raise NotImplementedError
    def list_actors(self) -> list[dict]: raise NotImplementedError
    def list_tasks(self) -> list[dict]: raise NotImplementedError


#: The backend of this process (ember.api installs the starter before any call can run).
active: Backend = Backend()
#: What active goes back to at shutdown(): the starter.
default: Backend = active


def install_default(backend: Backend) -> None:
    global active, default
    active = default = backend


def use(backend: Backend) -> None:
    global active
    active = backend


def reset() -> None:
    global active
    active = default
