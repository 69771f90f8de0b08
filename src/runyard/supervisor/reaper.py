"""Finding runs whose supervisor vanished, failing them as lost, and ending their processes.

A supervisor is gone when its process no longer exists on its host (killed, crashed), or —
for any host, e.g. after a machine restart or on another node — when its heartbeat is older
than ``heartbeat_timeout``. The CLI reaps before listings; supervisors waiting for a slot
reap too, so a lost run never holds a slot (or the head of the queue) for long.
"""

from __future__ import annotations

import os
import socket

import psutil

from runyard.errors import InvalidTransition
from runyard.records import ACTIVE_STATUSES, Run, RunState, RunStatus
from runyard.supervisor.process import find_tree, terminate_tree
from runyard.workspace import Resources

#: Seconds of slack when comparing a process's start time with a heartbeat: Linux reports
#: start times to within a second.
_CLOCK_SLACK = 2.0
#: At most this long between TERM and KILL for a lost run's processes (callers are waiting).
_REAP_GRACE = 1.0


def reap_lost(resources: Resources, *, host: str | None = None) -> list[str]:
    """Fail every lost run as ``lost: ...`` and end its user processes on this host.

    Returns the ids of the runs marked lost. Safe to call from any number of processes at
    once: each change is a compare-and-set in the store."""
    store = resources.store
    host = host or socket.gethostname()
    candidates = store.search_runs(statuses=[RunStatus.QUEUED, *ACTIVE_STATUSES])
    dead_pids: set[int] = set()
    lost: list[str] = []
    for run in candidates:
        if run.host != host or run.supervisor_pid is None or supervisor_alive(run):
            continue
        if run.status is RunStatus.QUEUED:
            # Waiting for a slot when it died: nothing runs, but it blocks the queue's head.
            try:
                store.transition(
                    run.id,
                    RunStatus.FAILED,
                    expected=[RunStatus.QUEUED],
                    reason=f"lost: supervisor (pid {run.supervisor_pid}) died while queued",
                )
                lost.append(run.id)
            except InvalidTransition:
                pass
        else:
            dead_pids.add(run.supervisor_pid)
    marked = store.mark_lost(
        heartbeat_timeout=resources.settings.heartbeat_timeout, host=host, dead_pids=dead_pids
    )
    grace = min(resources.settings.kill_grace, _REAP_GRACE)
    for run_id in marked:
        lost.append(run_id)
        run = store.get_run(run_id)
        if run.host == host:
            end_processes(resources, run, grace=grace)
    return lost


def supervisor_alive(run: Run | RunState) -> bool:
    """Whether the run's supervisor process still exists on this machine.

    Guards against pid reuse: the supervisor beat its heart after it started, so a process
    with its pid that started after the last heartbeat is someone else."""
    if run.supervisor_pid is None:
        return False
    try:
        proc = psutil.Process(run.supervisor_pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        started = proc.create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # exists but unreadable (another user's): assume it is alive
        return True
    return run.heartbeat_at is None or started <= run.heartbeat_at + _CLOCK_SLACK


def end_processes(resources: Resources, run: Run, *, grace: float) -> int:
    """End the user processes of ``run`` left on this machine; returns how many there were."""
    pgid = resources.store.process_group(run.id)
    procs = find_tree(pgid=pgid, run_id=run.id, confirm_group=True)
    if procs:
        # The group is the run's if one of the processes found is in it (find_tree kept
        # group members only when one carries the run's variable); signal it as a whole
        # then, which also catches a child forked meanwhile.
        group = pgid if pgid is not None and any(_pgid(p) == pgid for p in procs) else None
        terminate_tree(procs, grace=grace, pgid=group)
    return len(procs)


def _pgid(proc: psutil.Process) -> int | None:
    try:
        return os.getpgid(proc.pid)
    except OSError:
        return None
