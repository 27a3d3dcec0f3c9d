"""ember.util.state: what the node holds right now (Ray's ray.util.state names).

Each ``list_*`` call returns records that are dicts and also read as attributes
(``a["state"]`` and ``a.state``), with Ray's field names where ember has the fact, and takes
Ray's arguments: ``filters=[(key, "=" or "!=", value)]``, ``limit`` (100 by default, as in
Ray; a warning says when more were left out), ``detail`` (True adds Ray's detail columns and
ember's own extras). Driver only; under the Ray backend the calls are Ray's own.
"""

from __future__ import annotations

import logging
import os
from types import SimpleNamespace
from typing import Callable

from ember import _backend, _node, _placement
from ember._ids import ActorID, WorkerID
from ember.actor import named_actors
from ember.exceptions import NODE_IP

#: Ray's default number of records a list_* call returns.
DEFAULT_LIMIT = 100
#: More than the node keeps (its unfinished tasks and the timeline's 200,000 finished ones).
_EVERY_TASK = 1 << 30

_log = logging.getLogger(__name__)


class StateRecord(dict):
    """One row of a listing: a dict whose keys also read as attributes (as Ray's state
    objects do: ``row.state``, ``row["state"]``, ``row.asdict()``)."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def asdict(self) -> dict:
        return dict(self)


#: For each kind: the columns always shown, then those detail=True adds.
_COLUMNS = {
    "actors": (("actor_id", "class_name", "state", "pid", "name", "ray_namespace"),
               ("death_cause", "pending_calls")),
    "tasks": (("task_id", "name", "state", "type", "func_or_class_name", "worker_pid"),
              ("running_s",)),
    "objects": (("object_id", "object_size", "state", "pid", "ip", "reference_count"),
                ("pin_count", "worker_holders")),
    "nodes": (("node_id", "node_ip", "is_head_node", "state", "node_name", "resources_total"),
              ()),
    "placement_groups": (("placement_group_id", "name", "creator_job_id", "state",
                          "is_detached"), ("bundles", "stats", "strategy")),
    "workers": (("worker_id", "is_alive", "worker_type", "exit_type", "node_id", "ip", "pid",
                 "exit_detail"), ()),
}


def _ray(call: str, **arguments):
    """Ray's own list_* call, with the caller's arguments (the Ray backend)."""
    from ray.util import state as ray_state  # noqa: PLC0415 (Ray is optional)

    return getattr(ray_state, call)(**arguments)


def _actor_rows() -> list[dict]:
    names = {actor_id: (namespace, name) for actor_id, namespace, name in named_actors()}
    rows = []
    for actor in _backend.active.list_actors():
        namespace, name = names.get(actor["actor_id"], (None, ""))
        rows.append({**actor, "actor_id": ActorID.from_int(actor["actor_id"]).hex(),
                     "name": name, "ray_namespace": namespace or _node.current().namespace})
    return rows


def _task_rows() -> list[dict]:
    return [{**task, "func_or_class_name": task["name"]} for task in _backend.active.list_tasks()]


def _object_rows() -> list[dict]:
    return [{**obj, "object_size": obj["size"], "pid": obj["owner_pid"], "ip": NODE_IP,
             "reference_count": obj["ref_count"]}
            for obj in _backend.active.list_objects()]


def _node_rows() -> list[dict]:
    return [{"node_id": n["NodeID"], "node_ip": n["NodeManagerAddress"], "is_head_node": True,
             "state": "ALIVE" if n["Alive"] else "DEAD", "node_name": n["NodeManagerHostname"],
             "resources_total": n["Resources"]} for n in _backend.active.nodes()]


def _placement_group_rows() -> list[dict]:
    node = _node.current()
    rows = []
    for record in _placement.records(node):
        entry = _placement.table_entry(node, record)
        rows.append({**entry, "creator_job_id": node.job_id.hex(),
                     "is_detached": record["lifetime"] == "detached",
                     "bundles": [{"bundle_id": f"{entry['placement_group_id']}:{i}",
                                  "node_id": entry["bundles_to_node_id"].get(i),
                                  "unit_resources": bundle}
                                 for i, bundle in entry["bundles"].items()]})
    return rows


def _worker_rows() -> list[dict]:
    node = _node.current()
    if node.scheduler is None:
        raise RuntimeError("list_workers() can only be called from the driver")
    rows = []
    for worker_type, pid in [("DRIVER", os.getpid())] + [
            ("WORKER", pid) for pid in sorted(node.scheduler.worker_pids())]:
        rows.append({"worker_id": WorkerID.from_int(pid).hex(), "is_alive": True,
                     "worker_type": worker_type, "exit_type": None, "node_id": node.node_id,
                     "ip": NODE_IP, "pid": pid, "exit_detail": None})
    return rows


def _listing(kind: str, rows: Callable[[], list[dict]], filters, limit: int, detail: bool,
             address, timeout, raise_on_missing_output) -> list[StateRecord]:
    """list_<kind>: Ray's own call under the Ray backend, else `rows()` checked, filtered,
    cut to `limit` and to the columns `detail` asks for."""
    if _backend.active.name == "ray":
        return _ray(f"list_{kind}", address=address, filters=filters, limit=limit,
                    timeout=timeout, detail=detail,
                    raise_on_missing_output=raise_on_missing_output)
    if address not in (None, "auto", "local"):
        raise ValueError(f"list_{kind}(address={address!r}): ember's state is this node's; "
                         "for a Ray cluster's, run with the Ray backend")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"list_{kind}(timeout={timeout!r}): a positive number of seconds")
    del raise_on_missing_output  # nothing is ever missing: the node answers from memory
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"list_{kind}(limit={limit!r}): a positive int")
    shown, extra = _COLUMNS[kind]
    columns = shown + extra
    filters = _checked_filters(filters or (), columns, kind)
    matched = [row for row in rows() if _matches(row, filters)]
    if len(matched) > limit:
        _log.warning("list_%s: %d of %d records shown (limit=%d)", kind, limit, len(matched),
                     limit)
    keep = columns if detail else shown
    out = []
    for row in matched[:limit]:
        if detail:  # Ray's detail columns, and every field ember has
            out.append(StateRecord(row))
        else:
            out.append(StateRecord({k: row[k] for k in keep if k in row}))
    return out


def _checked_filters(filters, columns: tuple[str, ...], kind: str) -> list[tuple]:
    out = []
    for item in filters:
        try:
            key, predicate, value = item
        except (TypeError, ValueError):
            raise ValueError(f"list_{kind}: a filter is (key, '=' or '!=', value), "
                             f"not {item!r}") from None
        if key not in columns:
            raise ValueError(f"list_{kind}: {key!r} is not a column to filter on; the "
                             f"columns are {', '.join(columns)}")
        if predicate not in ("=", "!="):
            raise ValueError(f"list_{kind}: the predicate of a filter is '=' or '!=', "
                             f"not {predicate!r}")
        out.append((key, predicate == "=", value))
    return out


def _matches(row: dict, filters: list[tuple]) -> bool:
    for key, equal_wanted, value in filters:
        have = row.get(key)
        # As in Ray, a filter's value may be given as a string: "1234" matches a pid of 1234.
        equal = have == value or (isinstance(value, str) and str(have) == value)
        if equal != equal_wanted:
            return False
    return True


def list_actors(address: str | None = None, filters: list | None = None,
                limit: int = DEFAULT_LIMIT, timeout: float | None = 30, detail: bool = False,
                raise_on_missing_output: bool = True) -> list[StateRecord]:
    """Every actor the node has made: actor_id (hex), class_name, state (PENDING_CREATION,
    ALIVE, RESTARTING, DEAD), pid, name and ray_namespace; with detail, why it died
    (death_cause) and calls waiting in the scheduler. Under the Ray backend: Ray's."""
    return _listing("actors", _actor_rows, filters, limit, detail, address, timeout,
                    raise_on_missing_output)


