"""_serializability: finds what inside a value cannot be pickled (``inspect_serializability``)
and words the TypeError of a put, a task's argument or a remote function that cannot be.

The search tries the value, then what it holds: a container's items, a function's closure
cells and the globals its code names, a class's attributes, an object's ``__dict__``, down to
`depth` levels. The
innermost values that fail while everything they hold pickles are the culprits. It prints
its way down, framed by lines of ``=``, so the error of ``put(lock)`` says what failed where.
"""

from __future__ import annotations

import io
import os
import sys
import types
import warnings
from typing import Any

_RULE = "=" * 80


class FailureTuple:
    """A value that cannot be pickled: `obj`, the `name` it was found under, the `parent`
    that holds it (Ray's name for it)."""

    __slots__ = ("name", "obj", "parent")

    def __init__(self, obj: Any, name: str, parent: Any):
        self.obj, self.name, self.parent = obj, name, parent

    def __eq__(self, other) -> bool:
        return isinstance(other, FailureTuple) and other.obj is self.obj and \
            other.name == self.name

    def __hash__(self) -> int:  # by identity: the culprits are often unhashable
        return hash((id(self.obj), self.name))

    def __repr__(self) -> str:
        return f"FailTuple({self.name} [obj={self.obj}, parent={self.parent}])"


def inspect_serializability(base_obj: Any, name: str | None = None, depth: int = 3,
                            print_file: Any = None) -> tuple[bool, set[FailureTuple]]:
    """(True, set()) if `base_obj` pickles; else (False, the values inside it that do not).
    Prints what it tries to `print_file` (stdout if None)."""
    out = sys.stdout if print_file is None else print_file
    name = name or getattr(base_obj, "__qualname__", None) or repr(base_obj)
    print(f"{_RULE}\nChecking Serializability of {base_obj}\n{_RULE}", file=out)
    failures: set[FailureTuple] = set()
    ok = _inspect(base_obj, name, depth, None, failures, out, "")
    if failures:
        listed = "\n".join(f"\t{f}" for f in failures)
        print(f"{_RULE}\nVariable:\n\n{listed}\n\nwas found to be non-serializable. There may be "
              "multiple other undetected variables that were non-serializable.\nConsider "
              "either removing the instantiation/imports of these variables or moving the "
              "instantiation into the scope of the function/class.\n"
              f"{_RULE}", file=out)
    else:
        print(f"{_RULE}\nNothing failed the check.\n{_RULE}", file=out)
    return ok, failures


def _pickles(obj: Any) -> Exception | None:
    from ember import _pickle  # noqa: PLC0415 (cloudpickle: first use only)

    try:
        _pickle.dumps(obj)
    except Exception as e:  # noqa: BLE001 (any failure is the answer)
        return e
    return None


def _inspect(obj, name, depth, parent, failures, out, indent) -> bool:
    error = _pickles(obj)
    if error is None:
        return True
    print(f"{indent}!!! FAIL serialization: {error}", file=out)
    found = False
    if depth > 0:
        for member_name, member in _members(obj):
            if _pickles(member) is None:
                continue
            found = True
            print(f"{indent}    Serializing {member_name!r} {member}...", file=out)
            _inspect(member, member_name, depth - 1, obj, failures, out, indent + "    ")
    if not found:  # nothing inside fails on its own: this value is the culprit
        failures.add(FailureTuple(obj, name, parent))
    return False


def _members(obj) -> list[tuple[str, Any]]:
    """What `obj` holds that pickling it pickles too."""
    if isinstance(obj, types.FunctionType):
        code = obj.__code__
        cells = [(n, c.cell_contents) for n, c in zip(code.co_freevars, obj.__closure__ or ())
                 if _filled(c)]
        names = _global_names(code)
        return cells + [(n, obj.__globals__[n]) for n in names if n in obj.__globals__]
    if isinstance(obj, types.MethodType):
        return [("__func__", obj.__func__), ("__self__", obj.__self__)]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [(f"item {i}", v) for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        return [(f"value of {k!r}", v) for k, v in obj.items()]
    if isinstance(obj, type):
        return [(n, v) for n, v in vars(obj).items()
                if not (n.startswith("__") and n.endswith("__"))]
    held = getattr(obj, "__dict__", None)
    return list(held.items()) if isinstance(held, dict) else []


def _filled(cell) -> bool:
    try:
        cell.cell_contents  # noqa: B018 (an empty cell raises)
    except ValueError:
        return False
    return True


def _global_names(code: types.CodeType) -> list[str]:
    names = list(code.co_names)
    for const in code.co_consts:  # nested functions and comprehensions
        if isinstance(const, types.CodeType):
            names += _global_names(const)
    return list(dict.fromkeys(names))


def error(what: str, obj: Any) -> str:
    """The message of the TypeError for `what` ("the put value <lock>", "the function f")
    that cannot be pickled: the check's whole report under it."""
    report = io.StringIO()
    inspect_serializability(obj, print_file=report)
    return f"Could not serialize {what}:\n{report.getvalue().rstrip()}"


def argument_error(args: tuple, kwargs: dict, who: str) -> str:
    """The message for arguments of `who` (a task's or method's qualified name) that cannot
    be pickled: about the first argument that cannot."""
    for value in (*args, *kwargs.values()):
        if _pickles(value) is not None:
            return error(f"the argument {value!r} for a task or actor {who}", value)
    return error(f"the arguments for a task or actor {who}", (args, kwargs))


#: Ray's limits on a pickled function or actor class (ray_constants): a warning above the
#: first, an error above the second (Ray's variable FUNCTION_SIZE_ERROR_THRESHOLD moves it).
FUNCTION_SIZE_WARN_THRESHOLD = 10**7


def pickled_size(parts: tuple) -> int:
    """Bytes of serialize()'s (stream, buffers, nested): the stream and its buffers."""
    stream, buffers = parts[0], parts[1]
    return len(stream) + sum(memoryview(b).nbytes for b in buffers)


def check_function_size(kind: str, name: str, size: int) -> None:
    """As Ray: a pickled function or class of more than 100 MB is refused, of more than 10 MB
    warned about. It is almost always a large value captured by mistake, which every worker
    would load again; ember's store would hold it fine, but the program would not run on
    Ray, and put() is the way to share it."""
    limit = int(os.environ.get("FUNCTION_SIZE_ERROR_THRESHOLD", str(10**8)))
    advice = ("Check that its definition is not implicitly capturing a large array or other "
              "object in scope. Tip: use put() to put large objects in the object store and "
              "pass the ObjectRef.")
    if size > limit:
        raise ValueError(f"The {kind} {name} is too large ({size / 2**20:.0f} MiB > "
                         f"FUNCTION_SIZE_ERROR_THRESHOLD={limit / 2**20:.0f} MiB). {advice}")
    if size > FUNCTION_SIZE_WARN_THRESHOLD:
        warnings.warn(f"The {kind} {name} is very large ({size / 2**20:.0f} MiB). {advice}",
                      UserWarning, stacklevel=4)
