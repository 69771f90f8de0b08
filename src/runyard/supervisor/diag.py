"""The supervisor's own log: ``runs/<id>/supervisor.log``."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import IO


class Diagnostics:
    """The supervisor's own log (``runs/<id>/supervisor.log``): one timestamped line per
    event, flushed at once so it survives a crash."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._f: IO[str] | None = open(path, "a", encoding="utf-8")  # noqa: PTH123, SIM115
        self._lock = threading.Lock()

    def write(self, message: str) -> None:
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f".{now % 1:.3f}"[2:]
        with self._lock:
            if self._f is not None:
                self._f.write(f"{stamp} [{os.getpid()}] {message}\n")
                self._f.flush()

    def close(self) -> None:
        with self._lock:
            f, self._f = self._f, None
        if f is not None:
            f.close()


class DiagHandler(logging.Handler):
    """Copies warnings of the events reader about this run's events file to the
    supervisor's log (other supervisors in the same process have their own)."""

    def __init__(self, diag: Diagnostics, events_path: str):
        super().__init__(logging.WARNING)
        self.diag = diag
        self.events_path = events_path

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self.events_path in message:
            self.diag.write(f"{record.levelname.lower()}: {message}")
