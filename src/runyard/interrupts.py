"""Turning Ctrl-C (SIGINT) and SIGTERM into a cancel for work driven in the foreground."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def on_interrupt(callback: Callable[[int], None]) -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM call ``callback(n)`` (n = 1 for the first
    signal, 2 for the second, ...) instead of raising. Only from the main thread (elsewhere
    signals cannot be handled, and the block runs unchanged); the previous handlers are
    restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    count = 0

    def handler(_signum: int, _frame: object) -> None:
        nonlocal count
        count += 1
        callback(count)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
