"""RemoteFunction: what ``@ember.remote`` makes of a function.

``f.remote(*args)`` pickles the arguments, reserves the return ObjectRefs and hands the task
to the C++ runtime: from the driver straight to a worker's ring when it can, otherwise to the
scheduler thread; from a worker (a nested task) through its outbound ring.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from typing import Any

from ember import _backend, _core, _node, _options, _placement, _runtime_env, _serializability
from ember._signature import CallCheck
from ember._stream import ObjectRefGenerator
from ember.dag import FunctionNode
from ember.exceptions import ObjectStoreFullError
from ember.serialization import serialize

ObjectRef = _core.ObjectRef

#: Seconds a submission waits for running tasks to free room in a full store.
STORE_FULL_PATIENCE = 30.0

class RetryOn:
    """A task's function with retry_exceptions=[types]: the worker retries it only on an
    exception of one of them (``retry_on``). It runs and names itself as the function."""

    def __init__(self, function, types: list):
        self.function = function
        self.retry_on = tuple(types)
        self.__module__ = getattr(function, "__module__", __name__)
        self.__name__ = getattr(function, "__name__", "task")

    def __call__(self, *args, **kwargs):
        return self.function(*args, **kwargs)


class WithRuntimeEnv:
    """A task's function with a runtime_env of its own: the worker puts it on around the call
    and then retires, so no later task shares the process (ember._runtime_env). It runs and
    names itself as the function (and keeps a RetryOn's exception classes)."""

    def __init__(self, function, env: dict, merged: dict):
        self.function = function
        self.env = env  # the task's own (the job's is on already)
        self.merged = merged  # what the task sees as its runtime_env
        self.retry_on = getattr(function, "retry_on", Exception)
        self.__module__ = getattr(function, "__module__", __name__)
        self.__name__ = getattr(function, "__name__", "task")

    def __call__(self, *args, **kwargs):
        if inspect.isgeneratorfunction(getattr(self.function, "function", self.function)):
            return self._generate(args, kwargs)  # on while the generator runs, not only made
        with self._applied():
            return self.function(*args, **kwargs)

    def _generate(self, args, kwargs):
        with self._applied():
            yield from self.function(*args, **kwargs)

    @contextlib.contextmanager
    def _applied(self):
        applied = _runtime_env.Applied(self.env).apply()
        before, _runtime_env.active = _runtime_env.active, self.merged
        try:
            yield
        finally:
            applied.undo()
            _runtime_env.active = before
            worker = _node.current().worker
            if worker is not None:  # before the result is sealed: the next call goes elsewhere
                worker.ask_retire()


class RemoteFunction:
    """A function that runs as a task in a worker process."""

    DEFAULT_OPTIONS = _options.TASK_OPTIONS  # the Ray backend passes on only what differs

    def __init__(self, function, options: dict[str, Any] | None = None):
        if inspect.iscoroutinefunction(function):  # as in Ray: a task is not a coroutine
            raise ValueError(
                f"'async def' should not be used for remote tasks ({function.__qualname__}): "
                "wrap the coroutine in a function that runs it, e.g. "
                "`return asyncio.run(f())`, or make it a method of an async actor")
        self._function = function
        defaults = dict(_options.TASK_OPTIONS)
        if _options.is_generator_function(function):
            defaults["num_returns"] = "streaming"  # as in Ray: a generator streams its items
        self._options = _options.check_task_options({**defaults, **(options or {})})
        _options.check_generator_returns(self._options["num_returns"], function,
                                         f"{function.__qualname__}")
        self._qualname = f"{function.__module__}.{function.__qualname__}"
        self._name = getattr(function, "__name__", "task")  # what Ray shows: (name pid=N)
        self._check = CallCheck.of(function)  # its arguments, checked at .remote()
        # Ray's __ray_invocation_decorator__ on the function: it wraps .remote() (see there).
        self._decorator = getattr(function, "__ray_invocation_decorator__", None)
        self._ref: ObjectRef | None = None  # the pickled function in the current node's store
        self._ref_node: str | None = None
        # node tag -> the core's TaskOptions for _options (built once: ~3 us per call otherwise)
        self._task_options: dict[int, _core.TaskOptions] = {}
        self._ray_function = None  # ray.remote() of it, under the Ray backend
        self.__doc__ = function.__doc__
        self.__name__ = getattr(function, "__name__", "remote_function")
        self.__qualname__ = getattr(function, "__qualname__", self.__name__)
        self.__module__ = function.__module__
        self.__wrapped__ = function

    def __call__(self, *args, **kwargs):
        raise TypeError(
            "Remote functions cannot be called directly. Instead of running "
            f"'{self._qualname}()', try '{self._qualname}.remote()'."
        )

    def __repr__(self) -> str:
        return f"<RemoteFunction {self._qualname}>"

    def options(self, **options) -> RemoteFunction:
        """A copy of this remote function with some options changed."""
        copy = RemoteFunction.__new__(RemoteFunction)
        copy.__dict__.update(self.__dict__)
        copy._options = _options.check_task_options({**self._options, **options})
        _options.check_generator_returns(copy._options["num_returns"], self._function,
                                         f"{self._function.__qualname__}")
        if isinstance(copy._options["retry_exceptions"], list) or isinstance(
                self._options["retry_exceptions"], list) or \
                copy._options["runtime_env"] or self._options["runtime_env"]:
            copy._ref = None  # the function object carries them (RetryOn, WithRuntimeEnv)
        copy._task_options = {}
        copy._ray_function = None
        return copy

    def remote(self, *args, **kwargs):
        """Submits the task; returns an ObjectRef (a list of them for num_returns > 1, None
        for 0, as in Ray). A function with Ray's ``__ray_invocation_decorator__`` returns
        ``decorator(submit)(args, kwargs)`` instead, where submit(args, kwargs) submits."""
        if self._decorator is not None:
            return self._decorator(self._checked_submit)(args, kwargs)
        return self._checked_submit(args, kwargs)

    def _checked_submit(self, args, kwargs):
        if self._check is not None:
            self._check.check(args, kwargs)
        return _backend.active.submit_task(self, args, kwargs)

    _remote = _options.remote_with_options

    def bind(self, *args, **kwargs) -> FunctionNode:
        """This task as a node of a graph (ember.dag): run by ``execute()``."""
        return FunctionNode(self, args, kwargs)

    def _function_ref(self, node: _node.Node) -> ObjectRef:
        node_id = node.store.node_tag
        if self._ref is None or self._ref_node != node_id:
            retry_on = self._options["retry_exceptions"]
            target = RetryOn(self._function, retry_on) if isinstance(retry_on, list) \
                else self._function
            env = _runtime_env.check(self._options["runtime_env"], f"task {self._name}")
            if env:
                target = WithRuntimeEnv(target, env, _runtime_env.merged(node.runtime_env, env))
            try:
                parts = serialize(target, code=True)
            except TypeError as e:
                raise TypeError(_serializability.error(f"the function {self._qualname}",
                                                       self._function)) from e
            _serializability.check_function_size("remote function", self._qualname,
                                                 _serializability.pickled_size(parts))
            self._ref, self._ref_node = node.store.put(*parts), node_id
        return self._ref

    def _core_options(self, node: _node.Node, opts: dict[str, Any],
                      captured: bool = False) -> _core.TaskOptions:
        """The core's options of this task on `node`; `captured`: placed in the group of the
        running task, which captures its child tasks (_placement)."""
        name = opts["name"] or self._name
        who = f"task {name}"
        _options.refuse_unsupported(opts, _options.TASK_OPTIONS, node.node_id, who)
        num_returns, flags = _options.core_returns(opts["num_returns"])
        if opts["retry_exceptions"]:
            if flags & _core.SPEC_STREAMING:
                raise ValueError(f"option retry_exceptions of {who}: retrying a streaming "
                                 "generator on an exception is not supported by ember yet")
            flags |= _core.SPEC_RETRY_EXCEPTIONS
        request = _options.resource_request(opts, 1)
        options = _core.TaskOptions(
            name=name, num_returns=num_returns, max_retries=opts["max_retries"],
            resources=node.resource_vector(request, who),
            flags=flags, max_calls=_options.max_calls_of(opts))
        placed = (_placement.captured_placement(node, request, self.__qualname__) if captured
                  else _placement.placement(node, opts, request, who, self.__qualname__))
        _placement.apply(options, placed)
        return options

    def _submit(self, args: tuple, kwargs: dict):
        """Submits the task to this process's ember node (the local backend's submit_task)."""
        opts = self._options
        node = _node.current()
        fref = self._function_ref(node)
        options = self._task_options.get(node.store.node_tag)
        if options is None:
            options = self._core_options(node, opts)
            self._task_options = {node.store.node_tag: options}
        if node.placement is not None and options.placement_group == 0 and \
                opts["scheduling_strategy"] is None and node.placement[2]:
            options = self._core_options(node, opts, captured=True)  # the parent captures it
        if args or kwargs:
            try:
                stream, buffers, nested = serialize((args, kwargs))
            except TypeError as e:
                raise TypeError(_serializability.argument_error(args, kwargs, self._qualname)
                                ) from e
            deps = [a for a in args if isinstance(a, ObjectRef)]
            deps += [v for v in kwargs.values() if isinstance(v, ObjectRef)]
        else:
            stream, buffers, nested, deps = None, [], [], []
        runtime = node.scheduler if node.is_driver else node.worker
        deadline = None
        while True:
            try:
                refs = runtime.submit(fref, options, stream, buffers, nested, deps)
                break
            except ObjectStoreFullError:
                # Backpressure: arguments passed by value fill the store while earlier tasks
                # still hold theirs; those tasks free it as they finish. Give up at once when
                # nothing runs (waiting cannot help), or after STORE_FULL_PATIENCE seconds.
                now = time.monotonic()
                deadline = deadline or now + STORE_FULL_PATIENCE
                if now > deadline or (node.is_driver and not node.scheduler.busy()):
                    raise
                time.sleep(0.002)
        n = opts["num_returns"]
        if n == 1:
            return refs[0]
        if n == 0:  # as in Ray: nothing to wait for
            return None
        if n == "streaming":
            return ObjectRefGenerator(refs[0])
        if n == "dynamic":
            return refs[0]
        return refs

    def __reduce__(self):
        return _rebuild, (self._function, self._options)


def _rebuild(function, options):
    return RemoteFunction(function, options)
