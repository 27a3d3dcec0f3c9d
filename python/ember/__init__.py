"""ember: a fast single-machine parallel runtime for Python with the Ray Core API.

``import ember as ray`` runs Ray Core programs on one machine: tasks, actors and a
shared-memory object store with zero-copy numpy arrays.
"""

from ember import actor, exceptions, job_config, util
from ember._alias import as_ray

# The one version (pyproject.toml) reaches the C++ build; reading it from there is free, while
# importlib.metadata costs ~10 ms of start-up.
from ember._core import __version__
from ember._ids import (
    ActorClassID,
    ActorID,
    ClusterID,
    FunctionID,
    JobID,
    NodeID,
    PlacementGroupID,
    TaskID,
    WorkerID,
)
from ember._stream import DynamicObjectRefGenerator, ObjectRefGenerator
from ember.actor import get_actor, kill, method
from ember.api import (
    available_resources,
    cancel,
    cluster_resources,
    get,
    get_gpu_ids,
    init,
    is_initialized,
    nodes,
    put,
    remote,
    shutdown,
    timeline,
    wait,
)
from ember.object_ref import ObjectRef
from ember.runtime_context import get_runtime_context

ObjectID = ObjectRef  # Ray's old name, kept by Ray for old programs

__all__ = [
    "ActorClassID",
    "ActorID",
    "ClusterID",
    "DynamicObjectRefGenerator",
    "FunctionID",
    "JobID",
    "NodeID",
    "ObjectID",
    "ObjectRef",
    "ObjectRefGenerator",
    "PlacementGroupID",
    "TaskID",
    "WorkerID",
    "__version__",
    "actor",
    "as_ray",
    "available_resources",
    "cancel",
    "cluster_resources",
    "exceptions",
    "get",
    "get_actor",
    "get_gpu_ids",
    "get_runtime_context",
    "init",
    "is_initialized",
    "job_config",
    "kill",
    "method",
    "nodes",
    "put",
    "remote",
    "shutdown",
    "timeline",
    "util",
    "wait",
]
