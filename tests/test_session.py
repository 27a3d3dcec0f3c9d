"""The session directory is private to its user: modes, planted symlinks and roots, and a
second local user running ember at the same time."""

from __future__ import annotations

import os
import pathlib
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

import ember
from ember._session import UnsafeDirectoryError

from .conftest import STORE_BYTES


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@ember.remote
def speak():
    print("a private line")
    return os.getpid()


def test_every_directory_is_0700_and_every_file_0600(tmp_path):
    root = tmp_path / "root"
    ember.init(num_cpus=1, object_store_memory=32 << 20, _temp_dir=str(root),
               _system_config={"object_spilling_threshold": 1.0})
    try:
        node = ember._node.current()
        pid = ember.get(speak.remote())
        refs = [ember.put(np.ones(1 << 20)) for _ in range(8)]  # 64 MiB into 32: spills
        assert os.listdir(node.spill_dir)
        dirs = [root, node.session_dir, node.log_dir, node.spill_dir]
        files = [os.path.join(node.log_dir, f"worker-{pid}.out")] + [
            os.path.join(node.spill_dir, f) for f in os.listdir(node.spill_dir)]
        assert {str(d): mode(d) for d in dirs} == {str(d): 0o700 for d in dirs}
        assert {f: mode(f) for f in files} == {f: 0o600 for f in files}
        assert os.readlink(root / "session_latest") == node.session_dir
        del refs
    finally:
        ember.shutdown()


def test_the_default_root_is_per_user(monkeypatch):
    monkeypatch.delenv("EMBER_TMPDIR", raising=False)
    assert ember._session.default_root() == f"/tmp/ember-{os.getuid()}"
    monkeypatch.setenv("EMBER_TMPDIR", "/somewhere/else")
    assert ember._session.default_root() == "/somewhere/else"


def test_a_root_planted_as_a_symlink_is_refused_not_followed(tmp_path, monkeypatch):
    target = tmp_path / "attackers"
    target.mkdir()
    (tmp_path / "root").symlink_to(target)
    monkeypatch.setenv("EMBER_TMPDIR", str(tmp_path / "root"))
    with pytest.raises(UnsafeDirectoryError, match="not a directory .a symlink"):
        ember.init(num_cpus=1, object_store_memory=STORE_BYTES)
    assert not ember.is_initialized()
    assert os.listdir(target) == []


def test_a_root_others_can_write_to_is_refused(tmp_path):
    root = tmp_path / "shared"
    root.mkdir()
    root.chmod(0o1777)
    with pytest.raises(UnsafeDirectoryError, match="others can write to it .mode 1777"):
        ember.init(num_cpus=1, object_store_memory=STORE_BYTES, _temp_dir=str(root))
    assert os.listdir(root) == []


def _other_user() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("needs root, to run a second user's process")
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' to act as the second user")


def test_a_root_another_user_owns_is_refused(tmp_path):
    other = _other_user()
    root = tmp_path / "theirs"
    root.mkdir(mode=0o700)
    os.chown(root, other.pw_uid, other.pw_gid)
    with pytest.raises(UnsafeDirectoryError, match=f"belongs to uid {other.pw_uid}, not to you"):
        ember.init(num_cpus=1, object_store_memory=STORE_BYTES, _temp_dir=str(root))


@pytest.fixture
def shared_dir():
    """A directory the other user can read (pytest's tmp_path is under a 0700 directory)."""
    path = tempfile.mkdtemp(prefix="ember-test-")
    os.chmod(path, 0o755)
    yield pathlib.Path(path)
    shutil.rmtree(path, ignore_errors=True)


def _python_for(user: pwd.struct_passwd, shared: pathlib.Path) -> tuple[list[str], dict]:
    """A command line and environment that run this ember as `user`. This interpreter may sit
    where `user` cannot reach it (pyenv under /root); then the system's Python of the same
    version runs a package dir of links to ember's sources and built module."""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/", "EMBER_TMPDIR": ""}
    # The probe starts a child of the interpreter too, as a node starts its forkserver: the
    # first exec can succeed where a second one is refused (setpriv keeps what the first
    # exec may reach, not what its children may).
    probe = [sys.executable, "-c",
             "import subprocess, sys; "
             "subprocess.run([sys.executable, '-c', 'import ember'], check=True)"]
    as_user = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to run a process as another user")
    if subprocess.run(as_user + probe, capture_output=True, check=False).returncode == 0:
        return as_user + [sys.executable], env
    system = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    if not os.access(system, os.X_OK):
        pytest.skip(f"{user.pw_name} cannot run {sys.executable} and there is no {system}")
    pkg = shared / "site" / "ember"
    pkg.mkdir(parents=True)
    for base in (os.path.dirname(ember.__file__), os.path.dirname(ember._core.__file__)):
        for name in os.listdir(base):
            if not (pkg / name).exists() and not name.startswith("__pycache__"):
                (pkg / name).symlink_to(os.path.join(base, name))
    site = [p for p in sys.path if p.endswith("site-packages")]
    for d in (shared / "site", pkg):
        os.chmod(d, 0o755)
    env["PYTHONPATH"] = os.pathsep.join([str(shared / "site"), *site])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if subprocess.run(as_user + [system, "-c", "import ember, numpy"], env=env,
                      capture_output=True, check=False).returncode != 0:
        pytest.skip(f"{user.pw_name} cannot import ember and numpy with {system}")
    return as_user + [system], env


def test_two_users_run_ember_at_once_and_neither_reads_the_others_files(shared_dir):
    other = _other_user()
    python, env = _python_for(other, shared_dir)
    ember.init(num_cpus=1, object_store_memory=STORE_BYTES, log_to_driver=False)
    try:
        node = ember._node.current()
        pid = ember.get(speak.remote())
        my_log = os.path.join(node.log_dir, f"worker-{pid}.out")
        # The second user runs a node of their own while ours runs, then tries our files.
        code = textwrap.dedent(f"""
            import os, ember
            info = ember.init(num_cpus=1, object_store_memory=32 << 20, log_to_driver=False)

            @ember.remote
            def whoami():
                print("the other user's line")
                return os.getuid()

            print("uid", ember.get(whoami.remote()), flush=True)
            print("session", info.session_dir, flush=True)
            for path in ({str(node.session_dir)!r}, {node.log_dir!r}, {my_log!r}):
                try:
                    open(path).read() if path.endswith(".out") else os.listdir(path)
                    print("read", path, flush=True)
                except PermissionError:
                    print("denied", path, flush=True)
            ember.shutdown()
            """)
        done = subprocess.run(python + ["-c", code], env=env, capture_output=True, text=True,
                              timeout=60, cwd="/", check=False)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0] == f"uid {other.pw_uid}"
        theirs = lines[1].split(" ", 1)[1]
        assert theirs.startswith(f"/tmp/ember-{other.pw_uid}/session_")
        assert lines[2:] == [f"denied {p}" for p in (node.session_dir, node.log_dir, my_log)]
        assert os.stat(theirs).st_uid == other.pw_uid and mode(theirs) == 0o700
        assert ember.get(speak.remote()) == pid  # ours kept working meanwhile
        with open(my_log) as f:
            assert "the other user's line" not in f.read()
    finally:
        ember.shutdown()
