"""Worker output in the driver: tails the workers' log files and prints each new line with a
``(task_name pid=N)`` prefix, as Ray does.

Workers write their stdout/stderr to ``<session>/logs/worker-<pid>.out|.err`` (the forkserver
redirects them) and mark each change of task name with a marker line, which is not printed.

A worker can write faster than a terminal shows (100 MB of output takes ~20 s to print here):
each poll reads at most READ_BYTES of a file, and a printer more than MAX_BEHIND behind skips
to the end, saying how much it skipped and where the whole output is. Its memory and its lag
stay bounded whatever the workers write; the log files keep everything.
"""

from __future__ import annotations

import os
import re
import sys
import threading

from ember._core import LOG_MARKER

_NAME = re.compile(r"worker-(\d+)\.(out|err)$")

#: Bytes of one file read per poll (20 polls a second), and how far behind a file's end the
#: printer may fall before it skips ahead.
READ_BYTES = 1 << 20
MAX_BEHIND = 8 << 20
#: A line longer than this is printed in pieces (a worker writing no newline at all).
MAX_LINE = 64 << 10


class _Tail:
    def __init__(self, path: str, pid: str, is_err: bool):
        self.path = path
        self.pid = pid
        self.is_err = is_err
        self.offset = 0
        self.partial = b""
        self.skip_to_newline = False
        self.task = "worker"

    def lines(self) -> list[str]:
        out = []
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size - self.offset > MAX_BEHIND:
                    skipped = size - READ_BYTES - self.offset
                    out.append(f"({self.task} pid={self.pid}) [ember: {skipped / 2**20:.1f} MiB "
                               f"of output skipped: printing cannot keep up; all of it is in "
                               f"{self.path}]")
                    self.offset = size - READ_BYTES
                    self.partial = b""
                    self.skip_to_newline = True
                f.seek(self.offset)
                data = f.read(READ_BYTES)
        except OSError:
            return out
        self.offset += len(data)
        if self.skip_to_newline:  # the rest of a line cut by a skip
            cut = data.find(b"\n")
            if cut < 0:
                return out
            data, self.skip_to_newline = data[cut + 1:], False
        data = self.partial + data
        *complete, self.partial = data.split(b"\n")
        if len(self.partial) > MAX_LINE:
            complete.append(self.partial)
            self.partial = b""
        for raw in complete:
            line = raw.decode("utf-8", "replace")
            if line.startswith(LOG_MARKER):
                self.task = line[len(LOG_MARKER):]
                continue
            out.append(f"({self.task} pid={self.pid}) {line}")
        return out

    def rest_of_line(self) -> list[str]:
        """The start of a line with no newline yet, once the file has stopped growing (a task's
        print(end=" ")): printed as a line of its own, as Ray prints it."""
        if not self.partial:
            return []
        line, self.partial = self.partial.decode("utf-8", "replace"), b""
        return [f"({self.task} pid={self.pid}) {line}"]


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
            entries = list(os.scandir(self.log_dir))
        except OSError:
            return
        for entry in entries:
            tail = self.tails.get(entry.name)
            if tail is None:
                m = _NAME.match(entry.name)
                if m is None:
                    continue
                tail = self.tails[entry.name] = _Tail(entry.path, m.group(1),
                                                      m.group(2) == "err")
            try:  # a stat, not an open, for the many files that did not grow (ended workers)
                grew = entry.stat().st_size != tail.offset
            except OSError:
                continue
            for line in tail.lines() if grew else tail.rest_of_line():
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