def list_tasks(address: str | None = None, filters: list | None = None,
               limit: int = DEFAULT_LIMIT, timeout: float | None = 30, detail: bool = False,
               raise_on_missing_output: bool = True) -> list[StateRecord]:
    """Every task not finished yet, then the last 200,000 finished (newest first): task_id
    (get_runtime_context().get_task_id()'s), name, state (PENDING_ARGS, PENDING_RESOURCES,
    BACKOFF after an OOM kill, QUEUED_ON_WORKER, RUNNING; FINISHED or FAILED), type
    (NORMAL_TASK, ACTOR_TASK, ACTOR_CREATION_TASK), worker_pid; with detail, seconds running.
    Unfinished actor calls are not listed (see list_actors). Under the Ray backend: Ray's."""
    return _listing("tasks", _task_rows, filters, limit, detail, address, timeout,
                    raise_on_missing_output)


def list_objects(address: str | None = None, filters: list | None = None,
                 limit: int = DEFAULT_LIMIT, timeout: float | None = 30, detail: bool = False,
                 raise_on_missing_output: bool = True) -> list[StateRecord]:
    """Every object in the node's store: object_id, object_size, state (SEALED, SPILLED,
    ...), pid of the process that made it, reference_count; with detail, pin_count and the
    worker slots that hold refs or views on it (a worker's own holds; the rest of the count is
    held by the driver, by queued tasks, or by objects that contain the ref). Under the Ray
    backend: Ray's."""
    return _listing("objects", _object_rows, filters, limit, detail, address, timeout,
                    raise_on_missing_output)


