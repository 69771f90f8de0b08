"""Status changes: compare-and-set transitions, slot claims, cancel requests, lost runs.

Each function runs inside the caller's write transaction. A run's row is read ``FOR UPDATE``
(a no-op on SQLite, where ``BEGIN IMMEDIATE`` already serializes writers) and updated only
if its status is still the one read, so a change is never applied on top of another.
Supervisors run these for every run, so their statements are built once (see :mod:`.runs`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from runyard.errors import InvalidTransition, RunNotFound
from runyard.records import ACTIVE_STATUSES, ALLOWED_TRANSITIONS, RunState, RunStatus
from runyard.store.sql import dialects
from runyard.store.sql.runs import STATE_COLUMNS, record_statuses, state_of
from runyard.store.sql.schema import runs, tags

_ACTIVE = sorted(s.value for s in ACTIVE_STATUSES)
#: Runs driven by a sweep controller rather than a supervisor: never marked lost (a sweep
#: whose controller died stays resumable; see :mod:`runyard.sweep.controller`).
_CONTROLLED = sa.select(tags.c.run_id).where(tags.c.key == "runyard.type", tags.c.value == "sweep")

_BY_ID = runs.c.id == sa.bindparam("run_id")
#: The SET clause of these updates comes from the parameters given (bound names in the WHERE
#: clause must differ from the columns').
_SET = sa.update(runs).where(runs.c.id == sa.bindparam("where_id"))
_COMPUTE = sa.select(runs.c.compute).where(_BY_ID)
_ON_COMPUTE = runs.c.compute == sa.bindparam("compute")
#: The oldest Queued run on a compute target, and how many runs there hold a slot.
_QUEUE = sa.select(
    sa.select(runs.c.id)
    .where(_ON_COMPUTE, runs.c.status == RunStatus.QUEUED.value)
    .order_by(runs.c.created_at, runs.c.id)
    .limit(1)
    .scalar_subquery(),
    sa.select(sa.func.count()).where(_ON_COMPUTE, runs.c.status.in_(_ACTIVE)).scalar_subquery(),
)

#: Statuses with the times they were entered; the last is the status moved to.
_Steps = list[tuple[RunStatus, float]]


@functools.cache
def _move_statement(starts: tuple[str, ...]) -> sa.Update:
    """Compare-and-set from any of the statuses ``starts``, returning the new state (an OR
    of equalities rather than IN, whose list Core renders again at every execution)."""
    return _SET.where(sa.or_(*(runs.c.status == s for s in starts))).returning(*STATE_COLUMNS)


@functools.cache
def _lock_statement(columns: tuple[sa.Column[Any], ...]) -> sa.Select[Any]:
    return sa.select(runs.c.status, *columns).where(_BY_ID).with_for_update()


def _locked(conn: sa.Connection, run_id: str, *columns: sa.Column[Any]) -> sa.Row[Any]:
    row = conn.execute(_lock_statement(columns), {"run_id": run_id}).first()
    if row is None:
        raise RunNotFound(run_id)
    return row


def transition(
    conn: sa.Connection,
    run_id: str,
    status: RunStatus,
    *,
    expected: Iterable[RunStatus] | None = None,
    reason: str | None = None,
    exit_code: int | None = None,
    error: str | None = None,
    via: Sequence[tuple[RunStatus, float]] = (),
    pgid: int | None = None,
) -> RunState:
    """One compare-and-set update from any status the path is allowed from; only when it
    fails is the status read, to say why."""
    wanted = None if expected is None else frozenset(RunStatus(s) for s in expected)
    path: _Steps = [*((RunStatus(s), t) for s, t in via), (RunStatus(status), time.time())]
    extra = {} if pgid is None else {"pgid": pgid}
    starts = [s for s in RunStatus if _refusal(run_id, s, path, wanted) is None]
    state = _move(conn, run_id, starts, path, reason, exit_code, error, extra) if starts else None
    if state is not None:
        return state
    current = RunStatus(_locked(conn, run_id).status)
    raise _refusal(run_id, current, path, wanted) or _changed(run_id, path)


def _refusal(
    run_id: str, current: RunStatus, path: _Steps, wanted: frozenset[RunStatus] | None
) -> InvalidTransition | None:
    """Why a run in ``current`` cannot take ``path``, or None when it can."""
    before = current
    for step, _ in path:
        if step not in ALLOWED_TRANSITIONS[before] or (
            wanted is not None and current not in wanted
        ):
            message = f"run {run_id} is {before}; cannot move to {step}"
            if wanted is not None and current not in wanted:
                message += f" (expected {' or '.join(sorted(s.value for s in wanted))})"
            return InvalidTransition(message)
        before = step
    return None


def _changed(run_id: str, path: _Steps) -> InvalidTransition:
    return InvalidTransition(f"run {run_id} changed status meanwhile; cannot move to {path[-1][0]}")


def _move(
    conn: sa.Connection,
    run_id: str,
    starts: Iterable[RunStatus],
    path: _Steps,
    reason: str | None,
    exit_code: int | None,
    error: str | None,
    extra: dict[str, Any],
) -> RunState | None:
    """Take ``path`` if the run is in one of ``starts``, setting ``extra`` columns too;
    None if it is not."""
    values: dict[str, Any] = {"status": path[-1][0].value, **extra}
    for step, at in path:
        if step is RunStatus.PREPARING:
            values["heartbeat_at"] = at  # claimed: the claimer counts as alive until it attaches
        if step is RunStatus.RUNNING:
            values["started_at"] = at
        if step.is_terminal:
            values["ended_at"] = at
    for name, value in (("reason", reason), ("exit_code", exit_code), ("error", error)):
        if value is not None:
            values[name] = value
    stmt = _move_statement(tuple(s.value for s in starts))
    row = conn.execute(stmt, {"where_id": run_id, **values}).first()
    if row is None:
        return None
    *passed, (status, at) = path
    record_statuses(
        conn, run_id, [*((step, entered, None) for step, entered in passed), (status, at, reason)]
    )
    return state_of(row)


def _apply(
    conn: sa.Connection,
    run_id: str,
    current: RunStatus,
    status: RunStatus,
    reason: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Move the run, read in ``current`` under the row lock, to ``status``."""
    path: _Steps = [(status, time.time())]
    if (refused := _refusal(run_id, current, path, None)) is not None:
        raise refused
    if _move(conn, run_id, [current], path, reason, None, None, extra or {}) is None:
        raise _changed(run_id, path)  # only without the row lock, which every caller takes


