"""The DAG API (ember.dag): graphs of task and actor calls built with .bind(), run with
execute()."""

from __future__ import annotations

import pytest

import ember
from ember.dag import InputNode, MultiOutputNode


@ember.remote
def add(a, b):
    return a + b


@ember.remote
def double(x):
    return 2 * x


@ember.remote
def total(values):
    return sum(ember.get(values))  # refs nested in a list arrive as refs


@ember.remote
class Accumulator:
    def __init__(self, start):
        self.value = start

    def add(self, x):
        self.value += x
        return self.value


def test_a_graph_of_tasks_runs_each_node_once_upstream_first(shared_node):
    calls = Accumulator.remote(0)  # counts how often the shared node runs
    with InputNode() as x:
        counted = calls.add.bind(x)
        both = add.bind(double.bind(counted), counted)
    assert ember.get(both.execute(5)) == 15  # double(5) + 5
    assert ember.get(calls.add.remote(0)) == 5  # the shared node ran once, not twice
    assert ember.get(both.execute(1)) == 18  # again: the live actor is at 6, 2 * 6 + 6


def test_inputs_by_position_keyword_and_item(shared_node):
    with InputNode() as inp:
        dag = add.bind(inp[0], inp.bonus)
    assert ember.get(dag.execute(1, bonus=10)) == 11
    with InputNode() as inp:
        picked = add.bind(inp["a"], inp["b"])
    assert ember.get(picked.execute({"a": 2, "b": 3})) == 5
    with InputNode() as inp:
        plain = double.bind(inp)
    with pytest.raises(ValueError, match="pick each with input"):
        plain.execute(1, 2)


def test_actors_and_several_outputs(shared_node):
    with InputNode() as x:
        acc = Accumulator.bind(100)
        first = acc.add.bind(x)
        second = acc.add.bind(first)  # the same actor: 100 + x, then twice that
        dag = MultiOutputNode([first, second, total.bind([first, double.bind(x)])])
    refs = dag.execute(1)
    assert isinstance(refs, list) and ember.get(refs) == [101, 202, 103]
    assert ember.get(dag.execute(1)) == [101, 202, 103]  # a new actor for each execute


def test_bind_is_offered_where_ray_offers_it(shared_node):
    assert "bind" in dir(add) and "bind" in dir(Accumulator)
    handle = Accumulator.remote(0)
    assert "bind" in dir(handle.add)
    node = add.options(num_cpus=0).bind(1, 2)
    assert ember.get(node.execute()) == 3
    with pytest.raises(TypeError, match="cannot be passed to a task"):
        ember.put(node)
