"""Helpers shared by the sweep tests (imported by name: ``from sweep_helpers import ...``)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from runyard.records import Run
from runyard.sweep.results import CONTROLLER_PID_TAG, is_sweep
from runyard.workspace import Resources

FAST = {
    "heartbeat_interval": 0.2,
    "heartbeat_timeout": 3.0,
    "kill_grace": 1.0,
    "system_metrics_interval": 0.0,
    "local_slots": 4,
}

#: Logs ``acc = x * (1 - 0.5 ** (step + 1))`` for ``--steps`` steps (``--delay`` s apart), so
#: a larger x is better at every step; stops early (writing ``stopped``) when asked to, logs
#: nothing with ``--silent``, exits 3 with ``--fail``.
CURVE = """
import argparse, pathlib, sys, time
import runyard

p = argparse.ArgumentParser()
p.add_argument("--x", type=float, default=0.5)
p.add_argument("--steps", type=int, default=6)
p.add_argument("--delay", type=float, default=0.05)
p.add_argument("--silent", default="false")
p.add_argument("--fail", default="false")
a = p.parse_args()
if a.fail == "true":
    sys.exit(3)
for step in range(a.steps):
    if a.silent != "true":
        runyard.log_metric("acc", a.x * (1 - 0.5 ** (step + 1)), step=step)
    time.sleep(a.delay)
    if runyard.should_stop():
        pathlib.Path("outputs/stopped").write_text(str(step))
        break
"""


SweepWriter = Callable[..., Path]


def runyard_cli(
    ws: Resources, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The real ``runyard`` command line against ``ws``."""
    return subprocess.run(
        [sys.executable, "-m", "runyard", *args],
        env={**os.environ, "RUNYARD_WORKSPACE": str(ws.layout.root)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll until ``condition()`` is truthy and return it; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def controller_pid(run: Run) -> int | None:
    """The pid of the sweep's controller if that process is alive and is that controller."""
    pid = run.tags.get(CONTROLLER_PID_TAG)
    if pid is None:
        return None
    try:
        proc = psutil.Process(int(pid))
        if proc.status() == psutil.STATUS_ZOMBIE or run.id not in " ".join(proc.cmdline()):
            return None
    except psutil.Error:
        return None
    return int(pid)


def clean_up(resources: Resources) -> None:
    """Kill the controllers of sweeps left running, then cancel every run not ended and wait
    for their supervisors to end them."""
    store = resources.store
    runs = store.search_runs()
    for run in runs:
        if is_sweep(run) and (pid := controller_pid(run)) is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    for run in runs:
        if not run.status.is_terminal:
            with contextlib.suppress(Exception):
                store.request_cancel(run.id, "test teardown")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if all(store.get_run(r.id).status.is_terminal for r in runs if not is_sweep(r)):
            break
        time.sleep(0.05)
