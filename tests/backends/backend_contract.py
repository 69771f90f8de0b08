"""The contract every ``Backend`` passes (see :mod:`runyard.backends.base`).

A test module binds it to an implementation by subclassing :class:`BackendContract` and
providing the ``backend`` fixture (and a ``ws`` workspace fixture the backend works on).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from runyard.backends import Backend
from runyard.errors import InvalidTransition
from runyard.records import Run, RunStatus
from runyard.spec import JobSpec
from runyard.workspace import Resources


def record(ws: Resources, code: str, **spec: Any) -> Run:
    job = JobSpec(command=(sys.executable, "-c", code), experiment="contract", **spec)
    return ws.store.create_run(experiment=job.experiment, spec=job.to_dict(), compute="local")


def wait_terminal(ws: Resources, run_id: str, timeout: float = 30) -> Run:
    deadline = time.monotonic() + timeout
    while True:
        run = ws.store.get_run(run_id)
        if run.status.is_terminal:
            return run
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} still {run.status} after {timeout}s")
        time.sleep(0.02)


class BackendContract:
    @pytest.fixture
    def backend(self, ws: Resources) -> Backend:
        raise NotImplementedError

    def test_submit_returns_at_once_and_the_run_completes(
        self, backend: Backend, ws: Resources
    ) -> None:
        run = record(ws, "import runyard, time; time.sleep(1); runyard.log_metric('m', 2.0)")
        started = time.monotonic()
        backend.submit(run.id)
        assert time.monotonic() - started < 0.5
        final = wait_terminal(ws, run.id)
        assert final.status is RunStatus.COMPLETED, final.error
        assert final.metrics == {"m": 2.0}
        assert [c.status for c in ws.store.status_history(run.id)] == [
            RunStatus.QUEUED,
            RunStatus.PREPARING,
            RunStatus.STARTING,
            RunStatus.RUNNING,
            RunStatus.FINALIZING,
            RunStatus.COMPLETED,
        ]

    def test_a_run_is_executed_once(self, backend: Backend, ws: Resources) -> None:
        run = record(ws, "import time; time.sleep(1)")
        backend.submit(run.id)
        with pytest.raises(InvalidTransition):
            backend.submit(run.id)
        assert wait_terminal(ws, run.id).status is RunStatus.COMPLETED
        with pytest.raises(InvalidTransition):
            backend.submit(run.id)
        assert [c.status for c in ws.store.status_history(run.id)].count(RunStatus.RUNNING) == 1

    def test_cancel_an_active_run(
        self, backend: Backend, ws: Resources, running: Callable[[Run], None]
    ) -> None:
        run = record(ws, "import time; time.sleep(120)")
        backend.submit(run.id)
        running(run)
        asked = time.monotonic()
        now = backend.cancel(run.id, "enough")
        assert now.cancel_requested and now.cancel_reason == "enough"
        final = wait_terminal(ws, run.id)
        assert time.monotonic() - asked < ws.settings.kill_grace + 3
        assert (final.status, final.reason) == (RunStatus.CANCELED, "enough")
        with pytest.raises(InvalidTransition):
            backend.cancel(run.id)

    def test_cancel_a_queued_run_is_immediate(self, backend: Backend, ws: Resources) -> None:
        run = record(ws, "print('never')")
        final = backend.cancel(run.id)
        assert (final.status, final.reason) == (RunStatus.CANCELED, "canceled by user")
        with pytest.raises(InvalidTransition):
            backend.submit(run.id)
