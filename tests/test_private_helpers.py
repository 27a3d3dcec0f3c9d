"""Ray's helpers outside its public API that programs and test suites use, as ember provides
them: ``_private.utils.DeferSigint`` and ``_common.utils.get_or_create_event_loop``."""

from __future__ import annotations

import _thread
import asyncio
import signal
import threading
import time

import pytest

from ember._common.utils import get_or_create_event_loop
from ember._private.utils import DeferSigint


def _interrupt_and_wait() -> None:
    _thread.interrupt_main()  # SIGINT to the main thread, as Ctrl-C (or a cancel)
    time.sleep(0.2)  # delivered by now, unless held back


def test_a_sigint_in_the_block_arrives_when_it_ends():
    before = signal.getsignal(signal.SIGINT)
    reached_the_end = False
    with pytest.raises(KeyboardInterrupt):
        with DeferSigint():
            _interrupt_and_wait()
            reached_the_end = True
    assert reached_the_end
    assert signal.getsignal(signal.SIGINT) is before


def test_a_handler_set_in_the_block_waits_for_its_end_and_runs_once():
    before = signal.getsignal(signal.SIGINT)
    calls = []
    try:
        with DeferSigint():
            signal.signal(signal.SIGINT, lambda *_: calls.append("first"))
            _interrupt_and_wait()
            signal.signal(signal.SIGINT, lambda *_: calls.append("last"))
            _interrupt_and_wait()
            assert calls == []
            assert signal.getsignal(signal.SIGINT) is not before  # held back, not yet set
        assert calls == ["last"]
    finally:
        signal.signal(signal.SIGINT, before)


def test_no_sigint_no_call_and_other_signals_are_set_at_once():
    before_int, before_usr = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGUSR1)
    seen = []
    try:
        with DeferSigint():
            signal.signal(signal.SIGUSR1, lambda *_: seen.append("usr1"))
            assert signal.getsignal(signal.SIGUSR1) is not before_usr
        assert signal.getsignal(signal.SIGINT) is before_int
        assert seen == []
    finally:
        signal.signal(signal.SIGUSR1, before_usr)


def test_outside_the_main_thread_it_does_nothing():
    made = []
    thread = threading.Thread(target=lambda: made.append(DeferSigint.create_if_main_thread()))
    thread.start()
    thread.join()
    assert not isinstance(made[0], DeferSigint)
    assert isinstance(DeferSigint.create_if_main_thread(), DeferSigint)


def test_get_or_create_event_loop_gives_the_running_or_the_current_or_a_new_loop():
    async def running():
        return asyncio.get_running_loop(), get_or_create_event_loop()

    outer = get_or_create_event_loop()
    assert get_or_create_event_loop() is outer  # the current one, kept
    inside, found = outer.run_until_complete(running())
    assert found is inside is outer
    outer.close()
    fresh = get_or_create_event_loop()  # the closed one is replaced
    assert fresh is not outer and not fresh.is_closed()

    other = []
    thread = threading.Thread(target=lambda: other.append(get_or_create_event_loop()))
    thread.start()
    thread.join()
    assert other[0] is not fresh  # a thread with no loop gets its own
    other[0].close()
    fresh.close()
    asyncio.set_event_loop(None)


def test_the_small_helpers_and_what_is_not_provided():
    from ember._common import utils as common
    from ember._private import utils as private

    assert common.hex_to_binary("00ff10") == b"\x00\xff\x10"
    assert common.decode(b"caf\xc3\xa9") == "café" and common.decode("as is") == "as is"
    assert common.decode(None, allow_none=True) == ""
    with pytest.raises(ValueError, match="bytes"):
        common.decode(3)
    assert private.get_ray_doc_version() == "latest"
    for module, name in ((common, "_common"), (private, "_private")):
        with pytest.raises(AttributeError, match=rf"ray\.{name}\.utils\.no_such is a Ray "
                                                 "internal ember does not provide"):
            module.no_such  # noqa: B018
