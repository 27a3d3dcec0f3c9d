"""Worker output in the driver: tails the workers' log files and prints each new line with a
``(task_name pid=N)`` prefix, as Ray does.

Workers write their stdout/stderr to ``<session>/logs/worker-<pid>.out|.err`` (the forkserver
redirects them) and mark each change of task name with a marker line, which is not printed.
"""

from __future__ import annotations

import os
import re
import sys
import threading

from ember._worker import LOG_MARKER

_NAME = re.compile(r"worker-(\d+)\.(out|err)$")


class _Tail:
    def __init__(self, path: str, pid: str, is_err: bool):
        self.path = path
        self.pid = pid
        self.is_err = is_err
        self.offset = 0
        self.partial = b""
        self.task = "worker"

    def lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        self.offset += len(data)
        data = self.partial + data
        *complete, self.partial = data.split(b"\n")
        out = []
        for raw in complete:
            line = raw.decode("utf-8", "replace")
            if line.startswith(LOG_MARKER):
                self.task = line[len(LOG_MARKER):]
                continue
            out.append(f"({self.task} pid={self.pid}) {line}")
        return out


class LogPrinter:
    """A daemon thread that polls the log directory every `period` seconds."""

    def __init__(self, log_dir: str, period: float = 0.05):
        self.log_dir = log_dir
        self.period = period
        self.tails: dict[str, _Tail] = {}
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ember-log-printer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop_event.wait(self.period):
            self.drain()

    def drain(self) -> None:
        try:
            names = os.listdir(self.log_dir)
        except OSError:
            return
        for name in names:
            m = _NAME.match(name)
            if m is None:
                continue
            tail = self.tails.get(name)
            if tail is None:
                tail = self.tails[name] = _Tail(os.path.join(self.log_dir, name), m.group(1),
                                                m.group(2) == "err")
            for line in tail.lines():
                stream = sys.stderr if tail.is_err else sys.stdout
                try:
                    stream.write(line + "\n")  # one write: less interleaving with the driver's
                    stream.flush()
                except (ValueError, OSError):  # the stream was closed under us
                    return

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=2)
        self.drain()
