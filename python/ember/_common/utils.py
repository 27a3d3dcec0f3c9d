"""``ray._common.utils``'s helper that programs and test suites use for asyncio:
``get_or_create_event_loop``."""

from __future__ import annotations

import asyncio
import warnings


def get_or_create_event_loop() -> asyncio.AbstractEventLoop:
    """The running event loop; else this thread's current one; else a new one, made this
    thread's current loop. (``asyncio.get_event_loop()`` warns, or fails, for the last two on
    the Pythons ember supports.)"""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            loop = asyncio.get_event_loop_policy().get_event_loop()
            if not loop.is_closed():
                return loop
        except RuntimeError:  # not the main thread, or none set
            pass
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop
