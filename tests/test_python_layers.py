"""The Python package's layering (docs/architecture.md, "Python layering"): every module has
a layer, and imports only modules of lower layers, at the top or inside a function alike. So
the import graph has no cycle, and no import inside a function can hide one."""

import ast
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "python" / "ember"

#: Lowest first. A module may import modules of the layers before its own only.
LAYERS = [
    ["_core"],  # the C++ core
    ["_names", "_pickle"],  # the names ember shows; its cloudpickle
    ["exceptions", "_session", "_signature", "_scheduling", "_ids", "job_config", "_alias",
     "_private", "_private.worker", "_private.auto_init_hook", "_private.test_utils",
     "_private.utils", "_common", "_common.utils"],
    ["_runtime_env"],
    ["_options", "util.scheduling_strategies"],
    ["_backend", "_node", "_logs"],  # what answers the API; the node of this process
    ["serialization", "_serializability"],
    # put, get, wait on the node; a task's failure as its error; failures nobody read
    ["_objects", "_task_errors", "_unhandled"],
    ["_stream", "_placement", "dag"],  # generators' items; placement groups' records; graphs
    ["object_ref", "remote_function", "actor", "runtime_context"],
    ["_actor_runtime", "dashboard", "util.state"],
    ["_worker", "_local", "_ray_backend"],  # a worker's loop; the two backends
    ["api"],
    ["util.actor_group", "util.actor_pool", "util.helpers", "util.multiprocessing", "util.queue",
     "util.check_serialize", "util.placement_group", "util.metrics", "cloudpickle"],
    ["util.joblib.ray_backend"],
    ["util", "util.joblib"],
    ["__init__"],  # the package: `import ember`
    # programs (python -m ember.X, pytest -p ember.pytest_plugin): they may use anything
    ["_forkserver", "demo", "__main__", "pytest_plugin"],
]


def layer_of() -> dict[str, int]:
    return {name: i for i, names in enumerate(LAYERS) for name in names}


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def python_modules() -> dict[str, pathlib.Path]:
    out = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    out["_core"] = PACKAGE / "_core.pyi"
    return out


def ember_imports(path: pathlib.Path, known: set[str]) -> list[tuple[int, str]]:
    """(line, module) for every import of one of the package's modules in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "ember" or alias.name.startswith("ember."):
                    found.append((node.lineno, alias.name[len("ember."):] or "__init__"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module != "ember" and not node.module.startswith("ember."):
                continue
            base = node.module[len("ember."):] if node.module != "ember" else ""
            for alias in node.names:
                sub = f"{base}.{alias.name}" if base else alias.name
                # `from ember.x import name`: the module x, unless name is a module itself
                found.append((node.lineno, sub if sub in known else (base or "__init__")))
    return found


def test_every_module_has_a_layer():
    modules = set(python_modules())
    placed = set(layer_of())
    assert modules - placed == set(), "place new modules in LAYERS (and in the docs' map)"
    assert placed - modules == set(), "LAYERS names modules that do not exist"


def test_modules_import_only_lower_layers():
    layers = layer_of()
    modules = python_modules()
    known = set(modules)
    upward = []
    for name, path in modules.items():
        if path.suffix == ".pyi":
            continue
        for line, target in ember_imports(path, known):
            if target == name:
                continue
            if layers[target] >= layers[name]:
                upward.append(f"{path.relative_to(PACKAGE)}:{line} imports {target} "
                              f"(layer {layers[target]} >= {layers[name]})")
    assert upward == []


def test_the_checker_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from ember import api\n    import ember._node\n"
                      "    from ember.util import state\n    from ember.actor import kill\n")
    known = set(python_modules())
    assert ember_imports(source, known) == [(2, "api"), (3, "_node"), (4, "util.state"),
                                            (5, "actor")]


def test_the_package_passes_ruff():
    pytest.importorskip("ruff", reason="ruff comes with the test extra: pip install '.[test]'")
    root = PACKAGE.parent.parent
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "python"],
                          cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
