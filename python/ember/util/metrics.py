"""ember.util.metrics: a program's own metrics (Ray's ``ray.util.metrics``): Counter, Gauge
and Histogram, recorded in the driver, tasks and actors, and shown on the dashboard
(``/api/metrics``) and by ``snapshot()``.

    requests = Counter("requests", description="requests served", tag_keys=("route",))
    requests.inc(tags={"route": "/"})

- Each process keeps its own values and sends them, at most every half second and only when
  they changed, to one collector actor of the node (zero CPUs, started by the first metric
  made, in ember's own namespace); the collector adds counters and histograms up across
  processes and keeps each gauge's last value. A process killed mid-interval loses what it
  recorded in its last half second.
- Names, tag keys and values are checked as Ray checks them, where the call is made.
- Under the Ray backend each metric is Ray's own (``ray.util.metrics``), exported by Ray.
"""

from __future__ import annotations

import atexit
import os
import re
import threading
import time
from typing import Any

from ember import _backend, _node, api
from ember.dashboard import METRICS_ACTOR

__all__ = ["Counter", "Gauge", "Histogram", "snapshot"]

#: Prometheus' rule for metric names, which Ray exports to.
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_FLUSH_SECONDS = 0.5


class _Collector:
    """The node's metrics: each process's latest values, added up on request."""

    def __init__(self):
        self.by_process: dict[int, dict] = {}

    def report(self, pid: int, values: dict) -> None:
        self.by_process[pid] = values

    def snapshot(self) -> dict:
        out: dict[str, dict] = {}
        for values in self.by_process.values():
            for name, metric in values.items():
                merged = out.setdefault(name, {k: v for k, v in metric.items() if k != "series"}
                                        | {"series": {}})
                for tags, value in metric["series"].items():
                    merged["series"][tags] = _merge(metric["type"], merged["series"].get(tags),
                                                    value)
        return out


def _merge(kind: str, old, new):
    if old is None:
        return new
    if kind == "counter":
        return old + new
    if kind == "gauge":  # the value set last, by any process
        return new if new[1] >= old[1] else old
    return {"counts": [a + b for a, b in zip(old["counts"], new["counts"])],
            "sum": old["sum"] + new["sum"]}


class _Recorder:
    """This process's values, and the thread that sends them to the collector."""

    def __init__(self):
        self.lock = threading.Lock()
        self.metrics: dict[str, dict] = {}
        self.dirty = False
        self.collector = None  # (the node's tag, its collector's handle)
        self.thread: threading.Thread | None = None

    def declare(self, name: str, kind: str, description: str, tag_keys: tuple,
                boundaries: list | None) -> None:
        with self.lock:
            known = self.metrics.get(name)
            if known is not None and known["type"] != kind:
                raise ValueError(f"metric {name!r} is already a {known['type']} in this process")
            if known is None:
                self.metrics[name] = {"type": kind, "description": description,
                                      "tag_keys": list(tag_keys), "boundaries": boundaries,
                                      "series": {}}
            if self.thread is None:
                self.thread = threading.Thread(target=self._flush_loop, name="ember-metrics",
                                               daemon=True)
                self.thread.start()
                atexit.register(self.flush)

    def record(self, name: str, tags: tuple, update) -> None:
        with self.lock:
            series = self.metrics[name]["series"]
            series[tags] = update(series.get(tags))
            self.dirty = True

    def _flush_loop(self) -> None:
        while True:
            time.sleep(_FLUSH_SECONDS)
            try:
                self.flush()
            except Exception:  # noqa: BLE001 (the node is going away: look again next time)
                self.collector = None

    def flush(self) -> None:
        if not self.dirty or not api.is_initialized() or _backend.active.name == "ray":
            return
        with self.lock:
            values = {name: {**m, "series": dict(m["series"])} for name, m in self.metrics.items()}
            self.dirty = False
        node = _node.current().store.node_tag
        if self.collector is None or self.collector[0] != node:  # a new node: its collector
            self.collector = (node, _collector())
        api.get(self.collector[1].report.remote(os.getpid(), values))


_recorder = _Recorder()


def _collector():
    name, namespace = METRICS_ACTOR
    return api.remote(_Collector).options(
        name=name, namespace=namespace, get_if_exists=True, lifetime="detached", num_cpus=0
    ).remote()


def snapshot() -> dict[str, dict]:
    """The node's metrics as the collector has them: name -> {"type", "description",
    "tag_keys", "boundaries", "series": {tag values: value}} (a counter's total, a gauge's
    (value, time set), a histogram's {"counts" per bucket, "sum"}). Driver, tasks, actors."""
    _recorder.flush()
    return api.get(_collector().snapshot.remote())


