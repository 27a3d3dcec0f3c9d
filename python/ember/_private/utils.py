"""``ray._private.utils``'s ``DeferSigint`` (holds back SIGINT, Ctrl-C or a cancel, while a
block that must not be torn in the middle runs, and delivers it once the block ends) and
``get_ray_doc_version``. Ray's other internals there are an AttributeError that says so."""

from __future__ import annotations

import contextlib
import signal
import threading


def get_ray_doc_version() -> str:
    """The version of Ray's documentation that messages link to: ember follows the latest."""
    return "latest"


def __getattr__(name: str):
    raise AttributeError(f"ray._private.utils.{name} is a Ray internal ember does not provide")


class DeferSigint(contextlib.AbstractContextManager):
    """A SIGINT during the block is remembered, not delivered; at the end the handler then in
    force (the one before the block, or the last one the block set with signal.signal(),
    which is installed only then) is called once. Only in the main thread, where Python
    runs signal handlers: elsewhere use create_if_main_thread()."""

    def __init__(self):
        self._received = None  # the frame of the first SIGINT held back
        self._handler = None  # what SIGINT runs once the block ends
        self._signal = None  # signal.signal, while it is patched

    @classmethod
    def create_if_main_thread(cls) -> contextlib.AbstractContextManager:
        """A DeferSigint in the main thread; elsewhere a context that does nothing."""
        if threading.current_thread() is threading.main_thread():
            return cls()
        return contextlib.nullcontext()

    def _hold(self, signum, frame) -> None:
        if self._received is None:
            self._received = frame

    def _set_later(self, signum, handler):
        """signal.signal() during the block: SIGINT's new handler waits for the block's end."""
        if signum != signal.SIGINT:
            return self._signal(signum, handler)
        previous, self._handler = self._handler, handler
        return previous

    def __enter__(self):
        self._handler = signal.signal(signal.SIGINT, self._hold)
        self._signal, signal.signal = signal.signal, self._set_later
        return self

    def __exit__(self, *exc_info) -> None:
        signal.signal = self._signal
        signal.signal(signal.SIGINT, self._handler)
        if self._received is not None and callable(self._handler):
            self._handler(signal.SIGINT, self._received)
