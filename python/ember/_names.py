"""_names: the name a program knows ember by, in what ember shows it.

A program written for Ray and run on ember as ``ray`` (``ember.as_ray()``, ``ember run``, or
ember installed under the name ``ray``) sees Ray's names in error titles and exception
classes: ``ray::f() (pid=..., ip=...)`` and ``ray.exceptions.RayTaskError(ValueError)``, so
what it parses out of messages, or greps for in logs, reads as under Ray. Any other program
sees ember's own: ``ember::f()`` and ``ember.exceptions.TaskError(ValueError)``.

The driver decides when its node starts (``as_ray()`` earlier, or ``ray`` in ``sys.modules``
being ember) and hands the decision to its workers in their environment, so a worker formats
a nested error's title as the driver would.
"""

from __future__ import annotations

import os
import sys

#: "1" in a process whose program knows ember as ray; workers inherit it from the node.
AS_RAY_ENV = "EMBER_AS_RAY"


def as_ray() -> bool:
    """True if this program imports ember under the name ``ray``."""
    if os.environ.get(AS_RAY_ENV) == "1":
        return True
    ray = sys.modules.get("ray")
    ember = sys.modules.get("ember")
    # A module named ray whose remote() is ember's: the real Ray is not ember's.
    return ray is not None and ember is not None and \
        getattr(ray, "remote", None) is getattr(ember, "remote", 0)


def runtime() -> str:
    """"ray" or "ember": the prefix of process and error titles (``ray::f``)."""
    return "ray" if as_ray() else "ember"


def exceptions_module() -> str:
    """Where the program finds the exception classes: ``ray.exceptions`` or
    ``ember.exceptions``."""
    return f"{runtime()}.exceptions"


def task_error_class() -> str:
    """The name of the class of task failures as the program spells it."""
    return "RayTaskError" if as_ray() else "TaskError"