class Metric:
    """A named metric with tag keys (Ray's base class)."""

    _kind = ""

    def __init__(self, name: str, description: str = "", tag_keys: tuple | None = None):
        if not name:
            raise ValueError("Empty name is not allowed. Please provide a metric name.")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"Invalid metric name {name!r}: letters, digits, '_' and ':' "
                             "only, not starting with a digit (Prometheus' rule)")
        tag_keys = () if tag_keys is None else tag_keys
        if not isinstance(tag_keys, tuple):
            raise TypeError(f"tag_keys should be a tuple type, got: {type(tag_keys)}")
        for key in tag_keys:
            if not isinstance(key, str):
                raise TypeError(f"Tag keys must be str, got {type(key)}.")
        self._name, self._description, self._tag_keys = name, description, tag_keys
        self._default_tags: dict[str, str] = {}
        self._ray = None
        if _backend.active.name == "ray":
            self._ray = self._ray_metric()
        else:
            _recorder.declare(name, self._kind, description, tag_keys, self._boundaries())

    def _ray_metric(self):
        from ray.util import metrics as ray_metrics  # noqa: PLC0415 (Ray is optional)

        cls = getattr(ray_metrics, type(self).__name__)
        return cls(self._name, description=self._description, tag_keys=self._tag_keys)

    def _boundaries(self) -> list | None:
        return None

    @property
    def info(self) -> dict[str, Any]:
        return {"name": self._name, "description": self._description,
                "tag_keys": self._tag_keys, "default_tags": self._default_tags}

    def set_default_tags(self, default_tags: dict[str, str]) -> Metric:
        """Tags used when a record does not give them."""
        for key, value in default_tags.items():
            if key not in self._tag_keys:
                raise ValueError(f"Unrecognized tag key {key}.")
            if not isinstance(value, str):
                raise TypeError(f"Tag values must be str, got {type(value)}.")
        self._default_tags = dict(default_tags)
        if self._ray is not None:
            self._ray.set_default_tags(default_tags)
        return self

    def _series(self, tags: dict[str, str] | None) -> tuple:
        merged = {**self._default_tags, **(tags or {})}
        for key, value in merged.items():
            if key not in self._tag_keys:
                raise ValueError(f"Unrecognized tag key {key}.")
            if not isinstance(value, str):
                raise TypeError(f"Tag values must be str, got {type(value)}.")
        missing = [key for key in self._tag_keys if key not in merged]
        if missing:
            raise ValueError(f"Missing value for tag key(s): {','.join(missing)}.")
        return tuple(merged[key] for key in self._tag_keys)


def _number(value, what: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{what} must be a number, got {type(value)}")
    return float(value)


class Counter(Metric):
    """A total that only grows: ``inc(value=1.0, tags=None)``."""

    _kind = "counter"

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        value = _number(value, "value")
        if value <= 0:
            raise ValueError(f"value must be >0, got {value}")
        series = self._series(tags)
        if self._ray is not None:
            return self._ray.inc(value, tags)
        _recorder.record(self._name, series, lambda old: (old or 0.0) + value)
        return None


class Gauge(Metric):
    """A value that goes up and down: ``set(value, tags=None)``."""

    _kind = "gauge"

    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        value = _number(value, "value")
        series = self._series(tags)
        if self._ray is not None:
            return self._ray.set(value, tags)
        now = time.time()
        _recorder.record(self._name, series, lambda old: (value, now))
        return None


class Histogram(Metric):
    """Observations counted in buckets: ``observe(value, tags=None)``; `boundaries` are the
    buckets' upper bounds (a last bucket holds what is above them all)."""

    _kind = "histogram"

    def __init__(self, name: str, description: str = "", boundaries: list | None = None,
                 tag_keys: tuple | None = None):
        if not boundaries:
            raise ValueError("boundaries must be a non-empty list of increasing positive "
                             "numbers")
        if any(not isinstance(b, (int, float)) or b <= 0 for b in boundaries):
            raise ValueError(f"Invalid `boundaries` argument at {boundaries}: all must be "
                             "positive numbers")
        if list(boundaries) != sorted(set(boundaries)):
            raise ValueError(f"boundaries must be strictly increasing, got {boundaries}")
        self._bounds = [float(b) for b in boundaries]
        super().__init__(name, description, tag_keys)

    def _ray_metric(self):
        from ray.util import metrics as ray_metrics  # noqa: PLC0415 (Ray is optional)

        return ray_metrics.Histogram(self._name, description=self._description,
                                     boundaries=self._bounds, tag_keys=self._tag_keys)

    def _boundaries(self) -> list | None:
        return self._bounds

    def observe(self, value: float, tags: dict[str, str] | None = None) -> None:
        value = _number(value, "value")
        series = self._series(tags)
        if self._ray is not None:
            return self._ray.observe(value, tags)
        bucket = next((i for i, b in enumerate(self._bounds) if value <= b), len(self._bounds))

        def update(old):
            counts = list(old["counts"]) if old else [0] * (len(self._bounds) + 1)
            counts[bucket] += 1
            return {"counts": counts, "sum": (old["sum"] if old else 0.0) + value}

        _recorder.record(self._name, series, update)
        return None

    @property
    def info(self) -> dict[str, Any]:
        return {**super().info, "boundaries": self._bounds}
