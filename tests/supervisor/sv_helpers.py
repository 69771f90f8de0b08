"""Helpers shared by the supervisor tests (imported by name: ``from sv_helpers import ...``)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import psutil

from runyard.records import Run
from runyard.supervisor.process import find_tree
from runyard.workspace import Resources

#: Small settings so failures show within seconds.
FAST = {
    "heartbeat_interval": 0.2,
    "heartbeat_timeout": 3.0,
    "kill_grace": 1.0,
    "system_metrics_interval": 0.0,
    "local_slots": 4,
}

Waiter = Callable[..., Any]
RunMaker = Callable[..., Run]
WorkspaceMaker = Callable[..., Resources]


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is dead)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def clean_up(resources: Resources) -> None:
    """End every run still active in the workspace and any process left of them."""
    store = resources.store
    runs = store.search_runs()
    for run in runs:
        if not run.status.is_terminal:
            with contextlib.suppress(Exception):
                store.request_cancel(run.id, "test teardown")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if all(store.get_run(r.id).status.is_terminal for r in runs):
            break
        time.sleep(0.05)
    for run in runs:
        pid = store.get_run(run.id).supervisor_pid
        if pid is not None and pid != os.getpid() and _is_supervisor_of(pid, run.id):
            deadline = time.monotonic() + 10
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        for proc in find_tree(run_id=run.id):
            with contextlib.suppress(psutil.Error):
                proc.kill()


def _is_supervisor_of(pid: int, run_id: str) -> bool:
    try:
        return run_id in psutil.Process(pid).cmdline()
    except psutil.Error:
        return False
