"""Actors: what ``@ember.remote`` makes of a class.

    Counter.remote(...) ──create_actor──► scheduler ──spawn──► a dedicated worker process
    handle.add.remote(1) ──submit_actor──► the actor's own ring (straight from the caller when
                                           nothing of that actor waits in the scheduler)

- An actor is one worker process that runs the class's ``__init__`` and then only that
  actor's calls, in the order each caller made them.
- Like Ray, an actor needs 1 CPU to be scheduled but holds none while it lives, unless
  ``num_cpus`` (or GPUs, or custom resources) is given explicitly: then it keeps them.
- Handles pickle, so they can be passed to tasks and to other actors. When no handle is left
  in any process (and the actor is not detached), the actor is ended, as in Ray.
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Any

from ember import (
    _backend,
    _core,
    _node,
    _objects,
    _options,
    _placement,
    _runtime_env,
    _serializability,
)
from ember._ids import ActorID
from ember._signature import CallCheck
from ember._stream import ObjectRefGenerator
from ember.dag import ClassMethodNode, ClassNode
from ember.exceptions import (
    ActorAlreadyExistsError,
    EmberError,
    ObjectLostError,
    PendingCallsLimitExceeded,
    _BadArgument,
)
from ember.serialization import serialize

ObjectRef = _core.ObjectRef

def method(*args, **options):
    """``@ember.method`` or ``@ember.method(num_returns=n, ...)`` on an actor method, with
    Ray's options (ember._options.METHOD_OPTIONS). Those ember's node cannot honour are
    refused when the actor is created on it; the Ray backend reads them all."""
    if len(args) == 1 and callable(args[0]) and not options:
        return args[0]  # bare @method: Ray's defaults
    if args:
        raise TypeError("@ember.method takes keyword options only, e.g. "
                        "@ember.method(num_returns=2)")
    _options.check_method_options(options)

    def mark(fn):
        fn.__ember_method_options__ = options
        for name, value in options.items():  # what Ray reads, under the Ray backend
            setattr(fn, f"__ray_{name.lstrip('_')}__", value)
        return fn

    return mark


def exit_actor():
    """Ends the current actor from inside one of its methods: its process exits after this
    call, it is not restarted, and calls still waiting fail with ActorDiedError."""
    _backend.active.exit_actor()


def _exit_actor() -> None:
    """exit_actor() on an ember node."""
    node = _node.current() if _node.is_running() else None
    if node is None or node.worker is None or getattr(node, "actor_state", None) is None:
        # Ray's words, which programs match on.
        raise TypeError("exit_actor API is called on a non-actor worker: call it inside an "
                        "actor's method (or __init__) to end that actor")
    raise _ActorExit()


class ActorClassInheritanceException(TypeError):
    """A class tried to inherit from an actor class (Ray's ``ray.actor`` name)."""


class _ActorExit(BaseException):
    """Raised by exit_actor(); handled by the actor's loop."""


#: Methods every actor has, as in Ray (run by ember._actor_runtime): ``__ray_ready__()`` is
#: True once ``__init__`` ran, ``__ray_call__(fn, *args)`` runs ``fn(instance, *args)``,
#: ``__ray_terminate__()`` ends the actor after the calls before it, as exit_actor() does.
BUILTIN_METHODS = ("__ray_ready__", "__ray_call__", "__ray_terminate__")


def _methods_of(cls) -> dict[str, tuple]:
    """Each method's name -> (num_returns, the check of its arguments, its own
    max_task_retries or None for the actor's, whether it retries on exceptions, its
    invocation decorator or None)."""
    out = {name: (1, None, None, False, None) for name in BUILTIN_METHODS}
    for name, member in inspect.getmembers(cls, predicate=callable):
        if name.startswith("__") and name != "__call__":
            continue
        bound = not isinstance(inspect.getattr_static(cls, name), (staticmethod, classmethod))
        options = getattr(member, "__ember_method_options__", {})
        default = "streaming" if _options.is_generator_function(member) else 1
        out[name] = (options.get("num_returns", default), CallCheck.of(member, bound=bound),
                     options.get("max_task_retries"),
                     bool(options.get("retry_exceptions", False)),
                     getattr(member, "__ray_invocation_decorator__", None))
    return out


def _method_groups(cls, groups: dict[str, int]) -> dict[str, str]:
    """Each method's concurrency group (@method(concurrency_group=)), which must exist."""
    out = {}
    for name, options in _method_options_of(cls).items():
        group = options.get("concurrency_group")
        if group is not None:
            if group not in groups:
                raise ValueError(f"method {cls.__name__}.{name} is in concurrency group "
                                 f"{group!r}, which the actor does not define (it has "
                                 f"{', '.join(map(repr, groups)) or 'none'})")
            out[name] = group
    return out


def _method_options_of(cls) -> dict[str, dict]:
    """The @method options each method was given (checked on creation on ember's node)."""
    return {name: member.__ember_method_options__
            for name, member in inspect.getmembers(cls, predicate=callable)
            if getattr(member, "__ember_method_options__", None)}


def _is_async_class(cls) -> bool:
    return any(inspect.iscoroutinefunction(m) or inspect.isasyncgenfunction(m)
               for _, m in inspect.getmembers(cls, predicate=callable))


class ActorClass:
    """A class whose instances are actors: ``Cls.remote(...)`` returns an ActorHandle."""

    DEFAULT_OPTIONS = _options.ACTOR_OPTIONS  # the Ray backend passes on only what differs

    def __init__(self, cls, options: dict[str, Any] | None = None):
        self._cls = cls
        self._options = _options.check_actor_options({**_options.ACTOR_OPTIONS, **(options or {})})
        self._class_name = cls.__name__
        self._methods = _methods_of(cls)
        self._init_check = CallCheck.of(cls)  # the arguments of __init__
        self._ref: ObjectRef | None = None
        self._ref_node: int | None = None
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__module__ = cls.__module__
        self.__doc__ = cls.__doc__

    def __mro_entries__(self, bases):
        # `class Derived(SomeActor)` names the ActorClass among its bases.
        raise ActorClassInheritanceException(
            f"class {self._class_name} is an actor class (decorated with @remote). Inheriting "
            "from actor classes is not currently supported. You can instead inherit from the "
            "plain class and decorate the subclass.")

    def __call__(self, *args, **kwargs):
        raise TypeError(
            f"Actors cannot be instantiated directly. Instead of '{self._class_name}()', use "
            f"'{self._class_name}.remote()'.")

    def __repr__(self) -> str:
        return f"<ActorClass {self.__module__}.{self.__qualname__}>"

    def __getattr__(self, name: str):
        # The class's own attributes, as on Ray's actor classes (which subclass the class):
        # constants, static methods and class methods (`Cls.factory(x)` makes a plain object).
        if name.startswith("_"):  # never ours (pickle and copy look for dunders on instances)
            raise AttributeError(name)
        return getattr(self.__dict__["_cls"], name)

    def __dir__(self) -> list[str]:
        methods = [m for m in self._methods if m not in BUILTIN_METHODS]
        return sorted({*methods, "bind", "options", "remote"})

    def options(self, **options) -> ActorClass:
        copy = ActorClass.__new__(ActorClass)
        copy.__dict__.update(self.__dict__)
        copy._options = _options.check_actor_options({**self._options, **options})
        return copy

    _remote = _options.remote_with_options

    def bind(self, *args, **kwargs) -> ClassNode:
        """This actor as a node of a graph (ember.dag): made by each ``execute()``."""
        return ClassNode(self, args, kwargs)

    def remote(self, *args, **kwargs) -> ActorHandle:
        """Starts the actor and returns its handle at once (``__init__`` runs in the actor)."""
        if self._init_check is not None:
            self._init_check.check(args, kwargs)
        return _backend.active.create_actor(self, args, kwargs)

    def _class_ref(self, node) -> ObjectRef:
        if self._ref is None or self._ref_node != node.store.node_tag:
            try:
                parts = serialize(self._cls, code=True)
            except TypeError as e:
                raise TypeError(_serializability.error(
                    f"the actor class {_qualified(self._cls)}.__init__", self._cls)) from e
            _serializability.check_function_size("actor", self._class_name,
                                                 _serializability.pickled_size(parts))
            self._ref, self._ref_node = node.store.put(*parts), node.store.node_tag
        return self._ref

    def _refuse_unsupported_method_options(self) -> None:
        """@method options ember's node cannot honour raise ValueError, naming the method."""
        for name, method_options in _method_options_of(self._cls).items():
            _options.refuse_unsupported_method_options(method_options,
                                                       f"{self._class_name}.{name}")
            if method_options.get("retry_exceptions") and \
                    self._methods[name][0] in ("streaming", "dynamic"):
                raise ValueError(f"retry_exceptions of {self._class_name}.{name}: a generator "
                                 "method is not retried on exceptions by ember")

    def _create(self, args, kwargs) -> ActorHandle:
        """Creates the actor on this process's ember node (the local backend's create_actor)."""
        node = _node.current()
        opts = self._options
        runtime = node.scheduler if node.is_driver else node.worker
        if runtime is None:
            raise _BadArgument("actors can be created in the driver, tasks and actors only")
        key = (opts["namespace"] or node.namespace, opts["name"])
        if opts["name"] is not None:
            existing = _lookup(node, *key)
            if existing is not None:
                if opts["get_if_exists"]:
                    return existing
                raise _name_taken(key)
        who = f"actor {self._class_name}"
        _options.refuse_unsupported(opts, _options.ACTOR_OPTIONS, node.node_id, who)
        self._refuse_unsupported_method_options()
        explicit = (opts["num_cpus"] is not None or opts["num_gpus"] or opts["resources"]
                    or opts["memory"] or opts["accelerator_type"] is not None)
        request = _options.resource_request(opts, 1)
        vector = node.resource_vector(request, who)
        placed = _placement.placement(node, opts, request, who, self._cls.__qualname__,
                                      inherit=True)
        flags = _core.SPEC_HOLD_RESOURCES if explicit else 0
        concurrency = opts["max_concurrency"]
        is_async = _is_async_class(self._cls)
        if concurrency is None:
            concurrency = 1000 if is_async else 1
        groups = dict(opts["concurrency_groups"] or {})
        method_groups = _method_groups(self._cls, groups)
        # Threaded and async actors run each call once its arguments are ready (as in Ray:
        # their calls run concurrently anyway); a one-thread actor in order, unless asked.
        concurrent = is_async or concurrency > 1 or bool(groups)
        if opts["allow_out_of_order_execution"] is False and concurrent:
            raise ValueError(
                f"allow_out_of_order_execution=False for {who}: a threaded or async actor "
                "(max_concurrency > 1, concurrency groups or async methods) runs its calls "
                "concurrently, so it cannot run them in order")
        if concurrent or opts["allow_out_of_order_execution"]:
            flags |= _core.SPEC_OUT_OF_ORDER
        setup = {"max_concurrency": concurrency, "is_async": is_async, "name": opts["name"],
                 "max_task_retries": opts["max_task_retries"],
                 "concurrency_groups": groups, "method_groups": method_groups,
                 "runtime_env": _runtime_env.check(opts["runtime_env"], who)}
        try:
            stream, buffers, nested = serialize((args, kwargs, setup))
        except TypeError as e:
            raise TypeError(_serializability.argument_error(
                args, kwargs, f"{_qualified(self._cls)}.__init__")) from e
        deps = [a for a in args if isinstance(a, ObjectRef)]
        options = _core.TaskOptions(
            name=self._class_name, resources=vector, flags=flags,
            max_restarts=opts["max_restarts"], max_task_retries=opts["max_task_retries"],
            detached=(opts["lifetime"] or node.default_actor_lifetime) == "detached")
        _placement.apply(options, placed)
        actor_id, ready = runtime.create_actor(self._class_ref(node), options, stream, buffers,
                                               nested, deps)
        handle = ActorHandle(actor_id, self._class_name, self._methods, self._class_ref(node),
                             ready, tuple(groups), opts["max_pending_calls"])
        if opts["name"] is not None:
            winner = _register(node, key, handle)
            if winner is not None:  # another process took the name first
                _kill(handle, no_restart=True)
                if opts["get_if_exists"]:
                    return winner
                raise _name_taken(key)
        return handle


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class ActorHandle:
    """A reference to an actor; ``handle.method.remote(...)`` calls it."""

    def __init__(self, actor_id: int, class_name: str,
                 methods: dict[str, tuple[int, CallCheck | None]], class_ref,
                 ready: ObjectRef | bytes, groups: tuple[str, ...] = (),
                 max_pending_calls: int = -1):
        self._id = actor_id  # the scheduler's number for it
        self._class_name = class_name
        self._methods = methods
        self._class_ref = class_ref
        # The actor's creation return. Every strong handle, in any process, holds it; when the
        # last one goes the object is freed and the scheduler ends the actor (unless
        # detached). A weak handle (its id only: from get_actor() or current_actor, as in Ray)
        # does not keep the actor alive, and stays weak when passed on.
        strong = isinstance(ready, ObjectRef)
        self._ready = ready if strong else None
        self._ready_id = ready.binary() if strong else ready
        self._groups = groups  # its concurrency groups' names, in order (a call names one)
        # With max_pending_calls: the first return of each call made through this handle that
        # may not have finished (kept only then; checked when the limit is reached).
        self._max_pending = max_pending_calls
        self._pending: list[ObjectRef] = []
        self._call_options: dict[str, _core.TaskOptions] = {}  # by method, built on first call

    def __getattr__(self, name: str) -> ActorMethod:
        methods = self.__dict__.get("_methods", {})
        if name in methods:
            options = self._call_options.get(name)
            if options is None:
                returns, _, retries, retry_exceptions, _ = methods[name]
                options = _call_options(f"{self._class_name}.{name}", returns, retries,
                                        retry_exceptions)
                self._call_options[name] = options
            return ActorMethod(self, name, options, methods[name][1], methods[name][0],
                               decorator=methods[name][4])
        raise AttributeError(
            f"'{self.__dict__.get('_class_name', 'ActorHandle')}' actor has no method {name!r}")

    def __repr__(self) -> str:
        return f"Actor({self._class_name}, {self._ray_actor_id.hex()})"

    @property
    def _actor_id(self) -> ActorID:
        """The actor's id as an ActorID (Ray's handles name it so, and ``_ray_actor_id``)."""
        return ActorID.from_int(self._id)

    _ray_actor_id = _actor_id

    def __dir__(self) -> list[str]:  # as Ray's: what can be called (and __init__)
        return sorted({"__init__", *self._methods})

    def __eq__(self, other) -> bool:
        return isinstance(other, ActorHandle) and other._id == self._id

    def __hash__(self) -> int:
        return hash(("actor", self._id))

    def __reduce__(self):
        return _rebuild_handle, (self._id, self._class_name, self._methods, self._class_ref,
                                 self._ready if self._ready is not None else self._ready_id,
                                 self._groups,
                                 self._max_pending)


def _rebuild_method(handle: ActorHandle, name: str, num_returns) -> ActorMethod:
    method = getattr(handle, name)
    if num_returns == method._returns:
        return method
    return method.options(num_returns=num_returns)


def _rebuild_handle(actor_id, class_name, methods, class_ref, ready, groups,
                    max_pending) -> ActorHandle:
    return ActorHandle(actor_id, class_name, methods, class_ref, ready, groups, max_pending)


def _call_options(name: str, returns, retries: int | None, retry_exceptions: bool,
                  **fields) -> _core.TaskOptions:
    """A call's spec options: its name, returns, and retries (its own max_task_retries, or
    None for the actor's; retry_exceptions)."""
    num_returns, flags = _options.core_returns(returns)
    if retries is not None:
        flags |= _core.SPEC_OWN_RETRIES
    if retry_exceptions:
        flags |= _core.SPEC_RETRY_EXCEPTIONS
    return _core.TaskOptions(name=name, num_returns=num_returns, flags=flags,
                             max_retries=retries or 0, **fields)


class ActorMethod:
    """``handle.method``: call it with ``.remote(...)``."""

    def __init__(self, handle: ActorHandle, name: str, options: _core.TaskOptions,
                 check: CallCheck | None, returns=1, described: bool = False, decorator=None,
                 retry_on: tuple[type, ...] | None = None):
        self._handle = handle
        self._name = name
        self._options = options  # the call's task name and num_returns
        self._check = check
        self._returns = returns  # num_returns as Ray says it: a count, "streaming", "dynamic"
        # .options() named the call (name=) or gave it exception classes to retry on
        # (retry_exceptions=[...]): the spec's name is the call's, and its function is an
        # object describing the call (SPEC_RENAMED_CALL): the method's name, or (name, the
        # classes); made once per node.
        self._described = described
        self._retry_on = retry_on
        self._method_ref: ObjectRef | None = None
        self._method_ref_node = None
        # Ray's __ray_invocation_decorator__ on the method: .remote(*args, **kwargs) returns
        # decorator(call)(args, kwargs), where call(args, kwargs) submits the call.
        self._decorator = decorator

    def __reduce__(self):  # a method passed to a task: its handle and options, as plain data
        return _rebuild_method, (self._handle, self._name, self._returns)

    def __call__(self, *args, **kwargs):
        raise TypeError(
            "Actor methods cannot be called directly. Instead of running "
            f"'object.{self._name}()', try 'object.{self._name}.remote()'.")

    _remote = _options.remote_with_options

    def bind(self, *args, **kwargs) -> ClassMethodNode:
        """This call as a node of a graph (ember.dag), on this live actor."""
        return ClassMethodNode(self, None, {}, args, kwargs)

    def options(self, **options) -> ActorMethod:
        """This call with other options: num_returns, concurrency_group, name (the call's
        name in the process title, logs, errors, the timeline and list_tasks),
        max_task_retries and retry_exceptions (True or False)."""
        _options.check_method_options(options, at_call=True)
        h = self._handle
        group_index = self._options.concurrency_group  # 1 + index; 0: the method's own
        if "concurrency_group" in options:
            group = options["concurrency_group"]
            if group is not None and group not in h._groups:
                raise ValueError(f"actor {h._class_name} has no concurrency group {group!r} "
                                 f"(it has {', '.join(map(repr, h._groups)) or 'none'})")
            group_index = 0 if group is None else 1 + h._groups.index(group)
        returns = options.get("num_returns", self._returns)
        name = options.get("name") or self._options.name
        own = self._options.flags & _core.SPEC_OWN_RETRIES
        retries = options.get("max_task_retries", self._options.max_retries if own else None)
        retry_exceptions, retry_on = options.get("retry_exceptions"), self._retry_on
        if isinstance(retry_exceptions, list):  # only these, in this call
            retry_exceptions, retry_on = True, tuple(retry_exceptions)
        elif retry_exceptions is None:
            retry_exceptions = bool(self._options.flags & _core.SPEC_RETRY_EXCEPTIONS)
        else:  # True or False: the method's own classes, if it has a list
            retry_on = None
        call = _call_options(name, returns, retries, retry_exceptions,
                             concurrency_group=group_index)
        described = self._described or options.get("name") is not None or retry_on is not None
        if described:
            call.flags |= _core.SPEC_RENAMED_CALL
        return ActorMethod(h, self._name, call, self._check, returns, described,
                           self._decorator, retry_on)

    def remote(self, *args, **kwargs):
        if self._decorator is not None:
            return self._decorator(self._submit)(args, kwargs)
        return self._submit(args, kwargs)

    def _submit(self, args, kwargs):
        if self._check is not None:
            self._check.check(args, kwargs)
        node = _node.current()
        h = self._handle
        if args or kwargs:
            try:
                stream, buffers, nested = serialize((args, kwargs))
            except TypeError as e:
                raise TypeError(_serializability.argument_error(
                    args, kwargs, f"{h._class_name}.{self._name}")) from e
            deps = [a for a in args if isinstance(a, ObjectRef)]
            deps += [v for v in kwargs.values() if isinstance(v, ObjectRef)]
        else:
            stream, buffers, nested, deps = None, [], [], []
        runtime = node.scheduler if node.is_driver else node.worker
        if runtime is None:
            raise _BadArgument("actor handles can be used in the driver, tasks and actors only")
        if h._max_pending > 0:
            _admit_call(node, h)
        function = self._method_object(node) if self._described else h._class_ref
        refs = runtime.submit_actor(h._id, function, self._options, stream, buffers, nested,
                                    deps)
        if h._max_pending > 0 and refs:
            h._pending.append(refs[0])
        if self._returns == 1:
            return refs[0]
        if self._returns == 0:  # as in Ray: nothing to wait for
            return None
        if self._returns == "streaming":
            return ObjectRefGenerator(refs[0])
        if self._returns == "dynamic":
            return refs[0]
        return refs

    def _method_object(self, node) -> ObjectRef:
        """A described call's function, in the store of this node: the method's name, or
        (name, the exception classes this call retries on)."""
        if self._method_ref is None or self._method_ref_node != node.store.node_tag:
            described = self._name if self._retry_on is None else (self._name, self._retry_on)
            self._method_ref = node.store.put(*serialize(described))
            self._method_ref_node = node.store.node_tag
        return self._method_ref


def _admit_call(node, handle: ActorHandle) -> None:
    """max_pending_calls: raises PendingCallsLimitExceeded if as many calls made through this
    handle as the limit have not finished."""
    if len(handle._pending) < handle._max_pending:
        return
    done = node.store.wait(handle._pending, len(handle._pending), 0, node.worker)
    handle._pending = [ref for ref, ok in zip(handle._pending, done) if not ok]
    if len(handle._pending) >= handle._max_pending:
        raise PendingCallsLimitExceeded(
            f"actor {handle._class_name} has {len(handle._pending)} calls pending through this "
            f"handle, its max_pending_calls; wait for some to finish")


# --- the actor-name registry ----------------------------------------------------------------
#
# A named actor is recorded in the store, at ids derived from its namespace, name and a
# generation (0, 1, ...), so that any process of the node can look it up. The record holds
# the handle's parts as plain data, not refs: like Ray, a named actor still ends when its last
# handle goes. The record's count belongs to no process (it outlives a task that made the
# actor), and records are never replaced: a name used again after its actor ended gets the
# next generation. Writing a record is the store's atomic create, so of processes racing to
# take one name exactly one wins (a record at a generation is written once); the others
# find the winner's live record and end the actor they made for nothing. The records go with
# the node.


def _name_taken(key: tuple[str, str]) -> ActorAlreadyExistsError:
    namespace, name = key
    return ActorAlreadyExistsError(
        f"The name {name!r} (namespace={namespace!r}) is already taken by another actor; "
        "pass get_if_exists=True to reuse it")


def _registry_id(store, namespace: str, name: str, generation: int) -> bytes:
    digest = hashlib.blake2b(f"{namespace}\0{name}\0{generation}".encode(),
                             digest_size=8).digest()
    return store.named_id(int.from_bytes(digest, "big"))


def _record_at(node, namespace: str, name: str, generation: int):
    """(the record at that generation, or None if there is none, its ActorHandle if live)."""
    store = node.store
    try:
        record = _objects.get(store.ref_from_binary(
            _registry_id(store, namespace, name, generation)))
    except ObjectLostError:
        return None, None
    return record, _live_handle(node, record)


def _live_handle(node, record: tuple) -> ActorHandle | None:
    """A handle to the actor of a registry record, or None if that actor has ended."""
    store = node.store
    actor_id, class_name, methods, class_id, ready_id, groups, max_pending = record[:7]
    if not store.exists(store.ref_from_binary(ready_id)):  # its last handle went: ended
        return None
    if not (node.scheduler.actor_alive(actor_id)[0] if node.is_driver
            else _core.actor_alive(store, actor_id)):  # killed for good, or died
        return None
    return ActorHandle(actor_id, class_name, methods, store.ref_from_binary(class_id),
                       ready_id, groups, max_pending)  # weak, as get_actor()'s are in Ray


def _register(node, key: tuple[str, str], handle: ActorHandle) -> ActorHandle | None:
    """Records the new actor under its name; returns the live actor another process recorded
    first (the new one then has no name), or None."""
    record = (handle._id, handle._class_name, handle._methods, handle._class_ref.binary(),
              handle._ready_id, handle._groups, handle._max_pending, *key)
    stream, buffers, _ = serialize(record)
    generation = 0
    while True:
        try:
            node.store.put_unowned(_registry_id(node.store, *key, generation), stream, buffers)
            return None
        except EmberError:  # taken: by a live actor (a race lost), or by one that ended
            _, live = _record_at(node, *key, generation)
            if live is not None:
                return live
            generation += 1


def _lookup(node, namespace: str, name: str) -> ActorHandle | None:
    """The live actor recorded under the name, or None."""
    generation = 0
    while True:
        record, live = _record_at(node, namespace, name, generation)
        if record is None or live is not None:
            return live
        generation += 1


def named_actors() -> list[tuple[int, str, str]]:
    """(actor id, namespace, name) of every live named actor of the node."""
    node = _node.current()
    store = node.store
    out = []
    for entry in store.list_objects():
        if entry["state"] != "SEALED" or int(entry["object_id"][16], 16) < 8:
            continue  # not a registry record (kNamedIdBit: the top bit of the low word)
        try:
            record = _objects.get(store.ref_from_binary(bytes.fromhex(entry["object_id"])))
        except ObjectLostError:  # freed since the listing
            continue
        if not isinstance(record, tuple):  # another kind of record (a placement group's)
            continue
        if _live_handle(node, record) is not None:
            out.append((record[0], *record[7:]))
    return out


def list_named_actors(all_namespaces: bool = False) -> list:
    """The names of the live named actors of this namespace; with `all_namespaces`, dicts of
    "name" and "namespace" for those of every namespace (as Ray's). Under the Ray backend:
    Ray's."""
    if _backend.active.name == "ray":
        import ray  # noqa: PLC0415 (Ray is optional)

        return ray.util.list_named_actors(all_namespaces)
    if all_namespaces:
        return [{"name": name, "namespace": namespace} for _, namespace, name in named_actors()]
    namespace_now = _node.current().namespace
    return [name for _, namespace, name in named_actors() if namespace == namespace_now]


def get_actor(name: str, namespace: str | None = None) -> ActorHandle:
    """The live actor created with ``name`` (in ``namespace``); ValueError if there is none.
    Works in the driver, tasks and actors."""
    return _backend.active.get_actor(name, namespace)


def _get_actor(name: str, namespace: str | None) -> ActorHandle:
    """get_actor() on an ember node."""
    node = _node.current()
    handle = _lookup(node, namespace or node.namespace, name)
    if handle is None:
        raise ValueError(f"Failed to look up actor with name '{name}'"
                         + (f" in namespace '{namespace}'" if namespace else ""))
    return handle


def kill(actor: ActorHandle, *, no_restart: bool = True) -> None:
    """Kills the actor's process at once (running calls fail with ActorDiedError). With
    no_restart=False an actor with max_restarts is restarted."""
    _backend.active.kill(actor, no_restart)


def _kill(actor: ActorHandle, no_restart: bool) -> None:
    """kill() on an ember node."""
    if not isinstance(actor, ActorHandle):
        raise _BadArgument(f"kill() takes an actor handle, not a {type(actor).__name__}")
    node = _node.current()
    if node.is_driver:
        node.scheduler.kill_actor(actor._id, no_restart)
    elif node.worker is not None:
        node.worker.kill_actor(actor._id, no_restart)  # via the scheduler's ring
    else:
        raise _BadArgument("kill() can be called in the driver, tasks and actors only")
