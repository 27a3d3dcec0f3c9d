"""_alias: ``import ray`` resolved to ember, for programs written for Ray (``ember.as_ray()``,
``ember run``, the pytest plugin ``ember.pytest_plugin``).

    import ray                        -> the ember package itself
    from ray.util.queue import Queue  -> ember.util.queue
    import ray.data                   -> ModuleNotFoundError that says ember has no ray.data

A finder first on ``sys.meta_path`` answers every ``ray`` and ``ray.<sub>`` import with
ember's module of the same name, the very same module object, so ``ray.util.queue.Queue is
ember.util.queue.Queue``. A name ember lacks fails at import with an error that says so; real
Ray is never loaded behind the program's back.

The node's workers install the same finder when they start (the driver hands the choice down
in ``EMBER_AS_RAY``, see ember._names), so functions that reference ``ray`` unpickle in them.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys

from ember import _names


# The finder and the loader follow importlib's protocols without deriving from importlib.abc,
# whose import (importlib.resources) would add ~5 ms to every `import ember`.
class _EmberModule:
    """Loads ``ray.<sub>`` as the already imported ``ember.<sub>``."""

    def __init__(self, module):
        self.module = module
        self.own_spec = module.__spec__

    def create_module(self, spec):
        return self.module

    def exec_module(self, module) -> None:
        # ember's module ran when it was imported under its own name; importing it as ray.x
        # set its __spec__ to ray.x's, which must not change what it is.
        module.__spec__ = self.own_spec


class _RayIsEmber:
    """``ray`` and ``ray.<sub>`` are ember's modules (see the module docstring)."""

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname != "ray" and not fullname.startswith("ray."):
            return None
        own = "ember" + fullname[len("ray"):]
        try:
            found = importlib.util.find_spec(own)
        except ModuleNotFoundError:
            found = None
        if found is None:
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: this program runs on ember as ray (ember run, "
                f"ember.as_ray()), and ember has no {own}. Run it on Ray itself for that part "
                f"of Ray.", name=fullname)
        module = importlib.import_module(own)
        return importlib.machinery.ModuleSpec(fullname, _EmberModule(module),
                                              is_package=hasattr(module, "__path__"))


_FINDER = _RayIsEmber()

#: "1" in the processes of a program that called as_ray(): the forkserver installs the finder
#: for the workers. (A program that found its `ray` elsewhere, such as a shim module that
#: forwards to ember, gets Ray's names only: its workers import that same `ray`.)
ALIAS_ENV = "EMBER_RAY_ALIAS"


def as_ray() -> None:
    """From now on ``import ray`` (and ``from ray.x import y``) gives ember, in this process
    and in the node's workers. Call it before anything imports Ray; a program that has already
    imported the real Ray gets a RuntimeError, not two runtimes."""
    loaded = sys.modules.get("ray")
    ember = sys.modules["ember"]
    if loaded is not None and loaded is not ember:
        raise RuntimeError(
            "ember.as_ray() must run before Ray is imported: this process has already "
            f"imported the real Ray from {getattr(loaded, '__file__', '?')}")
    os.environ[_names.AS_RAY_ENV] = "1"  # the node's workers inherit both
    os.environ[ALIAS_ENV] = "1"
    install()


def install() -> None:
    """Puts the finder first on sys.meta_path (once) and ``ray`` in sys.modules."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    sys.modules["ray"] = sys.modules["ember"]
