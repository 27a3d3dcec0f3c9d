"""``ray._common.utils``'s helpers that programs and test suites use:
``get_or_create_event_loop``, ``hex_to_binary``, ``decode``. Ray's other internals there are
an AttributeError that says so."""

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


def hex_to_binary(hex_identifier: str) -> bytes:
    """An id's bytes from its hex (ObjectRef.hex(), ActorID.hex()...)."""
    return bytes.fromhex(hex_identifier)


def decode(byte_str: bytes | str, allow_none: bool = False, encode_type: str = "utf-8"):
    """`byte_str` as text (str passes through; None only with `allow_none`)."""
    if byte_str is None and allow_none:
        return ""
    if not isinstance(byte_str, (bytes, str)):
        raise ValueError(f"The argument {byte_str!r} must be a bytes object.")
    return byte_str.decode(encode_type) if isinstance(byte_str, bytes) else byte_str


def __getattr__(name: str):
    raise AttributeError(f"ray._common.utils.{name} is a Ray internal ember does not provide")
