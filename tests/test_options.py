"""Options of tasks and actors: each works as in Ray or is refused, naming the option and why;
none is accepted and dropped."""

from __future__ import annotations

import time

import pytest

import ember
from ember.exceptions import RuntimeEnvSetupError
from ember.util.scheduling_strategies import (
    NodeAffinitySchedulingStrategy,
    NodeLabelSchedulingStrategy,
    PlacementGroupSchedulingStrategy,
)

from .conftest import STORE_BYTES


@pytest.fixture
def accel_node():
    ember.init(num_cpus=2, object_store_memory=STORE_BYTES,
               resources={"accelerator_type:A100": 1})
    try:
        yield ember._node.current()
    finally:
        ember.shutdown()


@ember.remote
def span(seconds):
    start = time.monotonic()
    time.sleep(seconds)
    return start, time.monotonic()


@ember.remote
class Box:
    def get(self):
        return "box"


def test_memory_is_a_resource_tasks_hold_while_they_run(accel_node):
    total = ember.cluster_resources()["memory"]
    heavy = span.options(memory=int(total * 0.6))
    a, b = ember.get([heavy.remote(0.3), heavy.remote(0.3)])
    assert a[1] <= b[0] or b[1] <= a[0]  # 2 CPUs free, but the memory fits one at a time
    light = span.options(memory=int(total * 0.4))
    a, b = ember.get([light.remote(0.3), light.remote(0.3)])
    assert a[0] < b[1] and b[0] < a[1]  # these two fit together
    with pytest.raises(ValueError, match="memory"):
        span.options(memory=int(total * 2)).remote(0)  # never fits: refused at submission


def test_accelerator_type_needs_the_resource_the_node_declares(accel_node):
    assert ember.get(span.options(accelerator_type="A100").remote(0))
    with pytest.raises(ValueError, match="accelerator_type:H100"):
        span.options(accelerator_type="H100").remote(0)
    with pytest.raises(ValueError, match="accelerator_type must be a str"):
        span.options(accelerator_type=100)


def test_scheduling_strategies_of_one_node(accel_node):
    here = ember.get_runtime_context().get_node_id()
    for strategy in ("DEFAULT", "SPREAD", NodeAffinitySchedulingStrategy(here, soft=False),
                     NodeAffinitySchedulingStrategy("ab" * 8, soft=True)):
        assert ember.get(span.options(scheduling_strategy=strategy).remote(0))
        assert ember.get(Box.options(scheduling_strategy=strategy).remote().get.remote()) == "box"
    with pytest.raises(ValueError, match=f"must run on node {'ab' * 8}.*this node is {here}"):
        span.options(scheduling_strategy=NodeAffinitySchedulingStrategy("ab" * 8, soft=False)
                     ).remote(0)
    # No group: as in Ray, the task runs outside any (and escapes a capturing parent's).
    assert ember.get(span.options(
        scheduling_strategy=PlacementGroupSchedulingStrategy(None)).remote(0))
    with pytest.raises(ValueError, match="node labels"):
        Box.options(scheduling_strategy=NodeLabelSchedulingStrategy({"zone": "a"})).remote()
    with pytest.raises(ValueError, match="Invalid scheduling_strategy"):
        span.options(scheduling_strategy="NEAREST")


@pytest.mark.parametrize(("options", "reason"), [
    ({"placement_group_bundle_index": 0}, "needs a placement group"),
    ({"label_selector": {"zone": "a"}}, "node labels"),
    ({"enable_task_events": False}, "always records task events"),
    ({"_generator_backpressure_num_objects": 4}, "backpressure of generators"),
], ids=lambda v: next(iter(v)) if isinstance(v, dict) else "")
def test_a_task_option_ember_cannot_honour_is_refused_at_submission(accel_node, options, reason):
    configured = span.options(**options)  # valid for Ray, so the decorator takes it
    with pytest.raises(ValueError, match=f"{next(iter(options))}.*{reason}"):
        configured.remote(0)


def test_object_store_memory_is_refused_for_tasks_and_deprecated_for_actors(accel_node):
    with pytest.raises(ValueError, match="object_store_memory.*not implemented for tasks"):
        span.options(object_store_memory=1 << 20).remote(0)
    with pytest.warns(DeprecationWarning, match="'object_store_memory' for actors is deprecated"):
        box = Box.options(object_store_memory=1 << 20)
    assert ember.get(box.remote().get.remote()) == "box"


def test_unknown_and_malformed_options_raise_where_given():
    with pytest.raises(ValueError, match="invalid option.*bogus"):
        ember.remote(bogus=1)(lambda: None)
    with pytest.raises(ValueError, match="invalid option.*bogus"):
        Box.options(bogus=1)
    with pytest.raises(ValueError, match="memory must be a non-negative number"):
        span.options(memory=-1)
    with pytest.raises(ValueError, match="use memory="):
        span.options(resources={"memory": 1})


