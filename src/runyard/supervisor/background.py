"""Periodic work that must not wait on the supervisor's main loop: the heartbeat (a long
upload must not make a live run look lost) and system-metric samples.

Every :class:`Periodic` of a process shares one daemon thread, started at first use (and
anew in a forked child, which does not inherit it): a pool worker supervises run after run
without starting and joining a thread for each, which cost as much CPU as a short run's
status writes. Jobs run one at a time on that thread; a slow job delays the others'.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

#: The shared thread looks at its jobs at least this often (seconds), so that a job added
#: to come due later than that needs no wake-up.
IDLE_WAIT = 1.0
#: Seconds :meth:`Periodic.stop` waits for a job of its own that is running.
STOP_WAIT = 15.0


@dataclass(eq=False)
class _Job:
    owner: Periodic
    name: str
    every: float
    func: Callable[[], float | None]
    due: float


class _Scheduler:
    """The process's thread for periodic jobs."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every job and the thread (in a forked child, where neither is its own, and
        the lock may have been held by the parent's thread)."""
        self.cond = threading.Condition()
        self.jobs: list[_Job] = []
        self.running: _Job | None = None
        self.thread: threading.Thread | None = None
        self.wakes_at = 0.0  # when the thread looks next (monotonic)

    def add(self, job: _Job) -> None:
        with self.cond:
            self.jobs.append(job)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=self._loop, name="runyard-periodic", daemon=True
                )
                self.thread.start()
            elif job.due < self.wakes_at:
                self.cond.notify_all()

    def remove(self, owner: Periodic, name: str | None = None) -> None:
        """Drop ``owner``'s jobs (those called ``name``), waiting for one that is running."""

        def matches(job: _Job) -> bool:
            return job.owner is owner and (name is None or job.name == name)

        with self.cond:
            self.jobs = [j for j in self.jobs if not matches(j)]
            if threading.current_thread() is not self.thread:  # else a job removes itself
                self.cond.wait_for(
                    lambda: self.running is None or not matches(self.running), STOP_WAIT
                )

    def _loop(self) -> None:
        with self.cond:
            while True:
                now = time.monotonic()
                due = [j for j in self.jobs if j.due <= now]
                if not due:
                    self.wakes_at = min([now + IDLE_WAIT, *(j.due for j in self.jobs)])
                    self.cond.wait(max(0.01, self.wakes_at - now))
                    continue
                job = min(due, key=lambda j: j.due)
                job.due = now + job.every
                self.running = job
                self.cond.release()
                try:
                    after = job.func()
                except Exception as e:
                    after = None
                    job.owner.warn(f"{job.name} failed: {type(e).__name__}: {e}")
                finally:
                    self.cond.acquire()
                    self.running = None
                    self.cond.notify_all()
                if after is not None:
                    job.due = time.monotonic() + after


_scheduler = _Scheduler()
os.register_at_fork(after_in_child=_scheduler.reset)


class Periodic:
    """Runs each added job every ``every`` seconds (on the process's shared thread), until
    :meth:`stop`. A job may return a number of seconds to wait before its next run instead
    (e.g. a first run that only sets a baseline). A job that raises is reported through
    ``warn`` and keeps its schedule."""

    def __init__(self, warn: Callable[[str], None]):
        self.warn = warn
        self._stopped = False

    def add(
        self, name: str, every: float, func: Callable[[], float | None], *, first: float
    ) -> None:
        """Run ``func`` first after ``first`` seconds, then every ``every`` seconds."""
        if not self._stopped:
            _scheduler.add(_Job(self, name, every, func, time.monotonic() + first))

    def remove(self, name: str) -> None:
        """Stop the job ``name``; once this returns it is not running and will not run."""
        _scheduler.remove(self, name)

    def stop(self) -> None:
        """Stop every job; once this returns none is running and none will run again."""
        self._stopped = True
        _scheduler.remove(self)
