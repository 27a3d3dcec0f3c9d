"""The C++ core's layering (docs/architecture.md, "The map"): its headers include each other
without a cycle, pybind11 is used only by the bindings (cpp/py/), and nothing in the core
includes a binding header. Read from the sources, so a change that breaks a rule fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CPP = Path(__file__).parents[1] / "cpp"
INCLUDE = re.compile(r'^#include "([^"]+)"', re.MULTILINE)

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(not CPP.is_dir(), reason="needs the source tree"),
]


def _sources(pattern: str) -> list[Path]:
    return sorted(p for p in CPP.glob(pattern) if p.suffix in (".h", ".cc"))


def _includes(path: Path) -> list[str]:
    return INCLUDE.findall(path.read_text())


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph (as a path that comes back to its start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def _header_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for h in _sources("**/*.h"):
        if "tests" in h.parts:
            continue
        graph[str(h.relative_to(CPP))] = set(_includes(h))
    return graph


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a.h": {"b.h"}, "b.h": {"c.h"}, "c.h": {"a.h"}}) == ["a.h", "b.h", "c.h", "a.h"]
    assert _cycle({"a.h": {"b.h"}, "b.h": set(), "c.h": {"a.h", "b.h"}}) is None


def test_the_core_headers_include_each_other_without_a_cycle():
    graph = _header_graph()
    assert "store.h" in graph and "py/runtime.h" in graph  # the scan sees the tree
    assert _cycle(graph) is None


def test_only_the_bindings_use_pybind11_and_the_core_never_includes_them():
    for src in _sources("*"):  # cpp/*.h, cpp/*.cc: the core
        text = src.read_text()
        assert "pybind11" not in text, f"{src.name}: the core is plain C++ (cpp/py binds it)"
        assert not any(inc.startswith("py/") for inc in _includes(src)), src.name
    for src in _sources("py/*"):
        assert "PYBIND11_MODULE" not in src.read_text() or src.name == "module.cc", src.name
