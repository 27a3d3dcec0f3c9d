"""Unhandled errors: a task's failure that nobody read before its last ObjectRef went is
reported once in the driver, through ember._private.worker._unhandled_error_handler."""

from __future__ import annotations

import threading
import time

import pytest

import ember
from ember._private import worker as private_worker
from ember.util.state import list_objects

from .conftest import run_python


@ember.remote(max_retries=0)
def fails(*_args, delay: float = 0.0):
    time.sleep(delay)
    raise ValueError("it failed")


@ember.remote
class Failing:
    def fails(self):
        raise KeyError("the actor's call failed")

    def sleeps(self):
        time.sleep(30)


class Reports:
    """Replaces the handler, as a program may: collects what it is given."""

    def __init__(self, monkeypatch):
        self.errors: list[BaseException] = []
        self._cv = threading.Condition()
        monkeypatch.setattr(private_worker, "_unhandled_error_handler", self._handle)

    def _handle(self, e: BaseException) -> None:
        with self._cv:
            self.errors.append(e)
            self._cv.notify_all()

    def wait_for(self, n: int, timeout: float = 20) -> list[BaseException]:
        with self._cv:
            assert self._cv.wait_for(lambda: len(self.errors) >= n, timeout), self.errors
            return list(self.errors)

    def none_after(self, seconds: float = 1.0) -> None:
        time.sleep(seconds)  # what would be reported has had the time to be
        assert self.errors == []


def test_a_failure_dropped_unread_is_reported_once(node, monkeypatch):
    reports = Reports(monkeypatch)
    ref = fails.remote()
    ember.wait([ref], timeout=0)  # not ready yet: a wait that did not see it ready is no read
    del ref
    (error,) = reports.wait_for(1)
    assert isinstance(error, ValueError) and "it failed" in str(error)
    time.sleep(0.5)
    assert len(reports.errors) == 1


def test_a_failure_sealed_after_its_ref_went_is_reported(node, monkeypatch):
    reports = Reports(monkeypatch)
    fails.options(name="late").remote(delay=0.3)  # the ref dies before the task ends
    (error,) = reports.wait_for(1)
    assert "late" in str(error) and isinstance(error, ValueError)


def test_an_actor_calls_failure_is_reported(node, monkeypatch):
    reports = Reports(monkeypatch)
    actor = Failing.remote()
    actor.fails.remote()
    (error,) = reports.wait_for(1)
    assert isinstance(error, KeyError)


def test_failures_that_were_read_are_not_reported(node, monkeypatch):
    reports = Reports(monkeypatch)
    one, two, three, four = (fails.remote() for _ in range(4))
    with pytest.raises(ValueError):
        ember.get(one)
    ember.wait([two], timeout=30)  # seen ready: Ray counts it as handled, so does ember
    deadline = time.monotonic() + 30
    while not (node.store.contains(three) and node.store.contains(four)):  # no read, no wait
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with pytest.raises(ValueError):
        ember.get([three, four])  # both in the list count as read once it raises
    del one, two, three, four
    reports.none_after()


def test_a_failed_argument_is_not_reported_beside_the_failure_it_caused(node, monkeypatch):
    reports = Reports(monkeypatch)
    first = fails.options(name="first").remote()
    fails.options(name="second").remote(first)
    del first
    (error,) = reports.wait_for(1)
    assert "second" in str(error)  # the dependent's failure, which shows the argument's
    time.sleep(0.5)
    assert len(reports.errors) == 1


def test_cancels_and_kills_are_not_reported(node, monkeypatch):
    reports = Reports(monkeypatch)
    actor = Failing.remote()
    sleeping = actor.sleeps.remote()
    ember.kill(actor)
    del sleeping
    waiting = fails.remote(delay=30)
    ember.cancel(waiting)
    del waiting
    reports.none_after(1.5)


def test_the_environment_variable_silences_reports(node, monkeypatch):
    reports = Reports(monkeypatch)
    monkeypatch.setenv("RAY_IGNORE_UNHANDLED_ERRORS", "1")
    fails.remote()
    reports.none_after()
    monkeypatch.delenv("RAY_IGNORE_UNHANDLED_ERRORS")
    monkeypatch.setenv("EMBER_IGNORE_UNHANDLED_ERRORS", "1")
    fails.remote()
    reports.none_after()


def test_a_reported_failure_is_freed(node, monkeypatch):
    reports = Reports(monkeypatch)
    fails.remote()
    reports.wait_for(1)
    before = len(list_objects(limit=10_000))  # the function's own object is in the store now
    for _ in range(50):  # fewer than the store holds for the driver at once: none dropped
        fails.remote()
    reports.wait_for(51, timeout=60)
    deadline = time.monotonic() + 10
    while len(list_objects(limit=10_000)) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(list_objects(limit=10_000)) <= before


def test_a_handler_that_raises_does_not_stop_the_reports(node, monkeypatch):
    calls = []

    def handler(e):
        calls.append(e)
        raise RuntimeError("a broken handler")

    monkeypatch.setattr(private_worker, "_unhandled_error_handler", handler)
    fails.remote()
    fails.remote()
    deadline = time.monotonic() + 20
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(calls) == 2


def test_the_default_report_on_a_fresh_node_names_the_variable():
    result = run_python("""
        import time, ember
        ember.init(num_cpus=1)

        @ember.remote
        def fails():
            raise ValueError("nobody read me")

        fails.remote()
        time.sleep(3)
        ember.shutdown()
    """, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Unhandled error (suppress with 'EMBER_IGNORE_UNHANDLED_ERRORS=1')" in result.stderr
    assert "nobody read me" in result.stderr
    assert result.stderr.count("Unhandled error") == 1
