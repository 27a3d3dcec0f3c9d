"""``ember run``: runs a program written for Ray, with ``import ray`` resolved to ember.

    ember run script.py [args...]     # or: python -m ember run script.py [args...]
    ember run -m pytest tests/        # a module, as python -m runs it

The program runs as ``__main__`` with ``sys.argv`` as if it were started on its own;
``import ray`` and ``from ray.util.queue import Queue`` give ember's modules, in the driver
and in every worker (ember.as_ray()).
"""

from __future__ import annotations

import os
import runpy
import sys

USAGE = """usage: ember run script.py [args...]
       ember run -m module [args...]

Runs a program written for Ray on ember: `import ray` and `from ray.x import y` give ember's
modules, in the program and in its workers."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if argv[:1] != ["run"] or len(argv) < 2 or argv[1:] == ["-m"]:
        print(USAGE, file=sys.stderr)
        return 2
    from ember._alias import as_ray  # noqa: PLC0415 (ember itself only for `run`)

    as_ray()
    if argv[1] == "-m":
        sys.argv = [argv[2], *argv[3:]]  # runpy puts the module's path in argv[0]
        runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
    else:
        path = argv[1]
        sys.argv = argv[1:]
        sys.path.insert(0, os.path.dirname(os.path.abspath(path)))  # as `python path` does
        runpy.run_path(path, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
