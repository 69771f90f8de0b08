"""Periodic work that must not wait on the supervisor's main loop: the heartbeat (a long
upload must not make a live run look lost) and system-metric samples."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Job:
    name: str
    every: float
    func: Callable[[], float | None]
    due: float


class Periodic:
    """Runs each added job every ``every`` seconds on one daemon thread, until
    :meth:`stop`. A job may return a number of seconds to wait before its next run instead
    (e.g. a first run that only sets a baseline). A job that raises is reported through
    ``warn`` and keeps its schedule."""

    def __init__(self, warn: Callable[[str], None]):
        self.warn = warn
        self._jobs: list[_Job] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(
        self, name: str, every: float, func: Callable[[], float | None], *, first: float
    ) -> None:
        """Run ``func`` first after ``first`` seconds, then every ``every`` seconds."""
        with self._lock:
            self._jobs.append(_Job(name, every, func, time.monotonic() + first))
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="runyard-periodic", daemon=True)
            self._thread.start()

    def remove(self, name: str) -> None:
        with self._lock:
            self._jobs = [j for j in self._jobs if j.name != name]

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                jobs = list(self._jobs)
            now = time.monotonic()
            for job in jobs:
                if self._stop.is_set():
                    return
                if now >= job.due:
                    job.due = now + job.every
                    try:
                        after = job.func()
                    except Exception as e:
                        self.warn(f"{job.name} failed: {type(e).__name__}: {e}")
                    else:
                        if after is not None:
                            job.due = time.monotonic() + after
            wait = min((j.due for j in jobs), default=now + 1.0) - time.monotonic()
            self._stop.wait(max(0.01, wait))