def list_nodes(address: str | None = None, filters: list | None = None,
               limit: int = DEFAULT_LIMIT, timeout: float | None = 30, detail: bool = False,
               raise_on_missing_output: bool = True) -> list[StateRecord]:
    """The node (ember's one node is this machine, its head): node_id, node_ip, state,
    node_name and resources_total. Under the Ray backend: Ray's."""
    return _listing("nodes", _node_rows, filters, limit, detail, address, timeout,
                    raise_on_missing_output)


def list_placement_groups(address: str | None = None, filters: list | None = None,
                          limit: int = DEFAULT_LIMIT, timeout: float | None = 30,
                          detail: bool = False,
                          raise_on_missing_output: bool = True) -> list[StateRecord]:
    """Every placement group the node was asked for, removed ones too: placement_group_id,
    name, creator_job_id, state (PENDING, CREATED, REMOVED), is_detached; with detail, its
    bundles, stats and strategy. Under the Ray backend: Ray's."""
    return _listing("placement_groups", _placement_group_rows, filters, limit, detail, address,
                    timeout, raise_on_missing_output)


def list_workers(address: str | None = None, filters: list | None = None,
                 limit: int = DEFAULT_LIMIT, timeout: float | None = 30, detail: bool = False,
                 raise_on_missing_output: bool = True) -> list[StateRecord]:
    """The driver and the node's live worker processes (tasks' and actors'): worker_id (as
    get_runtime_context().get_worker_id() gives it), is_alive, worker_type (DRIVER or
    WORKER), node_id, ip, pid; exit_type and exit_detail are None (ember lists live workers
    only; a dead one's story is in the error of what it ran). Under the Ray backend: Ray's."""
    return _listing("workers", _worker_rows, filters, limit, detail, address, timeout,
                    raise_on_missing_output)


def get_task(id: str) -> StateRecord | None:
    """The task whose task_id is `id` (list_tasks()'s detail fields; a finished one while the
    node remembers it), or None. Under the Ray backend: Ray's get_task(id)."""
    if _backend.active.name == "ray":
        return _ray("get_task", id=id)
    found = list_tasks(filters=[("task_id", "=", id)], detail=True, limit=_EVERY_TASK)
    return found[0] if found else None


def get_objects(id: str) -> list[StateRecord]:
    """The object whose id is `id` (list_objects()'s detail fields): a list of it, empty if
    the store does not hold it (as Ray's). Under the Ray backend: Ray's get_objects(id)."""
    if _backend.active.name == "ray":
        return _ray("get_objects", id=id)
    return list_objects(filters=[("object_id", "=", id)], detail=True)


def get_actor(id: str) -> SimpleNamespace | None:
    """The actor whose id is `id` (the hex of its ActorID, as get_runtime_context()
    .get_actor_id() and its handle's repr show it), with list_actors()'s detail fields as
    attributes; None if this node never made it. Under the Ray backend: Ray's get_actor(id)."""
    if _backend.active.name == "ray":
        return _ray("get_actor", id=id)
    if not isinstance(id, str):
        raise TypeError(f"get_actor takes the actor's id as a hex str, got {id!r}")
    try:
        ActorID.from_hex(id)
    except ValueError:
        raise ValueError(f"get_actor: {id!r} is not the hex of an ActorID") from None
    found = list_actors(filters=[("actor_id", "=", id)], detail=True)
    return SimpleNamespace(**found[0]) if found else None


# --- summaries (Ray's summarize_*: counts by function, class, ...; {"cluster": ...}) --------

