"""The dashboard: its JSON endpoints and page, served by the driver while the node runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

import ember

from .conftest import STORE_BYTES


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


@ember.remote
class Keeper:
    def ping(self):
        return "pong"


@ember.remote
def shout(word):
    print(f"the word is {word}")
    return word.upper()


def test_the_dashboard_shows_resources_objects_tasks_and_logs():
    info = ember.init(num_cpus=2, object_store_memory=STORE_BYTES, include_dashboard=True,
                      dashboard_port=0, log_to_driver=False)
    try:
        url = info.dashboard_url
        assert url.startswith("http://127.0.0.1:")
        ref = ember.put(np.ones(1000))
        assert ember.get(shout.remote("ember")) == "EMBER"
        keeper = Keeper.remote()
        assert ember.get(keeper.ping.remote()) == "pong"

        summary = json.loads(fetch(url + "/api/summary"))
        assert summary["resources"]["total"]["CPU"] == 2.0
        assert summary["store"]["capacity"] == STORE_BYTES
        assert summary["workers"] and summary["node_id"] == info.node_id

        deadline = time.monotonic() + 5  # nothing unfinished (once the last is marked done)
        while json.loads(fetch(url + "/api/tasks")):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        actors = json.loads(fetch(url + "/api/actors"))
        assert [(a["class_name"], a["state"]) for a in actors] == [("Keeper", "ALIVE")]

        objects = json.loads(fetch(url + "/api/objects"))
        assert ref.hex() in {o["object_id"] for o in objects}

        deadline = time.monotonic() + 5
        while not any(e["name"] == "shout" for e in json.loads(fetch(url + "/api/timeline"))):
            assert time.monotonic() < deadline
            time.sleep(0.05)

        logs = json.loads(fetch(url + "/api/logs"))
        out = [entry["name"] for entry in logs if entry["name"].endswith(".out")]
        assert any(b"the word is ember" in fetch(f"{url}/api/logs/{name}") for name in out)
        with pytest.raises(urllib.error.HTTPError) as bad:  # only the session's own files
            fetch(url + "/api/logs/..%2F..%2Fetc%2Fpasswd")
        assert bad.value.code == 404

        page = fetch(url + "/").decode()
        assert "<title>ember dashboard</title>" in page and "/api/summary" in page
    finally:
        ember.shutdown()
    with pytest.raises(urllib.error.URLError):  # gone with the node
        fetch(url + "/api/summary")
    assert not [t for t in threading.enumerate() if t.name == "ember-dashboard"]


def test_no_dashboard_unless_asked():
    info = ember.init(num_cpus=1, object_store_memory=STORE_BYTES)
    try:
        assert info.dashboard_url is None
    finally:
        ember.shutdown()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_the_page_renders_the_node_in_a_real_browser():
    info = ember.init(num_cpus=2, object_store_memory=STORE_BYTES, include_dashboard=True,
                      dashboard_port=0, log_to_driver=False)
    try:
        ref = ember.put(np.ones(1000))
        keeper = Keeper.remote()
        assert ember.get(keeper.ping.remote()) == "pong"
        assert ember.get([shout.remote(str(i)) for i in range(8)])[0] == "0"
        time.sleep(0.2)  # the last task's record is freed just after its result
        dom = subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
             "--virtual-time-budget=5000", "--dump-dom", info.dashboard_url],
            capture_output=True, text=True, timeout=60, check=True).stdout
    finally:
        ember.shutdown()
    # What the page's script filled in from the endpoints:
    assert f"node {info.node_id}" in dom
    assert ref.hex() in dom  # the objects table
    assert "<td>Keeper</td><td>ALIVE</td>" in dom  # the actors table
    assert 'class="ev" title="shout' in dom  # the timeline's bars
    assert "worker-" in dom and ".out</td>" in dom  # the log files