def claim(conn: sa.Connection, run_id: str, slots: int, supervisor: tuple[str, int] | None) -> bool:
    compute = conn.scalar(_COMPUTE, {"run_id": run_id})
    if compute is None:
        raise RunNotFound(run_id)
    dialects.lock(conn, f"runyard.claim:{compute}")
    oldest, active = conn.execute(_QUEUE, {"compute": compute}).one()
    if oldest != run_id or (active or 0) >= slots:  # the oldest Queued run is Queued
        return False
    path: _Steps = [(RunStatus.PREPARING, time.time())]
    extra = {} if supervisor is None else {"host": supervisor[0], "supervisor_pid": supervisor[1]}
    # None: canceled meanwhile (only where the advisory lock, not the database, serializes)
    return _move(conn, run_id, [RunStatus.QUEUED], path, None, None, None, extra) is not None


def request_cancel(conn: sa.Connection, run_id: str, reason: str) -> None:
    row = _locked(conn, run_id, runs.c.cancel_requested)
    current = RunStatus(row.status)
    if current is RunStatus.QUEUED:
        extra = {"cancel_requested": True, "cancel_reason": reason}
        _apply(conn, run_id, current, RunStatus.CANCELED, reason, extra)
    elif current.is_terminal:
        raise InvalidTransition(f"run {run_id} is {current}; cannot move to {RunStatus.CANCELED}")
    elif not row.cancel_requested:
        _update(conn, run_id, cancel_requested=True, cancel_reason=reason)


def mark_lost(
    conn: sa.Connection, *, heartbeat_timeout: float, host: str | None, dead_pids: Iterable[int]
) -> list[str]:
    now = time.time()
    lost: dict[str, tuple[RunStatus, str]] = {}
    pids = sorted({int(p) for p in dead_pids})
    if host is not None and pids:
        gone = conn.execute(
            sa.select(runs.c.id, runs.c.status, runs.c.supervisor_pid)
            .where(
                runs.c.status.in_(_ACTIVE),
                runs.c.host == host,
                runs.c.supervisor_pid.in_(pids),
                runs.c.id.not_in(_CONTROLLED),
            )
            .with_for_update()
        )
        for run_id, status, pid in gone:
            reason = f"lost: supervisor process {pid} on host {host} is gone"
            lost[run_id] = (RunStatus(status), reason)
    beat = sa.func.coalesce(runs.c.heartbeat_at, runs.c.started_at, runs.c.created_at)
    stale = conn.execute(
        sa.select(runs.c.id, runs.c.status, beat.label("beat"))
        .where(
            runs.c.status.in_(_ACTIVE),
            beat < now - heartbeat_timeout,
            runs.c.id.not_in(_CONTROLLED),
        )
        .with_for_update()
    )
    for run_id, status, last in stale:
        reason = f"lost: supervisor heartbeat stale for {now - last:.0f}s"
        lost.setdefault(run_id, (RunStatus(status), reason))
    for run_id, (status, reason) in lost.items():
        _apply(conn, run_id, status, RunStatus.FAILED, reason)
    return list(lost)


def attach_supervisor(conn: sa.Connection, run_id: str, host: str, pid: int) -> None:
    _update(conn, run_id, host=host, supervisor_pid=pid, heartbeat_at=time.time())


def heartbeat(conn: sa.Connection, run_id: str) -> None:
    _update(conn, run_id, heartbeat_at=time.time())


def set_process_group(conn: sa.Connection, run_id: str, pgid: int | None) -> None:
    _update(conn, run_id, pgid=pgid)


def process_group(conn: sa.Connection, run_id: str) -> int | None:
    row = conn.execute(sa.select(runs.c.pgid).where(_BY_ID), {"run_id": run_id}).first()
    if row is None:
        raise RunNotFound(run_id)
    return row.pgid


def _update(conn: sa.Connection, run_id: str, **values: Any) -> None:
    if conn.execute(_SET, {"where_id": run_id, **values}).rowcount != 1:
        raise RunNotFound(run_id)
