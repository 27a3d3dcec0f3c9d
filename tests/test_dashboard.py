"""The dashboard: its JSON endpoints and page, served by the driver while the node runs."""

from __future__ import annotations

import functools
import http.client
import json
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import numpy as np
import pytest

import ember

from .conftest import STORE_BYTES


def fetch(url: str, token: str | None = None, **headers) -> bytes:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
        return r.read()


def status_of(url: str, method: str = "GET", **headers) -> int:
    """The HTTP status of one request (redirects not followed)."""
    conn = http.client.HTTPConnection(urlsplit(url).netloc, timeout=10)
    try:
        conn.request(method, urlsplit(url).path + ("?" + urlsplit(url).query
                                                    if urlsplit(url).query else ""),
                     headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


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
        url, token = info.dashboard_url.split("/?token=")
        assert url.startswith("http://127.0.0.1:")
        get = functools.partial(fetch, token=token)
        ref = ember.put(np.ones(1000))
        assert ember.get(shout.remote("ember")) == "EMBER"
        keeper = Keeper.remote()
        assert ember.get(keeper.ping.remote()) == "pong"

        summary = json.loads(get(url + "/api/summary"))
        assert summary["resources"]["total"]["CPU"] == 2.0
        assert summary["store"]["capacity"] == STORE_BYTES
        assert summary["workers"] and summary["node_id"] == info.node_id

        deadline = time.monotonic() + 5  # nothing unfinished (once the last is marked done)
        while json.loads(get(url + "/api/tasks")):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        actors = json.loads(get(url + "/api/actors"))
        assert [(a["class_name"], a["state"]) for a in actors] == [("Keeper", "ALIVE")]

        objects = json.loads(get(url + "/api/objects"))
        assert ref.hex() in {o["object_id"] for o in objects}

        deadline = time.monotonic() + 5
        while not any(e["name"] == "shout" for e in json.loads(get(url + "/api/timeline"))):
            assert time.monotonic() < deadline
            time.sleep(0.05)

        logs = json.loads(get(url + "/api/logs"))
        out = [entry["name"] for entry in logs if entry["name"].endswith(".out")]
        assert any(b"the word is ember" in get(f"{url}/api/logs/{name}") for name in out)
        with pytest.raises(urllib.error.HTTPError) as bad:  # only the session's own files
            get(url + "/api/logs/..%2F..%2Fetc%2Fpasswd")
        assert bad.value.code == 404

        page = get(url + "/").decode()
        assert "<title>ember dashboard</title>" in page and "/api/summary" in page
    finally:
        ember.shutdown()
    with pytest.raises(urllib.error.URLError):  # gone with the node
        fetch(url + "/api/summary")
    assert not [t for t in threading.enumerate() if t.name == "ember-dashboard"]


def test_every_request_needs_the_token_and_a_loopback_host(capfd):
    info = ember.init(num_cpus=1, object_store_memory=STORE_BYTES, include_dashboard=True,
                      dashboard_port=0, log_to_driver=False)
    try:
        assert capfd.readouterr().err.count(info.dashboard_url) == 1  # printed once
        url, token = info.dashboard_url.split("/?token=")
        assert len(token) >= 32
        paths = ["/", "/api/summary", "/api/objects", "/api/logs", "/api/logs/worker-1.out"]
        for path in paths:  # no token, a wrong one, one of the right length
            assert status_of(url + path) == 403
            assert status_of(url + path, Authorization="Bearer nope") == 403
            assert status_of(url + path, Cookie="ember-token-1=" + token) == 403
            assert status_of(f"{url}{path}?token={token[::-1]}") == 403
            assert status_of(url + path, Authorization=f"Bearer {token}") in (200, 404)
        assert status_of(f"{url}/api/summary?token={token}") == 200
        # The printed URL trades its token for a cookie and redirects to the bare page.
        conn = http.client.HTTPConnection(urlsplit(url).netloc, timeout=10)
        conn.request("GET", f"/?token={token}")
        first = conn.getresponse()
        assert first.status == 303 and first.getheader("Location") == "/"
        cookie = first.getheader("Set-Cookie")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        conn.close()
        assert b"/api/summary" in fetch(url + "/", Cookie=cookie.split(";")[0])
        # A page whose domain rebinds to 127.0.0.1 sends its own name as Host: refused even
        # with the token (a browser would not have it, but no page should get this far).
        assert status_of(url + "/api/summary", Host="attacker.example:8265",
                         Authorization=f"Bearer {token}") == 403
        assert status_of(url + "/api/summary", Host=f"localhost:{urlsplit(url).port}",
                         Authorization=f"Bearer {token}") == 200
        for method in ("POST", "PUT", "DELETE"):  # nothing can change the node
            assert status_of(url + "/api/actors", method,
                             Authorization=f"Bearer {token}") == 405
    finally:
        ember.shutdown()


def test_a_token_is_new_every_session_and_a_public_host_warns():
    with pytest.warns(UserWarning, match="listens on 0.0.0.0, so other machines can reach"):
        info = ember.init(num_cpus=1, object_store_memory=STORE_BYTES, include_dashboard=True,
                          dashboard_host="0.0.0.0", dashboard_port=0, log_to_driver=False)
    try:
        url, token = info.dashboard_url.split("/?token=")
        port = urlsplit(url).port
        local = f"http://127.0.0.1:{port}"
        assert status_of(local + "/api/summary") == 403  # still the token, on every host
        assert status_of(local + "/api/summary", Host=f"my-machine:{port}",
                         Authorization=f"Bearer {token}") == 200
    finally:
        ember.shutdown()
    second = ember.init(num_cpus=1, object_store_memory=STORE_BYTES, include_dashboard=True,
                        dashboard_port=0, log_to_driver=False)
    try:
        assert second.dashboard_url.split("/?token=")[1] != token
    finally:
        ember.shutdown()


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
