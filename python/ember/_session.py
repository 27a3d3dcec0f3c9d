"""The session directory: where a node's logs and spill files live, private to its user.

    <root>/                      0700, owned by the user: /tmp/ember-<uid>, or $EMBER_TMPDIR,
    │                            or init(_temp_dir=...)
    ├── session_latest -> session_<time>_<pid>
    └── session_<time>_<pid>/    0700
        ├── logs/                0700; worker-<pid>.out|.err are 0600
        └── spill/               0700; spill-<n> files are 0600 (the user's data)

Why this shape (the threat is another local user, or a process of theirs):

- One root per user, not one shared ``/tmp/ember``: a shared root is created by whoever comes
  first, with their mode, and every later user's sessions live inside a directory a stranger
  owns.
- Not ``$XDG_RUNTIME_DIR``: it is a small tmpfs (logind gives it 10% of RAM), and spill files
  exist to move objects out of memory.
- The root is opened with ``O_NOFOLLOW | O_DIRECTORY`` and its owner and mode checked on that
  fd, so a symlink or directory another user planted at the name in the world-writable ``/tmp``
  is refused, not followed. Once the root is known to be ours and closed to others, nobody else
  can create, rename or remove anything below it, so the names inside are safe to use by path.
- Every directory is created 0700 and every file 0600 explicitly, whatever the umask.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import time

import psutil

#: How many ended sessions' directories are kept (their logs are what a user reads after a
#: crash); older ones are removed by the next ``init``.
KEEP_ENDED_SESSIONS = 5

_SESSION_NAME = re.compile(r"session_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_(\d+)(?:\.\d+)?")


def default_root() -> str:
    """``$EMBER_TMPDIR`` if set, else ``/tmp/ember-<uid>`` (one root per user)."""
    return os.environ.get("EMBER_TMPDIR") or f"/tmp/ember-{os.getuid()}"


class UnsafeDirectoryError(PermissionError):
    """The session root exists but another user could read or change what ember puts in it."""


def _open_root(root: str) -> int:
    """Creates `root` (0700) if missing and returns an fd on it, after checking on that fd that
    it is a real directory owned by this user that nobody else can write to."""
    parent = os.path.dirname(os.path.abspath(root))
    os.makedirs(parent, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(root, 0o700)
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise UnsafeDirectoryError(
            f"ember's session root {root} is not a directory (a symlink?): {e.strerror}. "
            "Remove it, or set EMBER_TMPDIR to a directory of your own.") from None
    st = os.fstat(fd)
    problem = None
    if st.st_uid != os.getuid():
        problem = f"it belongs to uid {st.st_uid}, not to you (uid {os.getuid()})"
    elif root == f"/tmp/ember-{os.getuid()}":
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.fchmod(fd, 0o700)  # our own default root (made by hand?): close it to others
    elif st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = f"others can write to it (mode {stat.S_IMODE(st.st_mode):o})"
    if problem is not None:
        os.close(fd)
        raise UnsafeDirectoryError(
            f"ember will not keep its session (logs, spilled objects) in {root}: {problem}, so "
            "another user could read or replace its files. Set EMBER_TMPDIR (or "
            "init(_temp_dir=...)) to a directory that only you can write to.")
    return fd


def new_session_dir(root: str | None = None) -> str:
    """Creates ``<root>/session_<time>_<pid>`` with ``logs/`` and ``spill/`` in it, all 0700,
    points ``<root>/session_latest`` at it and prunes old ended sessions. Returns its path."""
    root = os.path.abspath(root or default_root())
    root_fd = _open_root(root)
    try:
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime())
        base = f"session_{stamp}_{os.getpid()}"
        name = base
        for n in range(1, 1000):  # a fresh directory each time (init twice within a second)
            try:
                os.mkdir(name, 0o700, dir_fd=root_fd)
                break
            except FileExistsError:
                name = f"{base}.{n}"
        else:
            raise FileExistsError(f"cannot create a new session directory in {root}")
        path = os.path.join(root, name)
        for sub in ("logs", "spill"):
            os.mkdir(os.path.join(path, sub), 0o700)
        os.chmod(path, 0o700)  # mkdir's mode went through the umask; these go around it
        for sub in ("logs", "spill"):
            os.chmod(os.path.join(path, sub), 0o700)
        tmp = f"session_latest.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=root_fd)
        os.symlink(path, tmp, dir_fd=root_fd)
        # Atomic: a reader never sees the link missing.
        os.replace(tmp, "session_latest", src_dir_fd=root_fd, dst_dir_fd=root_fd)
        prune_session_dirs(root, keep=path)
        return path
    finally:
        os.close(root_fd)


def prune_session_dirs(root: str, keep: str) -> None:
    """Removes all but the newest KEEP_ENDED_SESSIONS directories of sessions whose driver
    has exited. A session whose driver is alive (another program's node) is never touched."""
    ended = []
    for entry in os.scandir(root):
        match = _SESSION_NAME.fullmatch(entry.name)
        if match is None or entry.path == keep or entry.is_symlink():
            continue
        if _driver_alive(entry.name, int(match.group(1))):
            continue
        ended.append(entry.name)  # names sort by start time
    ended.sort()
    for name in ended[:max(0, len(ended) - KEEP_ENDED_SESSIONS)]:
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def _driver_alive(name: str, pid: int) -> bool:
    """True if process `pid` runs and is older than the session `name` (else the pid was
    reused by a later process). This process's own earlier sessions have ended."""
    if pid == os.getpid():
        return False
    try:
        started = psutil.Process(pid).create_time()
    except psutil.Error:
        return False
    stamp = time.mktime(time.strptime(name[len("session_"):len("session_") + 19],
                                      "%Y-%m-%d_%H-%M-%S"))
    return started <= stamp + 1