@pytest.mark.parametrize(("options", "error", "match"), [
    ({"runtime_env": {"pip": ["requests"]}}, RuntimeEnvSetupError, "runtime_env=.'pip'"),
    ({"local_mode": True}, ValueError, "local mode"),
    ({"labels": {"zone": "a"}}, ValueError, "node labels"),
    ({"_system_config": {"object_timeout_milliseconds": 100}}, ValueError,
     "object_timeout_milliseconds"),
    ({"_node_ip_address": "10.0.0.1"}, ValueError, "127.0.0.1"),
    ({"not_an_option": 1}, RuntimeError, "Unknown keyword argument.*not_an_option"),
], ids=lambda v: next(iter(v)) if isinstance(v, dict) else "")
def test_init_refuses_what_the_node_cannot_honour(options, error, match):
    with pytest.raises(error, match=match):
        ember.init(num_cpus=1, object_store_memory=STORE_BYTES, **options)
    assert not ember.is_initialized()


def test_init_namespace_is_where_named_actors_live():
    ember.init(num_cpus=2, object_store_memory=STORE_BYTES, namespace="team",
               runtime_env=None, local_mode=False, _system_config={})  # defaults: taken
    try:
        assert ember.get_runtime_context().namespace == "team"
        boxes = [Box.options(name="shared").remote(),
                 Box.options(name="shared", namespace="other").remote()]  # no clash

        @ember.remote
        def look_up():  # in a worker: the job's namespace too
            return (ember.get_runtime_context().namespace,
                    ember.get(ember.get_actor("shared").get.remote()))

        assert ember.get(look_up.remote()) == ("team", "box")
        assert ember.get(ember.get_actor("shared", namespace="team").get.remote()) == "box"
        with pytest.raises(ValueError, match="Failed to look up actor"):
            ember.get_actor("shared", namespace="default")
        del boxes
    finally:
        ember.shutdown()


@pytest.mark.parametrize(("selector", "error"), [
    ({"zone": "eu-1", "example.com/disk": "!hdd"}, None),
    ({"gpu": "in(a10, l4)", "tier": "!in(free)"}, None),
    ({"zone": ""}, None),
    (["zone"], TypeError),
    ({"bad key": "x"}, ValueError),
    ({"UPPER.example/zone": "x"}, ValueError),  # a prefix is lower-case DNS
    ({"zone": "eu 1"}, ValueError),
    ({"gpu": "in(a10,,l4)"}, ValueError),
    ({"gpu": "in(a10"}, ValueError),
], ids=str)
def test_label_selectors_are_checked_as_ray_checks_them(accel_node, selector, error):
    if error is None:
        configured = span.options(label_selector=selector)  # well-formed: taken ...
        with pytest.raises(ValueError, match="node labels"):
            configured.remote(0)  # ... and refused where it would have to match a label
    else:
        with pytest.raises(error):
            span.options(label_selector=selector)
        with pytest.raises(error):
            Box.options(fallback_strategy=[{"label_selector": selector}])


def test_a_fallback_strategy_is_a_list_of_label_selectors():
    with pytest.raises(TypeError, match="must be a list"):
        Box.options(fallback_strategy={"label_selector": {"zone": "a"}})
    with pytest.raises(ValueError, match="unsupported option"):
        Box.options(fallback_strategy=[{"num_cpus": 1}])


def test_malformed_counts_and_amounts_raise_as_in_ray():
    with pytest.raises(TypeError, match=r"The type of keyword 'max_retries' must be \(<class "
                                        r"'int'>, <class 'NoneType'>\), but received type "
                                        r"<class 'float'>"):
        ember.remote(max_retries=0.5)(lambda: None)
    with pytest.raises(ValueError, match="'max_restarts' only accepts None, 0, -1 or a positive "
                                         "integer, where -1 represents infinity"):
        Box.options(max_restarts=-2)
    with pytest.raises(TypeError, match="The type of keyword 'num_returns'"):
        span.options(num_returns=1.5)
    with pytest.raises(ValueError, match="'num_returns' only accepts None, a non-negative"):
        span.options(num_returns=-1)
    with pytest.raises(ValueError, match="fractional quantity of resource num_gpus cannot go "
                                         "beyond 0.0001"):
        span.options(num_gpus=0.00001)
    with pytest.raises(ValueError, match="fractional quantity of resource custom cannot"):
        span.options(resources={"custom": 1e-7})
    assert span.options(max_retries=None, num_cpus=0.0001)._options["max_retries"] == 3


def test_a_function_that_captures_a_huge_value_is_refused_as_in_ray(node, monkeypatch):
    monkeypatch.setenv("FUNCTION_SIZE_ERROR_THRESHOLD", str(4 << 20))  # small data in tests
    big = bytearray(5 << 20)

    @ember.remote
    def f():
        return len(big)

    @ember.remote
    class Holder:
        def size(self):
            return len(big)

    with pytest.raises(ValueError, match=r"The remote function .*\.f is too large \(5 MiB > "
                                         r"FUNCTION_SIZE_ERROR_THRESHOLD=4 MiB\).*put\(\)"):
        f.remote()
    with pytest.raises(ValueError, match="The actor Holder is too large"):
        Holder.remote()
    ref = ember.put(big)  # the way out: share the value through the store

    @ember.remote
    def g(value):
        return len(value)

    assert ember.get(g.remote(ref)) == 5 << 20


def test_an_async_def_task_is_refused_where_it_is_declared():
    async def coroutine():
        return 1

    with pytest.raises(ValueError, match="'async def' should not be used for remote tasks"):
        ember.remote(coroutine)


def test_remote_with_empty_parentheses_is_a_mistake_as_in_ray():
    with pytest.raises(TypeError, match="without parentheses, or with options"):
        @ember.remote()
        class Nothing:
            pass
