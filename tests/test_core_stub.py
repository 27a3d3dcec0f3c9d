"""The stub python/ember/_core.pyi documents the private C++ module: it must name exactly what
the module has, class by class, so it cannot drift from the bindings."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ember import _core

STUB = Path(_core.__file__).with_name("_core.pyi")
if not STUB.exists():  # an editable install runs from the source tree
    STUB = Path(__file__).parents[1] / "python" / "ember" / "_core.pyi"

pytestmark = pytest.mark.timeout(30)

# Added to _core's classes at import by ember.object_ref (Python methods on the C++ ObjectRef).
PYTHON_ADDED = {"ObjectRef": {"future", "as_future", "from_binary", "from_hex", "from_random",
                               "nil", "is_nil", "_on_completed", "task_id", "job_id"}}


def _stub() -> tuple[set[str], dict[str, set[str]]]:
    tree = ast.parse(STUB.read_text())
    names: set[str] = set()
    members: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            if node.name != "_Submitter":  # a base of the stub only
                names.add(node.name)
            inherited = set().union(*(members[b.id] for b in node.bases
                                      if isinstance(b, ast.Name) and b.id in members))
            members[node.name] = inherited | {
                (b.target.id if isinstance(b, ast.AnnAssign) else
                 b.targets[0].id if isinstance(b, ast.Assign) else b.name)
                for b in node.body
                if isinstance(b, (ast.FunctionDef, ast.AnnAssign, ast.Assign))
            }
        elif isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets)
    return names, members


def _public(obj) -> set[str]:
    return {n for n in vars(obj) if not n.startswith("_") or n == "__init__"}


def test_the_stub_names_every_name_of_the_module_and_no_other():
    names, _ = _stub()
    module = {n for n in vars(_core) if not n.startswith("__")} | {"__version__"}
    names.discard("Parts")  # a type alias of the stub only
    assert module - names == set(), "bound but not in _core.pyi"
    assert names - module == set(), "in _core.pyi but not bound"


@pytest.mark.parametrize("cls", ["Store", "Scheduler", "Worker", "TaskOptions", "SchedulerConfig",
                                 "StoreOptions", "ObjectRef", "ErrorKind"])
def test_the_stub_names_every_member_of_each_class(cls):
    _, members = _stub()
    bound = _public(getattr(_core, cls)) - PYTHON_ADDED.get(cls, set())
    if cls == "ErrorKind":
        bound = set(_core.ErrorKind.__members__)
    stub = members[cls] - {"__init__", "__hash__", "__eq__"}
    bound -= {"__init__"}
    assert bound - stub == set(), f"{cls}: bound but not in _core.pyi"
    assert stub - bound == set(), f"{cls}: in _core.pyi but not bound"


def test_option_structs_refuse_unknown_fields():
    with pytest.raises(AttributeError):
        _core.TaskOptions(nmae="f")  # a misspelt option is never silently ignored
    with pytest.raises(AttributeError):
        _core.StoreOptions(capacity=1 << 20, prefault_pages=False)
    opts = _core.TaskOptions(name="f", num_returns=2, resources=[10000])
    assert (opts.name, opts.num_returns) == ("f", 2)
    assert opts.resources == [10000] + [0] * (_core.MAX_RESOURCES - 1)
    with pytest.raises(ValueError, match="at most"):
        _core.TaskOptions(resources=[0] * (_core.MAX_RESOURCES + 1))
