"""ActorGroup: a fixed number of actors of one class, called together (Ray's
``ray.util.actor_group``, which Ray deprecates; ember has it for the programs that use it).

    group = ActorGroup(Worker, num_actors=4, num_cpus_per_actor=1)
    ember.get(group.step.remote(batch))   # every actor's step(batch), in the group's order
    group.shutdown()

Each actor holds its CPUs, GPUs and resources for its life, as an actor asked for them does.
A group shut down refuses calls until ``start()`` makes its actors again.
"""

from __future__ import annotations

import warnings

from ember import _names, api
from ember.actor import kill


class _GroupMethod:
    """``group.method``: ``.remote(...)`` calls it on every actor and returns their refs."""

    def __init__(self, group: ActorGroup, name: str):
        self._group = group
        self._name = name

    def __call__(self, *args, **kwargs):
        raise TypeError(f"ActorGroup method {self._name!r} is called with "
                        f".{self._name}.remote(...), which returns a ref per actor")

    def remote(self, *args, **kwargs) -> list:
        return [getattr(actor, self._name).remote(*args, **kwargs)
                for actor in self._group._actors]


class ActorGroup:
    """`num_actors` actors of `actor_cls`, each made with ``init_args``/``init_kwargs`` and
    holding ``num_cpus_per_actor`` CPUs (and the GPUs and resources asked for)."""

    def __init__(self, actor_cls: type, num_actors: int = 1, num_cpus_per_actor: float = 1,
                 num_gpus_per_actor: float = 0, resources_per_actor: dict | None = None,
                 init_args: tuple | None = None, init_kwargs: dict | None = None):
        runtime = _names.runtime()
        warnings.warn(
            f"ActorGroup is deprecated, as in Ray: for stateless work use "
            f"{runtime}.util.multiprocessing (Pool), for work on stateful actors "
            f"{runtime}.util.ActorPool", DeprecationWarning, stacklevel=2)
        if not isinstance(num_actors, int) or num_actors <= 0:
            raise ValueError(f"ActorGroup(num_actors={num_actors!r}): an int > 0")
        if num_cpus_per_actor < 0 or num_gpus_per_actor < 0:
            raise ValueError("ActorGroup: num_cpus_per_actor and num_gpus_per_actor must not "
                             f"be negative, got {num_cpus_per_actor} and {num_gpus_per_actor}")
        self.num_actors = num_actors
        self._init = (tuple(init_args or ()), dict(init_kwargs or {}))
        self._cls = api.remote(num_cpus=num_cpus_per_actor, num_gpus=num_gpus_per_actor,
                               resources=resources_per_actor)(actor_cls)
        self._actors: list = []
        self._metadata: list = []
        self.start()

    def __getattr__(self, name: str) -> _GroupMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        if not self.__dict__.get("_actors"):
            raise RuntimeError("This ActorGroup is shut down: start() it again to call it")
        return _GroupMethod(self, name)

    def __len__(self) -> int:
        return len(self._actors)

    def __getitem__(self, index: int):
        return self._actors[index]

    @property
    def actor_metadata(self) -> list:
        """Each actor's ``get_actor_metadata()`` (None for a class without one)."""
        return list(self._metadata)

    def start(self) -> None:
        """Makes the group's actors; RuntimeError if they are up already."""
        if self._actors:
            raise RuntimeError("The ActorGroup's actors are running: shutdown() first to "
                               "start them again")
        args, kwargs = self._init
        self._actors = [self._cls.remote(*args, **kwargs) for _ in range(self.num_actors)]
        if hasattr(self._actors[0], "get_actor_metadata"):
            self._metadata = api.get([a.get_actor_metadata.remote() for a in self._actors])
        else:
            self._metadata = [None] * self.num_actors

    def shutdown(self, patience_s: float = 5) -> None:
        """Ends the actors: each finishes its calls and leaves within `patience_s` seconds,
        or is killed then (at once if `patience_s` <= 0)."""
        if patience_s > 0:
            leaving = [a.__ray_terminate__.remote() for a in self._actors]
            _, stuck = api.wait(leaving, num_returns=len(leaving), timeout=patience_s)
            for actor, ref in zip(self._actors, leaving):
                if ref in stuck:
                    kill(actor)
        else:
            for actor in self._actors:
                kill(actor)
        self._actors = []
        self._metadata = []

    def __repr__(self) -> str:
        return f"ActorGroup({len(self._actors)} actors)"
