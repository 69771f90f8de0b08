"""The ``local`` backend: runs execute on this machine, each under its own supervisor.

Capacity is ``settings.local_slots`` runs at once; the others wait Queued in the order
they were recorded, whichever process submitted them (slots are claimed atomically in the
store).
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from pathlib import Path

from runyard.detach import start_detached
from runyard.errors import InvalidTransition
from runyard.interrupts import on_interrupt
from runyard.records import Run, RunStatus
from runyard.supervisor import Supervisor
from runyard.supervisor.reaper import supervisor_alive
from runyard.workspace import Resources

#: Starts a supervisor for a run of a workspace and returns its pid.
Starter = Callable[[str, Path], int]


class LocalBackend:
    """``starter``, when given, starts the supervisors instead of a detached
    ``python -m runyard.supervisor`` each (a sweep's controller passes its
    :class:`~runyard.supervisor.pool.SupervisorPool`)."""

    name = "local"

    def __init__(self, resources: Resources, *, starter: Starter | None = None):
        self.resources = resources
        self.starter = starter

    def submit(self, run_id: str) -> None:
        """Start a detached supervisor for the run (its full id); return once it is
        recorded."""
        store = self.resources.store
        run = store.run_state(run_id)
        if run.status is not RunStatus.QUEUED:
            raise InvalidTransition(f"run {run.id} is {run.status}; only a Queued run can start")
        host = socket.gethostname()
        if run.supervisor_pid is not None and (run.host != host or supervisor_alive(run)):
            raise InvalidTransition(
                f"run {run.id} was already submitted (supervisor pid {run.supervisor_pid})"
            )
        root = self.resources.layout.root
        if self.starter is not None:
            pid = self.starter(run.id, root)
        else:
            pid = start_detached(
                [sys.executable, "-m", "runyard.supervisor", run.id, "--workspace", str(root)],
                self.resources.layout.supervisor_log(run.id),
                what=f"a supervisor for run {run.id}",
            )
        # Recorded now (the supervisor records itself too) so that a supervisor that dies
        # before it gets that far is found by the reaper instead of blocking the queue.
        store.attach_supervisor(run.id, host=host, pid=pid)

    def cancel(self, run_id: str, reason: str = "canceled by user") -> Run:
        return self.resources.store.request_cancel(run_id, reason)

    def run_foreground(
        self,
        run_id: str,
        echo: Callable[[str], None] | None = None,
        *,
        on_status: Callable[[Run], None] | None = None,
    ) -> Run:
        """Supervise the run in this process until it ends; return the final record.

        SIGINT and SIGTERM cancel the run ("canceled by user (interrupt)"; a second one kills
        without waiting for the grace period) instead of raising. Handlers are installed
        only when called from the main thread, and restored afterwards."""
        supervisor = Supervisor(self.resources, run_id, echo=echo, on_status=on_status)
        with on_interrupt(lambda _n: supervisor.interrupt("canceled by user (interrupt)")):
            return supervisor.execute()
