"""ember.dag: a graph of task and actor calls, built with ``.bind()`` and run with
``execute()`` (Ray's ``ray.dag``, the classic interpreted kind)::

    with InputNode() as x:
        total = add.bind(double.bind(x), 1)
    ember.get(total.execute(5))  # 11

- ``f.bind(*args, **kwargs)`` is a FunctionNode; ``Actor.bind(*args)`` a ClassNode, whose
  ``.method.bind(...)`` is a ClassMethodNode; ``handle.method.bind(...)`` calls a live actor.
- Arguments may be nodes, also inside lists, tuples and dicts: each becomes the ObjectRef of
  that node's result (a top-level ref argument is resolved before the task runs, as with
  ``.remote()``; one nested in a container is passed as the ref).
- ``execute(*args, **kwargs)`` submits every node once, upstream first, and returns the
  output node's ObjectRef (a list of them for a MultiOutputNode). The InputNode stands for
  the single argument of ``execute``; ``x[0]``, ``x["key"]`` and ``x.name`` pick one of
  several. A ClassNode makes its actor anew on each ``execute``, as in Ray.

Each call goes through ``.remote()``, so a graph runs on either backend.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ClassMethodNode", "ClassNode", "DAGNode", "FunctionNode", "InputAttributeNode",
           "InputNode", "MultiOutputNode"]


class DAGNode:
    """A node of the graph: what to call and with which arguments (nodes among them)."""

    def __init__(self, args: tuple = (), kwargs: dict | None = None):
        self._bound_args = tuple(args)
        self._bound_kwargs = dict(kwargs or {})

    def execute(self, *args, **kwargs):
        """Runs the graph ending at this node on these inputs: its result's ObjectRef."""
        return _Execution(args, kwargs).value(self)

    def _run(self, execution: _Execution):  # the node's result, its inputs resolved
        raise NotImplementedError

    def _arguments(self, execution: _Execution) -> tuple[tuple, dict]:
        args = tuple(execution.resolve(a) for a in self._bound_args)
        kwargs = {k: execution.resolve(v) for k, v in self._bound_kwargs.items()}
        return args, kwargs

    def __reduce__(self):
        raise TypeError(f"a {type(self).__name__} cannot be passed to a task or an actor: "
                        "pass what its execute() returns")


class FunctionNode(DAGNode):
    """A task call: ``f.bind(...)``."""

    def __init__(self, function, args: tuple, kwargs: dict):
        super().__init__(args, kwargs)
        self._function = function  # a RemoteFunction (with its options)

    def _run(self, execution: _Execution):
        args, kwargs = self._arguments(execution)
        return self._function.remote(*args, **kwargs)

    def __repr__(self) -> str:
        return f"FunctionNode({self._function.__qualname__})"


class ClassNode(DAGNode):
    """An actor to create: ``Actor.bind(...)``; its methods bind as ClassMethodNodes."""

    def __init__(self, actor_class, args: tuple, kwargs: dict):
        super().__init__(args, kwargs)
        self._actor_class = actor_class

    def _run(self, execution: _Execution):
        args, kwargs = self._arguments(execution)
        return self._actor_class.remote(*args, **kwargs)

    def __getattr__(self, name: str) -> _UnboundMethod:
        if name.startswith("__"):
            raise AttributeError(name)
        return _UnboundMethod(self, name)


class _UnboundMethod:
    """``class_node.method``: its ``bind`` makes a ClassMethodNode."""

    def __init__(self, actor: ClassNode | Any, name: str, options: dict | None = None):
        self._actor, self._name, self._options = actor, name, options or {}

    def options(self, **options) -> _UnboundMethod:
        return _UnboundMethod(self._actor, self._name, {**self._options, **options})

    def bind(self, *args, **kwargs) -> ClassMethodNode:
        return ClassMethodNode(self._actor, self._name, self._options, args, kwargs)


class ClassMethodNode(DAGNode):
    """An actor call: ``class_node.method.bind(...)``, or ``handle.method.bind(...)`` on a
    live actor (then `actor` is that handle's method, options and all)."""

    def __init__(self, actor, method: str | None, options: dict, args: tuple, kwargs: dict):
        super().__init__(args, kwargs)
        self._actor = actor  # a ClassNode (its actor is made in the execution), or a method
        self._method = method
        self._options = options

    def _run(self, execution: _Execution):
        if isinstance(self._actor, ClassNode):
            method = getattr(execution.value(self._actor), self._method)
            if self._options:
                method = method.options(**self._options)
        else:
            method = self._actor
        args, kwargs = self._arguments(execution)
        return method.remote(*args, **kwargs)


class InputNode(DAGNode):
    """The input of ``execute``: the one argument, or ``node[i]`` / ``node["k"]`` /
    ``node.k`` for one of several. Use it as a context manager to build the graph in."""

    def __enter__(self) -> InputNode:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def __getitem__(self, key) -> InputAttributeNode:
        return InputAttributeNode(self, key, by_item=True)

    def __getattr__(self, name: str) -> InputAttributeNode:
        if name.startswith("_"):
            raise AttributeError(name)
        return InputAttributeNode(self, name, by_item=False)

    def _run(self, execution: _Execution):
        args, kwargs = execution.inputs
        if len(args) == 1 and not kwargs:
            return args[0]
        raise ValueError(f"execute() got {len(args)} positional and {len(kwargs)} keyword "
                         "inputs: with other than one input, pick each with input[i], "
                         "input['name'] or input.name")


class InputAttributeNode(DAGNode):
    """One of several inputs of ``execute`` (``node[i]`` a position, ``node["k"]`` or
    ``node.k`` a keyword), or an item or attribute of its one input (as Ray's)."""

    def __init__(self, input_node: InputNode, key, by_item: bool):
        super().__init__()
        self._input_node, self._key, self._by_item = input_node, key, by_item

    def _run(self, execution: _Execution):
        args, kwargs = execution.inputs
        if len(args) == 1 and not kwargs:  # one input: an item or attribute of it
            value = args[0]
            return value[self._key] if self._by_item else getattr(value, self._key)
        return args[self._key] if isinstance(self._key, int) else kwargs[self._key]


class MultiOutputNode(DAGNode):
    """Several outputs: ``execute`` returns the list of their ObjectRefs."""

    def __init__(self, outputs: list):
        super().__init__(tuple(outputs))

    def _run(self, execution: _Execution):
        return [execution.value(node) for node in self._bound_args]


class _Execution:
    """One run of a graph: each node's result, made once."""

    def __init__(self, args: tuple, kwargs: dict):
        self.inputs = (args, kwargs)
        self._results: dict[int, Any] = {}

    def value(self, node: DAGNode):
        key = id(node)
        if key not in self._results:
            self._results[key] = node._run(self)
        return self._results[key]

    def resolve(self, value):
        """`value` with every node in it (also in lists, tuples and dicts) replaced by its
        result."""
        if isinstance(value, DAGNode):
            return self.value(value)
        if type(value) in (list, tuple):
            return type(value)(self.resolve(v) for v in value)
        if type(value) is dict:
            return {k: self.resolve(v) for k, v in value.items()}
        return value