#: Ray's summary of a task's kind, by list_tasks()'s type.
_TASK_TOTALS = {"NORMAL_TASK": "total_tasks", "ACTOR_TASK": "total_actor_tasks",
                "ACTOR_CREATION_TASK": "total_actor_scheduled"}


def _summary_rows(kind: str, rows: Callable[[], list[dict]], address, timeout) -> list[dict]:
    """Every row of list_<kind> (no limit), with the arguments checked as list_* checks them."""
    return _listing(kind, rows, None, 1 << 62, True, address, timeout, True)


def summarize_tasks(address: str | None = None, timeout: float = 30,
                    raise_on_missing_output: bool = True, _explain: bool = False) -> dict:
    """The tasks of list_tasks() counted by function (Ray's form): ``{"cluster": {"summary":
    {name: {"func_or_class_name", "type", "state_counts"}}, "total_tasks",
    "total_actor_tasks", "total_actor_scheduled", "summary_by"}}``. Under the Ray backend:
    Ray's."""
    if _backend.active.name == "ray":
        return _ray("summarize_tasks", address=address, timeout=timeout,
                    raise_on_missing_output=raise_on_missing_output, _explain=_explain)
    summary: dict[str, dict] = {}
    totals = dict.fromkeys(_TASK_TOTALS.values(), 0)
    for task in _summary_rows("tasks", _task_rows, address, timeout):
        entry = summary.setdefault(task["func_or_class_name"], {
            "func_or_class_name": task["func_or_class_name"], "type": task["type"],
            "state_counts": {}})
        entry["state_counts"][task["state"]] = entry["state_counts"].get(task["state"], 0) + 1
        totals[_TASK_TOTALS[task["type"]]] += 1
    return {"cluster": {"summary": summary, **totals, "summary_by": "func_name"}}


def summarize_actors(address: str | None = None, timeout: float = 30,
                     raise_on_missing_output: bool = True, _explain: bool = False) -> dict:
    """The actors counted by class and state (Ray's form): ``{"cluster": {"summary":
    {class_name: {"class_name", "state_counts"}}, "total_actors", "summary_by"}}``. Under the
    Ray backend: Ray's."""
    if _backend.active.name == "ray":
        return _ray("summarize_actors", address=address, timeout=timeout,
                    raise_on_missing_output=raise_on_missing_output, _explain=_explain)
    summary: dict[str, dict] = {}
    actors = _summary_rows("actors", _actor_rows, address, timeout)
    for actor in actors:
        entry = summary.setdefault(actor["class_name"], {"class_name": actor["class_name"],
                                                         "state_counts": {}})
        entry["state_counts"][actor["state"]] = entry["state_counts"].get(actor["state"], 0) + 1
    return {"cluster": {"summary": summary, "total_actors": len(actors), "summary_by": "class"}}


def summarize_objects(address: str | None = None, timeout: float = 30,
                      raise_on_missing_output: bool = True, _explain: bool = False) -> dict:
    """The objects of the store in one group (Ray groups by the call site that made each,
    which ember does not record: its key is "disabled", as Ray's when call sites are off):
    ``{"cluster": {"summary": {"disabled": {"total_objects", "total_size_mb",
    "total_num_workers", "total_num_nodes", "task_state_counts"}}, "total_objects",
    "total_size_mb", "callsite_enabled": False, "summary_by"}}``; the state counts are the
    objects' (SEALED, SPILLED, ...). Under the Ray backend: Ray's."""
    if _backend.active.name == "ray":
        return _ray("summarize_objects", address=address, timeout=timeout,
                    raise_on_missing_output=raise_on_missing_output, _explain=_explain)
    objects = _summary_rows("objects", _object_rows, address, timeout)
    states: dict[str, int] = {}
    for obj in objects:
        states[obj["state"]] = states.get(obj["state"], 0) + 1
    size_mb = sum(obj["object_size"] for obj in objects) / 2**20
    group = {"total_objects": len(objects), "total_size_mb": size_mb,
             "total_num_workers": len({obj["pid"] for obj in objects}),
             "total_num_nodes": 1 if objects else 0, "task_state_counts": states}
    return {"cluster": {"summary": {"disabled": group} if objects else {},
                        "total_objects": len(objects), "total_size_mb": size_mb,
                        "callsite_enabled": False, "summary_by": "callsite"}}
