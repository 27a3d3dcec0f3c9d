"""The forkserver: a clean interpreter that forks the node's worker processes.

    driver ──spawn ring (segment)──► forkserver ──fork()──► worker (runs ember._worker.main)
           ◄── WorkerSlot.state=EXITED + doorbell ── (reaps children, reports how they died)

- Started once per node by the driver (``python -m ember._forkserver``) with the segment's fd
  and a pipe whose write end only the driver holds: when the driver dies, however it dies,
  the pipe reads EOF and the forkserver kills every worker and exits.
- It imports what tasks usually need (ember, then numpy and cloudpickle once the first workers
  are forked), so a worker starts in milliseconds and shares those pages with its siblings.
- Workers set PR_SET_PDEATHSIG, so they also die if the forkserver itself is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import select
import signal
import sys

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _start_worker(store_fd: int, slot: int, log_dir: str, forkserver_pid: int) -> int:
    # Everything the forkserver has imported moves to the GC's permanent generation, so the
    # child's collections never walk (and so copy-on-write copy) those pages.
    gc.freeze()
    pid = os.fork()
    if pid != 0:
        return pid
    # The child: a worker. Never return into the forkserver's loop.
    try:
        _die_with_parent()
        if os.getppid() != forkserver_pid:  # the forkserver died before prctl took effect
            os._exit(1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        from ember import _worker  # noqa: PLC0415 (imported by the parent already)

        me = os.getpid()
        for fd, suffix in ((1, "out"), (2, "err")):
            # 0600: a task's output is its user's business (the directory is 0700 as well).
            log = os.open(_worker.log_path(log_dir, me, suffix),
                          os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
            os.dup2(log, fd)
            os.close(log)
        _worker.main(store_fd, slot, log_dir)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 (report anything, then exit)
        import traceback  # noqa: PLC0415

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:  # noqa: BLE001, S110
            pass
    os._exit(code)


def _preload_actor_runtime() -> None:
    """What every actor's process imports (asyncio, concurrent.futures, cloudpickle for its
    class): ~50 ms of CPU per actor when each imports it itself (100 actors right after init
    took 1.7-3.2 s), so the forkserver imports it before it forks the first actor."""
    from ember import _actor_runtime, _pickle  # noqa: F401, PLC0415


def _preload() -> None:
    """What most tasks need, imported once here so later workers share it (copy-on-write)."""
    import numpy  # noqa: F401, PLC0415

    _preload_actor_runtime()


def main(store_fd: int, driver_pipe: int, log_dir: str, spill_dir: str = "") -> None:
    from ember import _core, _worker  # noqa: F401, PLC0415

    # The first workers are forked before numpy and cloudpickle are imported, so the first
    # result does not wait for them (~100 ms); workers forked later inherit them preloaded.
    preloaded = False

    store = _core.Store.attach(store_fd)
    me = os.getpid()
    workers: dict[int, int] = {}  # pid -> slot

    def reap() -> None:
        while workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = workers.pop(pid, None)
            if slot is not None:
                _core.report_exit(store, slot, pid, status)

    try:
        while True:
            request = _core.pop_spawn(store, 20)
            if request is not None:
                slot, _generation, for_actor = request
                if for_actor:
                    _preload_actor_runtime()  # once: a no-op after the first
                workers[_start_worker(store_fd, slot, log_dir, me)] = slot
            elif not preloaded:
                _preload()
                preloaded = True
            reap()
            readable, _, _ = select.select([driver_pipe], [], [], 0)
            if readable and not os.read(driver_pipe, 1):
                break  # EOF: the driver is gone (or shut down)
            if _core.shutting_down(store) and not workers:
                break
    finally:
        if spill_dir:  # spill files die with the node, however the driver went
            import shutil  # noqa: PLC0415

            shutil.rmtree(spill_dir, ignore_errors=True)
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for _ in list(workers):
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break


if __name__ == "__main__":
    sys.path[:0] = [p for p in os.environ.pop("EMBER_SYS_PATH", "").split(os.pathsep) if p]
    from ember import _alias

    if os.environ.get(_alias.ALIAS_ENV) == "1":  # the program called ember.as_ray()
        _alias.install()
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], *sys.argv[4:5])
