"""What a task's failure looks like to its caller: Ray's title and user frames, the user's
exception class and attributes through nested gets and failed arguments, and what cannot be
pickled named instead of lost."""

from __future__ import annotations

import logging
import os
import re
import threading

import pytest

import ember
import ember.cloudpickle
from ember.exceptions import ActorDiedError, TaskError, UnserializableException
from ember.util import deregister_serializer, inspect_serializability, register_serializer

from .conftest import run_python

HERE = os.path.abspath(__file__)
TITLE = r"ember::{}\(\) \(pid=\d+, ip=127\.0\.0\.1\)"


def inner(a):
    raise ValueError(a)


@ember.remote
def outer():
    c = 3 + 4
    return inner(c)


@ember.remote
def fails(message="b failed"):
    raise ValueError(message)


@ember.remote
def takes(*args):
    return len(args)


@ember.remote
def gets_failing():
    return ember.get(fails.remote("deep"))


class WithCode(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


class NoRebuild(OSError):
    """Pickles (as its empty args) but cannot be rebuilt from them."""

    def __init__(self, arg):
        pass


class HoldsLock(Exception):
    def __init__(self):
        super().__init__("holds a lock")
        self.lock = threading.Lock()


class Final(Exception):
    def __init_subclass__(cls, **kwargs):
        raise TypeError("Final cannot be subclassed")


class ReadOnlyArgs(Exception):
    def __init__(self, msg):
        self._msg = msg

    @property
    def args(self):
        return (self._msg,)

    def __str__(self):
        return self._msg


@ember.remote
def raises(kind, *args):
    raise kind(*args)


def test_the_traceback_names_user_code_only(node):
    with pytest.raises(ValueError) as info:
        ember.get(outer.remote())
    text = str(info.value)
    lines = text.split("\n")
    assert re.fullmatch(TITLE.format("outer"), lines[0]), lines[0]
    # Both user frames, with this file's name and the source lines; nothing of ember's own.
    assert f'File "{HERE}"' in lines[1] and lines[1].endswith("in outer")
    assert lines[2].strip() == "return inner(c)"
    assert any(line.endswith("in inner") for line in lines)
    assert "raise ValueError(a)" in text
    assert lines[-1] == "ValueError: 7"
    assert "ember/" not in text.replace(HERE, "") and "Traceback" not in text


def test_a_nested_get_keeps_the_class_and_both_tracebacks(node):
    with pytest.raises(ValueError) as info:
        ember.get(gets_failing.remote())
    err = info.value
    assert isinstance(err, TaskError)
    assert type(err.cause) is ValueError and str(err.cause) == "deep"  # not a TaskError
    text = str(err)
    assert re.match(TITLE.format("gets_failing"), text)
    assert re.search("ember.exceptions.TaskError\\(ValueError\\): " + TITLE.format("fails"), text)
    assert text.endswith("ValueError: deep")


def test_a_failed_argument_fails_its_task_with_the_same_class(node):
    with pytest.raises(ValueError) as info:
        ember.get(takes.remote(takes.remote(fails.remote()), 1))
    err = info.value
    assert type(err.cause) is ValueError
    lines = str(err).split("\n")
    note = "  At least one of the input arguments for this task could not be computed:"
    # takes <- takes <- fails: each level says an argument failed, then shows it.
    assert re.fullmatch(TITLE.format("takes"), lines[0])
    assert lines[1] == note
    assert re.fullmatch("ember.exceptions.TaskError: " + TITLE.format("takes"), lines[2])
    assert lines[3] == note
    assert re.fullmatch("ember.exceptions.TaskError: " + TITLE.format("fails"), lines[4])
    assert lines[-1] == "ValueError: b failed"


def test_the_user_exception_keeps_its_attributes(node):
    with pytest.raises(WithCode) as info:
        ember.get(raises.remote(WithCode, 42))
    err = info.value
    assert err.code == 42 and isinstance(err, TaskError)
    assert err.args == (err.cause,) and type(err.cause) is WithCode
    assert repr(err) == "TaskError(WithCode)(WithCode(42))"


def test_an_exception_with_a_read_only_args_property(node):
    with pytest.raises(ReadOnlyArgs) as info:
        ember.get(raises.remote(ReadOnlyArgs, "boom"))
    assert isinstance(info.value, TaskError)
    assert info.value.args == (info.value.cause,) and "boom" in str(info.value)


def test_a_class_that_cannot_be_subclassed_is_raised_as_task_error(node, caplog):
    with caplog.at_level(logging.WARNING, logger="ember.exceptions"):
        with pytest.raises(TaskError) as info:
            ember.get(raises.remote(Final, "from a task"))
    assert not isinstance(info.value, Final)
    assert type(info.value.cause) is Final and str(info.value.cause) == "from a task"
    assert "raised as TaskError only" in caplog.text and "`task_error.cause`" in caplog.text


def test_an_exception_that_cannot_be_pickled_keeps_its_text(node):
    with pytest.raises(UnserializableException) as info:
        ember.get(raises.remote(HoldsLock))
    cause = info.value.cause
    assert isinstance(cause, UnserializableException) and isinstance(info.value, TaskError)
    text = str(cause)
    assert "test_task_errors.HoldsLock isn't serializable" in text
    assert "Original exception details:" in text and "holds a lock" in text


def test_an_exception_the_caller_cannot_rebuild_is_unserializable(node):
    with pytest.raises(UnserializableException) as info:
        ember.get(raises.remote(NoRebuild, "x"))
    text = str(info.value)
    assert text.startswith("Failed to deserialize exception. Refer to ")  # Ray's text
    assert "custom-serializers-for-exceptions" in text and "Original exception:" in text
    assert isinstance(info.value.__cause__, TypeError)  # why: shown in its traceback
    assert re.search("ember.exceptions.TaskError: " + TITLE.format("raises"), text)
    assert "NoRebuild" in text.split("\n")[-1]


@ember.remote
def raises_with_a_serializer():
    register_serializer(NoRebuild, serializer=lambda e: "state",
                        deserializer=lambda state: WithCode(state))
    raise NoRebuild("x")


def test_a_registered_serializer_rebuilds_a_raised_exception(node):
    # Registered in the task only: the deserializer travels with the value.
    with pytest.raises(TaskError) as info:
        ember.get(raises_with_a_serializer.remote())
    assert type(info.value.cause) is WithCode and info.value.cause.code == "state"


class Locked:
    def __init__(self, x):
        self.x = x
        self.lock = threading.Lock()


def test_register_and_deregister_a_serializer_for_put(node):
    with pytest.raises(TypeError, match="Could not serialize the put value"):
        ember.put(Locked(1))
    register_serializer(Locked, serializer=lambda a: a.x, deserializer=Locked)
    try:
        back = ember.get(ember.put(Locked(5)))
        assert type(back) is Locked and back.x == 5
    finally:
        deregister_serializer(Locked)
    with pytest.raises(TypeError):
        ember.put(Locked(1))
    deregister_serializer(Locked)  # again: nothing happens
    with pytest.raises(TypeError, match="a class"):
        register_serializer(Locked(1), serializer=str, deserializer=str)


@ember.remote
class Actor:
    def __init__(self, fail=False):
        self.fail = fail
        if fail:
            inner(3)

    def call(self):
        inner(7)

    def __repr__(self):
        return "Actor-repr"


def test_an_actor_error_names_the_actor(node):
    a = Actor.remote()
    with pytest.raises(ValueError) as info:
        ember.get(a.call.remote())
    first = str(info.value).split("\n")[0]
    assert re.fullmatch(r"ember::Actor\.call\(\) \(pid=\d+, ip=127\.0\.0\.1, "
                        f"actor_id={a._actor_id.hex()}, repr=Actor-repr\\)", first), first


def test_an_actor_whose_init_raised_says_so_on_every_call(node):
    a = Actor.remote(True)
    for _ in range(2):
        with pytest.raises(ActorDiedError) as info:
            ember.get(a.call.remote())
        text = str(info.value)
        assert text.startswith("The actor died because of an error raised in its creation "
                               "task, ember::Actor.__init__() (pid=")
        assert f"actor_id={a._actor_id.hex()}, repr=Actor-repr)" in text
        assert "in __init__" in text and text.endswith("ValueError: 3")


def test_a_dual_error_pickles_as_dual():
    err = TaskError("f", "tb", WithCode(3)).as_instanceof_cause()
    back = ember.cloudpickle.loads(ember.cloudpickle.dumps(err))
    assert isinstance(back, WithCode) and isinstance(back, TaskError) and back.code == 3


def test_functions_keep_their_file_and_lines_through_pickling():
    def local(x):
        return x + 1

    back = ember.cloudpickle.loads(ember.cloudpickle.dumps(local))
    assert back(1) == 2
    assert back.__code__.co_filename == HERE
    assert back.__code__.co_firstlineno == local.__code__.co_firstlineno


lock = threading.Lock()


def _holders():
    """A function and a class that hold `lock`; local, so they pickle by value (as a
    program's own do), not by reference to this module."""
    def uses_lock():
        return lock

    class HasLockMethod:
        def method(self):
            return lock

    return {"lock": lock, "function": uses_lock, "class": HasLockMethod}


@pytest.mark.parametrize("which", ["lock", "function", "class"])
def test_inspect_serializability_finds_the_lock(which, capsys):
    ok, failures = inspect_serializability(_holders()[which])
    assert not ok
    assert [f.obj for f in failures] == [lock]
    assert "Checking Serializability of" in capsys.readouterr().out


def test_dumps_debug_says_what_inside_a_value_cannot_be_pickled():
    lock = threading.Lock()

    def uses_lock():
        return lock

    with pytest.raises(TypeError, match=r"(?s)Could not serialize the value .*lock"):
        ember.cloudpickle.dumps_debug(uses_lock)
    assert ember.cloudpickle.loads(ember.cloudpickle.dumps_debug([1, 2])) == [1, 2]


def test_inspect_serializability_of_a_value_that_pickles(capsys):
    assert inspect_serializability([1, "a"]) == (True, set())


def test_what_cannot_be_sent_is_named(node):
    @ember.remote
    def takes_lock(x):
        return x

    @ember.remote
    def captures_lock():
        return lock

    with pytest.raises(TypeError, match=r"Could not serialize the argument <unlocked "
                       r"_thread.lock object at \w+> for a task or actor "
                       r".*test_what_cannot_be_sent_is_named.<locals>.takes_lock:\n="):
        takes_lock.remote(lock)
    with pytest.raises(TypeError, match=r"Could not serialize the function "
                       r".*captures_lock:\n=[\s\S]*FailTuple\(lock "):
        captures_lock.remote()


def test_a_program_that_knows_ember_as_ray_sees_rays_names():
    # ember under the name ray (as ember.as_ray() or a shim gives it): errors read as Ray's.
    result = run_python("""
        import sys
        import ember
        sys.modules["ray"] = ember
        import ray

        @ray.remote
        def fails():
            raise ValueError("x")

        @ray.remote
        def nested():
            return ray.get(fails.remote())

        ray.init(num_cpus=1)
        try:
            ray.get(nested.remote())
        except ValueError as e:
            print(type(e).__module__, type(e).__name__)
            print(e)
        ray.shutdown()
    """, timeout=60)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("ray.exceptions RayTaskError(ValueError)\nray::nested() (pid=")
    assert "ray.exceptions.RayTaskError(ValueError): ray::fails() (pid=" in out


@pytest.mark.parametrize("allowed", ["0", "1"])
def test_out_of_band_refs_are_refused_only_when_the_switch_says_so(monkeypatch, allowed):
    monkeypatch.setenv("RAY_allow_out_of_band_object_ref_serialization", allowed)
    ember.init(num_cpus=1, object_store_memory=64 << 20)  # workers inherit the switch
    try:
        ref = ember.put(41)

        @ember.remote
        def captures():  # the ref is in the function's code, not its arguments
            return ember.get(ref) + 1

        @ember.remote
        def pickles_one():
            return len(ember.cloudpickle.dumps(ember.put(1)))

        @ember.remote
        def takes(refs):
            return ember.get(refs[0]) + 1

        assert ember.get(takes.remote([ref]), timeout=10) == 42  # in band: always fine
        if allowed == "1":
            assert ember.get(captures.remote(), timeout=10) == 42
            assert ember.get(pickles_one.remote(), timeout=10) > 0
        else:
            with pytest.raises(ember.exceptions.OufOfBandObjectRefSerializationException,
                               match="captured by the code"):
                captures.remote()
            with pytest.raises(ember.exceptions.OufOfBandObjectRefSerializationException,
                               match="pickle or cloudpickle directly"):
                ember.get(pickles_one.remote(), timeout=10)
    finally:
        ember.shutdown()
