"""The dashboard: a page in the browser showing what the node is doing.

``ember.init(include_dashboard=True)`` (or ``EMBER_DASHBOARD=1``) serves it from the driver at
http://127.0.0.1:8265 (Ray's port; the next free port if that one is taken), on a daemon
thread with the standard library's HTTP server. It is off by default because importing
``http.server`` alone takes ~30 ms, a third of ember's start-up.

Who may look (the node's logs, objects and task names are its user's data):

- It listens on 127.0.0.1 unless ``dashboard_host`` says otherwise (then with a warning).
- Every request needs the session's random token, as Jupyter's do: ``init`` prints and returns
  the URL ``http://127.0.0.1:8265/?token=...``; the first visit trades it for a cookie
  (HttpOnly, SameSite=Strict) and redirects to the bare URL so the token leaves the address
  bar. Scripts may send ``Authorization: Bearer <token>`` or ``?token=`` instead. Without it,
  any local process (another user's too) could read everything.
- The ``Host`` header must name a loopback address when the server listens on one: a web page
  that rebinds its own domain to 127.0.0.1 (DNS rebinding) is refused even before the token.
- It serves GET and HEAD only; nothing in it changes the node.

The page polls JSON endpoints, which are also the API for scripts:

    /api/summary         resources (total, available), store and scheduler counters, workers
    /api/objects         ember.util.state.list_objects()
    /api/actors          ember.util.state.list_actors()
    /api/tasks           ember.util.state.list_tasks() (not finished yet)
    /api/timeline        ember.timeline() (the last 2,000 events; ?all=1 for every one)
    /api/logs            the session's worker log files
    /api/logs/<file>     the last 200 lines of one (?lines=N)
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import secrets
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from ember import _objects
from ember import actor as _actor

DEFAULT_PORT = 8265

#: The actor that holds the node's metrics (ember.util.metrics): its name and namespace.
METRICS_ACTOR = ("ember_metrics_collector", "_ember")

#: Host names that mean this machine's loopback interface (checked against the Host header).
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Dashboard:
    """The HTTP server of one node (driver only)."""

    def __init__(self, node, host: str = "127.0.0.1", port: int = DEFAULT_PORT):
        self.node = node
        self.started = time.time()
        self.token = secrets.token_urlsafe(24)  # 192 random bits, new for every session
        self.loopback_only = _is_loopback(host)
        if not self.loopback_only:
            warnings.warn(
                f"the ember dashboard listens on {host}, so other machines can reach it; "
                "only its token (in the URL ember.init() printed) keeps them from reading your "
                "logs and objects, and it travels unencrypted over HTTP. Use the default "
                "dashboard_host='127.0.0.1' and an SSH tunnel instead.", stacklevel=6)
        handler = type("Handler", (_Handler,), {"dashboard": self})
        try:
            self.server = ThreadingHTTPServer((host, port), handler)
        except OSError as e:  # taken (another node's dashboard?): any free port
            self.server = ThreadingHTTPServer((host, 0), handler)
            if port != 0:
                warnings.warn(f"the ember dashboard cannot listen on port {port} ({e.strerror}); "
                              f"it uses port {self.server.server_address[1]} instead",
                              stacklevel=6)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.cookie = f"ember-token-{self.port}"  # per port: cookies are shared across ports
        shown = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{shown}:{self.port}"
        self.url = f"{self.base_url}/?token={self.token}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={
            "poll_interval": 0.2}, name="ember-dashboard", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    # --- what the endpoints return --------------------------------------------------------

    def summary(self) -> dict:
        node = self.node
        return {
            "node_id": node.info.node_id,
            "session_dir": node.session_dir,
            "uptime_s": round(time.time() - self.started, 1),
            "resources": {"total": node.cluster_resources(),
                          "available": node.available_resources()},
            "store": node.store.stats(),
            "scheduler": {k: v for k, v in node.scheduler.stats().items() if k != "available"},
            "workers": sorted(node.scheduler.worker_pids()),
        }

    def objects(self) -> list[dict]:
        return self.node.store.list_objects()

    def timeline(self, every: bool) -> list[dict]:
        events = self.node.timeline()
        return events if every else events[-2000:]

    def metrics(self) -> list[dict]:
        """ember.util.metrics' series, one row per metric and tag values (none if no process
        has made a metric)."""
        try:
            collector = _actor.get_actor(*METRICS_ACTOR)
        except ValueError:
            return []
        rows = []
        for name, metric in _objects.get(collector.snapshot.remote(), timeout=10).items():
            for tags, recorded in metric["series"].items():
                value = recorded[0] if metric["type"] == "gauge" else recorded  # (value, when)
                rows.append({"name": name, "type": metric["type"],
                             "description": metric["description"],
                             "tags": dict(zip(metric["tag_keys"], tags)), "value": value,
                             "boundaries": metric["boundaries"]})
        return rows

    def logs(self) -> list[dict]:
        log_dir = self.node.log_dir
        out = []
        for name in sorted(os.listdir(log_dir)):
            st = os.stat(os.path.join(log_dir, name))
            out.append({"name": name, "bytes": st.st_size, "modified": st.st_mtime})
        return out

    def log_tail(self, name: str, lines: int) -> str | None:
        if name not in os.listdir(self.node.log_dir):  # only the session's own files
            return None
        with open(os.path.join(self.node.log_dir, name), errors="replace") as f:
            return "".join(f.readlines()[-lines:])


class _Handler(BaseHTTPRequestHandler):
    dashboard: Dashboard

    def _host_ok(self) -> bool:
        """The Host header names this server's loopback address (or any name, when it listens
        on other interfaces: then the token alone guards it)."""
        host = self.headers.get("Host")
        if host is None:
            return False
        if not self.dashboard.loopback_only:
            return True
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return _is_loopback(name.strip("[]"))

    def _token_given(self, query: dict) -> str | None:
        """Where the request carries the token: "query", "header", "cookie", or None."""
        want = self.dashboard.token.encode()

        def same(value: str) -> bool:  # constant time: no guessing it byte by byte
            return hmac.compare_digest(value.encode(), want)

        if any(same(v) for v in query.get("token", [])):
            return "query"
        auth = self.headers.get("Authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() in ("bearer", "token") and same(value.strip()):
            return "header"
        for part in self.headers.get("Cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == self.dashboard.cookie and same(value):
                return "cookie"
        return None

    def _refuse_method(self) -> None:
        self._send(405, "text/plain", b"the ember dashboard only serves GET requests",
                   extra={"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse_method

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if not self._admitted(url, query):
            return
        try:
            self._serve(url.path, query)
        except Exception as e:  # noqa: BLE001 (e.g. the node is shutting down)
            self._send(503, "text/plain", f"{type(e).__name__}: {e}".encode())

    def _admitted(self, url, query) -> bool:
        """True if the request may be served; otherwise it has been answered already."""
        d = self.dashboard
        if not self._host_ok():
            self._send(403, "text/plain",
                       b"wrong Host header: open the dashboard at the URL ember.init() printed")
            return False
        given = self._token_given(query)
        if given is None:
            self._send(403, "text/plain; charset=utf-8", (
                "this ember dashboard needs its token: open the URL that ember.init() printed "
                f"({d.base_url}/?token=...), also in ember.init().dashboard_url").encode())
            return False
        if given == "query" and url.path in ("/", "/index.html"):
            # Trade the token for a cookie and drop it from the address bar (and history).
            self._send(303, "text/plain", b"", extra={
                "Location": "/",
                "Set-Cookie": f"{d.cookie}={d.token}; Path=/; HttpOnly; SameSite=Strict"})
            return False
        return True

    def _serve(self, path: str, query: dict) -> None:
        d = self.dashboard
        endpoints = {
            "/api/summary": d.summary,
            "/api/objects": d.objects,
            "/api/actors": d.node.scheduler.actors,
            "/api/tasks": d.node.scheduler.tasks,
            "/api/timeline": lambda: d.timeline(every=query.get("all") == ["1"]),
            "/api/logs": d.logs,
            "/api/metrics": d.metrics,
        }
        if path in ("/", "/index.html"):
            self._send(200, "text/html; charset=utf-8", _PAGE.encode())
        elif path in endpoints:
            self._json(endpoints[path]())
        elif path.startswith("/api/logs/"):
            lines = int(query.get("lines", ["200"])[0])
            text = d.log_tail(path[len("/api/logs/"):], lines)
            if text is None:
                self._send(404, "text/plain", b"no such log file")
            else:
                self._send(200, "text/plain; charset=utf-8", text.encode())
        else:
            self._send(404, "text/plain", b"not found")

    def _json(self, value) -> None:
        self._send(200, "application/json", json.dumps(value).encode())

    def _send(self, status: int, content_type: str, body: bytes,
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        # No framing by other sites, no sniffing of a log file into HTML, and no token in the
        # Referer of anything the page might link to.
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Security-Policy", "frame-ancestors 'none'")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format, *args) -> None:
        pass  # not into the user's terminal


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ember dashboard</title>
<style>
 body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
 h1 { font-size: 1.3em; margin: 0 0 .2em; } h2 { font-size: 1.05em; margin: 1.4em 0 .4em; }
 .muted { color: #777; } table { border-collapse: collapse; }
 td, th { padding: .2em .8em .2em 0; text-align: left; vertical-align: top; }
 th { border-bottom: 1px solid #ccc; }
 td.num { text-align: right; font-variant-numeric: tabular-nums; }
 .bar { background: #eee; width: 16em; height: .9em; display: inline-block; }
 .bar > span { background: #e8590c; height: 100%; display: block; }
 #timeline { position: relative; border: 1px solid #ddd; background: #fafafa; }
 #timeline div.ev { position: absolute; height: 14px; background: #e8590c; opacity: .8; }
 #timeline div.row { position: absolute; left: 0; font-size: 11px; color: #555; }
 pre { background: #f6f6f6; padding: .6em; max-height: 20em; overflow: auto; }
</style></head>
<body>
<h1>ember</h1><div class="muted" id="node"></div>
<h2>Resources</h2><table id="resources"></table>
<h2>Object store</h2><div id="store"></div>
<h2>Tasks</h2><table id="scheduler"></table>
<h2>Unfinished tasks <span class="muted">(first 200)</span></h2><table id="tasks"></table>
<h2>Timeline <span class="muted">(last 2,000 tasks; one row per worker)</span></h2>
<div id="timeline"></div>
<h2>Actors</h2><table id="actors"></table>
<h2>Objects</h2><table id="objects"></table>
<h2>Metrics</h2><table id="metrics"></table>
<h2>Worker logs</h2><table id="logs"></table><pre id="log" hidden></pre>
<script>
const fmt = n => n >= 1 << 30 ? (n / (1 << 30)).toFixed(2) + " GiB"
  : n >= 1 << 20 ? (n / (1 << 20)).toFixed(1) + " MiB"
  : n >= 1024 ? (n / 1024).toFixed(1) + " KiB" : n + " B";
const esc = s => String(s).replace(/[&<>]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;"}[c]));
const rows = (el, head, body) => { document.getElementById(el).innerHTML =
  "<tr>" + head.map(h => "<th>" + h + "</th>").join("") + "</tr>" +
  body.map(r => "<tr>" + r.map(c => "<td" + (typeof c === "number" ? " class=num" : "") +
    ">" + esc(c) + "</td>").join("") + "</tr>").join(""); };
async function get(path) { const r = await fetch(path); return r.json(); }
async function refresh() {
  const s = await get("/api/summary");
  document.getElementById("node").textContent = "node " + s.node_id + " · up " + s.uptime_s +
    " s · " + s.workers.length + " worker processes · " + s.session_dir;
  rows("resources", ["resource", "available", "total"], Object.keys(s.resources.total).map(
    k => [k, s.resources.available[k] ?? 0, s.resources.total[k]]));
  const st = s.store, used = st.used_bytes / st.capacity;
  document.getElementById("store").innerHTML = '<span class="bar"><span style="width:' +
    (100 * used).toFixed(1) + '%"></span></span> ' + fmt(st.used_bytes) + " of " +
    fmt(st.capacity) + " in " + st.num_objects + " objects · spilled " + st.spilled_objects +
    " (" + fmt(st.spilled_bytes) + ") · restores " + st.restores_total;
  rows("scheduler", ["counter", "value"], Object.entries(s.scheduler));
  const tasks = await get("/api/tasks");
  rows("tasks", ["task", "state", "worker pid", "running s"], tasks.slice(0, 200).map(
    t => [t.name, t.state, t.worker_pid || "", t.running_s ? t.running_s.toFixed(1) : ""]));
  const actors = await get("/api/actors");
  rows("actors", ["id", "class", "state", "pid", "waiting calls", "death"], actors.map(
    a => [a.actor_id, a.class_name, a.state, a.pid || "", a.pending_calls, a.death_cause]));
  const objs = await get("/api/objects");
  rows("objects", ["id", "state", "size", "refs", "pins", "owner pid"], objs.slice(0, 200).map(
    o => [o.object_id, o.state, fmt(o.size), o.ref_count, o.pin_count, o.owner_pid]));
  const metrics = await get("/api/metrics");
  rows("metrics", ["metric", "type", "tags", "value"], metrics.map(m => [m.name, m.type,
    Object.entries(m.tags).map(([k, v]) => k + "=" + v).join(" "),
    m.type === "histogram" ? m.value.counts.join(" / ") + " (sum " + m.value.sum + ")"
      : m.value]));
  drawTimeline(await get("/api/timeline"));
  const logs = await get("/api/logs");
  rows("logs", ["file", "size"], logs.map(l => [l.name, fmt(l.bytes)]));
  document.querySelectorAll("#logs td:first-child").forEach(td => {
    td.style.cursor = "pointer";
    td.onclick = async () => { const r = await fetch("/api/logs/" + td.textContent);
      const pre = document.getElementById("log"); pre.hidden = false;
      pre.textContent = await r.text(); };
  });
}
function drawTimeline(events) {
  const box = document.getElementById("timeline");
  if (!events.length) { box.textContent = "no task has finished yet"; box.style.height = "";
    return; }
  const tids = [...new Set(events.map(e => e.tid))].sort();
  const t0 = Math.min(...events.map(e => e.ts));
  const t1 = Math.max(...events.map(e => e.ts + e.dur));
  const width = box.clientWidth - 110, span = Math.max(t1 - t0, 1);
  box.style.height = (tids.length * 18 + 4) + "px";
  box.innerHTML = tids.map((t, i) => '<div class="row" style="top:' + (i * 18 + 2) + 'px">' +
    esc(t) + "</div>").join("") + events.map(e => '<div class="ev" title="' + esc(e.name) +
    " " + (e.dur / 1000).toFixed(2) + ' ms" style="top:' + (tids.indexOf(e.tid) * 18 + 2) +
    "px;left:" + (105 + (e.ts - t0) / span * width) + "px;width:" +
    Math.max(1, e.dur / span * width) + 'px"></div>').join("");
}
refresh(); setInterval(refresh, 2000);
</script></body></html>
"""
