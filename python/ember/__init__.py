"""ember: a fast single-machine parallel runtime for Python with the Ray Core API.

``import ember as ray`` runs Ray Core programs on one machine: tasks, actors and a
shared-memory object store with zero-copy numpy arrays.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from ember import actor, exceptions, util
from ember.actor import get_actor, kill, method
from ember.api import (
    available_resources,
    cancel,
    cluster_resources,
    get,
    init,
    is_initialized,
    put,
    remote,
    shutdown,
    wait,
)
from ember.object_ref import ObjectRef
from ember.runtime_context import get_runtime_context

try:
    __version__ = _version("ember")
except PackageNotFoundError:  # running from a source tree without installing
    from ember._core import __version__

__all__ = [
    "ObjectRef",
    "__version__",
    "available_resources",
    "cancel",
    "cluster_resources",
    "actor",
    "exceptions",
    "get_actor",
    "kill",
    "method",
    "util",
    "get",
    "get_runtime_context",
    "init",
    "is_initialized",
    "put",
    "remote",
    "shutdown",
    "wait",
]
