"""ember.util.metrics: Ray's Counter, Gauge and Histogram, recorded in any process of the
node and added up by its collector (also on the dashboard)."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

import ember
from ember.util.metrics import Counter, Gauge, Histogram, snapshot


def eventually_snapshot(check, timeout=10.0) -> dict:
    """The collector's values once `check` holds (processes send theirs every 0.5 s)."""
    deadline = time.monotonic() + timeout
    while True:
        values = snapshot()
        if check(values):
            return values
        assert time.monotonic() < deadline, values
        time.sleep(0.1)


@ember.remote
def serve(route: str, seconds: float) -> None:
    Counter("requests", description="requests served", tag_keys=("route",)).inc(
        tags={"route": route})
    Histogram("latency_s", boundaries=[0.1, 1.0], tag_keys=("route",)).observe(
        seconds, tags={"route": route})
    time.sleep(0.6)  # past one flush: a worker kept for the next task still reports


def test_counters_and_histograms_add_up_across_processes_and_gauges_keep_the_last(node):
    ember.get([serve.remote("/", 0.05), serve.remote("/", 0.5), serve.remote("/a", 2.0)])
    Counter("requests", tag_keys=("route",)).inc(2, tags={"route": "/"})  # the driver too
    Gauge("queue_depth").set(3)
    Gauge("queue_depth").set(1)

    def complete(values):
        series = values.get("requests", {}).get("series", {})
        return series.get(("/",)) == 4 and series.get(("/a",)) == 1 and "queue_depth" in values

    values = eventually_snapshot(complete)
    assert values["requests"]["type"] == "counter"
    assert values["requests"]["description"] == "requests served"
    latency = values["latency_s"]["series"]
    assert latency[("/",)] == {"counts": [1, 1, 0], "sum": pytest.approx(0.55)}
    assert latency[("/a",)]["counts"] == [0, 0, 1]
    assert values["queue_depth"]["series"][()][0] == 1


def test_names_tags_and_values_are_checked_as_in_ray(node):
    with pytest.raises(ValueError, match="Empty name"):
        Counter("")
    with pytest.raises(TypeError, match="tag_keys should be a tuple"):
        Counter("c", tag_keys=["route"])
    counter = Counter("c", tag_keys=("route",))
    with pytest.raises(ValueError, match="Missing value for tag key"):
        counter.inc()
    with pytest.raises(ValueError, match="Unrecognized tag key"):
        counter.inc(tags={"route": "/", "other": "x"})
    with pytest.raises(ValueError, match="value must be >0"):
        counter.inc(0, tags={"route": "/"})
    counter.set_default_tags({"route": "/"}).inc()  # the default fills the tag in
    with pytest.raises(ValueError, match="boundaries"):
        Histogram("h", boundaries=[])
    with pytest.raises(ValueError, match="strictly increasing"):
        Histogram("h", boundaries=[2.0, 1.0])
    with pytest.raises(ValueError, match="already a counter"):
        Gauge("c")


def test_the_dashboard_shows_the_metrics():
    info = ember.init(num_cpus=1, include_dashboard=True, dashboard_port=0)
    try:
        Gauge("temperature", tag_keys=("room",)).set(21.5, tags={"room": "lab"})
        eventually_snapshot(lambda values: "temperature" in values)
        url = info.dashboard_url.replace("/?token=", "/api/metrics?token=")
        with urllib.request.urlopen(url, timeout=10) as response:
            rows = json.loads(response.read())
        assert {"name": "temperature", "type": "gauge", "tags": {"room": "lab"},
                "value": 21.5} in [{k: r[k] for k in ("name", "type", "tags", "value")}
                                   for r in rows]
    finally:
        ember.shutdown()
