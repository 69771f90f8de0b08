"""Recording and reading runs: rows to :class:`~runyard.records.Run`, id prefixes, searches.

Every function takes a connection inside a transaction the caller (``SqlStore``) opened.
Listings load tags, params and latest metrics for all their runs in one query each.

The statements that supervisors and sweep controllers run for every run (one run by id, its
state, creating it) are built once, with bound parameters, at import: building a statement
and computing its cache key costs Core more than executing it on SQLite.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from runyard.errors import RunNotFound, UserError
from runyard.records import Experiment, Run, RunState, RunStatus, StatusChange
from runyard.store.sql import bulk, dialects
from runyard.store.sql.schema import experiments, latest_metrics, runs
from runyard.store.sql.schema import params as params_table
from runyard.store.sql.schema import status_history as history_table
from runyard.store.sql.schema import tags as tags_table

#: Shortest id prefix :func:`resolve_id` accepts.
MIN_PREFIX = 4
#: Up to this many runs, a listing loads their tags, params and metrics by id; beyond it,
#: by repeating the listing's own query as a subquery (keeps bind parameters few).
ID_LIST_LIMIT = 500

#: Run fields read from columns of the same name, and the experiment's name.
_FIELDS = (
    "id", "name", "status", "spec", "compute", "created_at", "started_at", "ended_at",
    "exit_code", "reason", "error", "snapshot_id", "parent_id", "git", "host",
    "supervisor_pid", "heartbeat_at", "cancel_requested", "cancel_reason", "experiment",
)  # fmt: skip
_RUN_COLUMNS = (*(runs.c[f] for f in _FIELDS[:-1]), experiments.c.name.label("experiment"))
_STATUSES = {s.value: s for s in RunStatus}
_tag_filter = tags_table.alias("tag_filter")
_sort_metric = latest_metrics.alias("sort_metric")

#: :class:`~runyard.records.RunState` fields, read from columns of the same name.
STATE_FIELDS = (
    "id", "status", "reason", "exit_code", "error", "started_at", "ended_at", "host",
    "supervisor_pid", "heartbeat_at", "cancel_requested", "cancel_reason",
)  # fmt: skip
STATE_COLUMNS = tuple(runs.c[f] for f in STATE_FIELDS)


def _by_id(table: sa.Table) -> sa.ColumnElement[bool]:
    return table.c["id" if table is runs else "run_id"] == sa.bindparam("run_id")


_EXISTS = sa.select(runs.c.id).where(_by_id(runs))
_STATE = sa.select(*STATE_COLUMNS).where(_by_id(runs))
_IDS: sa.BindParameter[list[str]] = sa.bindparam("ids", expanding=True)
_STATES = sa.select(*STATE_COLUMNS).where(runs.c.id.in_(_IDS))
_EXPERIMENT_ID = sa.select(experiments.c.id).where(experiments.c.name == sa.bindparam("name"))
_INSERT_RUN = sa.insert(runs)
_INSERT_STATUS = sa.insert(history_table)


# -- experiments ----------------------------------------------------------------------------


def get_or_create_experiment(conn: sa.Connection, name: str) -> Experiment:
    if not isinstance(name, str) or not name.strip():
        raise UserError(f"experiment name must be a non-empty string, got {name!r}")
    dialects.insert_ignore(conn, experiments, [{"name": name, "created_at": time.time()}])
    row = conn.execute(sa.select(experiments).where(experiments.c.name == name)).one()
    return Experiment(id=row.id, name=row.name, created_at=row.created_at)


def list_experiments(conn: sa.Connection) -> list[Experiment]:
    rows = conn.execute(sa.select(experiments).order_by(experiments.c.name))
    return [Experiment(id=r.id, name=r.name, created_at=r.created_at) for r in rows]


# -- creating ----------------------------------------------------------------------------


def _strings(what: str, mapping: Mapping[str, Any] | None) -> dict[str, str]:
    """Keys must be non-empty strings; values are stored as text."""
    out: dict[str, str] = {}
    for key, value in (mapping or {}).items():
        if not isinstance(key, str) or not key:
            raise UserError(f"{what} keys must be non-empty strings, got {key!r}")
        out[key] = value if isinstance(value, str) else str(value)
    return out


def create_run(
    conn: sa.Connection,
    *,
    experiment: str,
    spec: Mapping[str, Any],
    compute: str,
    name: str | None,
    tags: Mapping[str, str] | None,
    params: Mapping[str, str] | None,
    snapshot_id: str | None,
    parent_id: str | None,
    git: Mapping[str, Any] | None,
) -> Run:
    """Record a new Queued run; its record as :func:`get_run` would read it back."""
    tag_values = _strings("tag", tags)
    param_values = _strings("param", params)
    if parent_id is not None:
        require_run(conn, parent_id)
    experiment_id = conn.scalar(_EXPERIMENT_ID, {"name": experiment})
    if experiment_id is None:
        experiment_id = get_or_create_experiment(conn, experiment).id
    run_id = uuid.uuid4().hex[:12]
    now = time.time()
    # Stored as JSON: what is read back, whatever the caller's types (tuples become lists).
    spec_value = json.loads(json.dumps(dict(spec)))
    git_value = json.loads(json.dumps(dict(git))) if git is not None else None
    conn.execute(
        _INSERT_RUN,
        {
            "id": run_id,
            "experiment_id": experiment_id,
            "name": name,
            "status": RunStatus.QUEUED.value,
            "spec": spec_value,
            "compute": compute,
            "created_at": now,
            "snapshot_id": snapshot_id,
            "parent_id": parent_id,
            "git": git_value,
            "cancel_requested": False,
        },
    )
    record_statuses(conn, run_id, [(RunStatus.QUEUED, now, None)])
    set_tags(conn, run_id, tag_values)
    if param_values:  # a new run: nothing to conflict with
        dialects.insert_ignore(conn, params_table, _key_value_rows(run_id, param_values))
    return Run(
        id=run_id,
        experiment=experiment,
        name=name,
        status=RunStatus.QUEUED,
        spec=spec_value,
        compute=compute,
        created_at=now,
        snapshot_id=snapshot_id,
        parent_id=parent_id,
        git=git_value,
        tags=tag_values,
        params=param_values,
    )


def record_statuses(
    conn: sa.Connection, run_id: str, steps: Sequence[tuple[RunStatus, float, str | None]]
) -> None:
    """Add ``(status, time, reason)`` entries to the run's history, in one statement."""
    rows = [{"run_id": run_id, "status": s.value, "time": t, "reason": r} for s, t, r in steps]
    conn.execute(_INSERT_STATUS, rows[0] if len(rows) == 1 else rows)


def _key_value_rows(run_id: str, values: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"run_id": run_id, "key": k, "value": v} for k, v in values.items()]


# -- params and tags -------------------------------------------------------------------------


def log_params(conn: sa.Connection, run_id: str, values: Mapping[str, Any]) -> None:
    new = _strings("param", values)
    if not new:
        return
    dialects.insert_ignore(conn, params_table, _key_value_rows(run_id, new))
    stored = conn.execute(
        sa.select(params_table.c.key, params_table.c.value).where(
            params_table.c.run_id == run_id, params_table.c.key.in_(list(new))
        )
    )
    for key, old in stored:
        if old != new[key]:
            raise UserError(
                f"param {key!r} of run {run_id} is already {old!r}; cannot change it to "
                f"{new[key]!r} (params are write-once; use a tag for values that change)"
            )


def set_tags(conn: sa.Connection, run_id: str, values: Mapping[str, Any]) -> None:
    rows = _key_value_rows(run_id, _strings("tag", values))
    dialects.upsert(conn, tags_table, rows, update=["value"])


def delete_tag(conn: sa.Connection, run_id: str, key: str) -> None:
    conn.execute(
        sa.delete(tags_table).where(tags_table.c.run_id == run_id, tags_table.c.key == key)
    )


# -- reading -----------------------------------------------------------------------------------


def require_run(conn: sa.Connection, run_id: str) -> None:
    if conn.execute(_EXISTS, {"run_id": run_id}).first() is None:
        raise RunNotFound(run_id)


def resolve_id(conn: sa.Connection, run_id: str) -> str:
    """The id of the run called ``run_id`` or, failing that, starting with it."""
    if conn.execute(_EXISTS, {"run_id": run_id}).first() is not None:
        return run_id
    if len(run_id) < MIN_PREFIX:
        raise RunNotFound(run_id)
    found = conn.scalars(
        sa.select(runs.c.id)
        .where(sa.func.substr(runs.c.id, 1, len(run_id)) == run_id)
        .order_by(runs.c.id)
        .limit(4)
    ).all()
    if len(found) == 1:
        return found[0]
    error = RunNotFound(run_id)
    if found:
        shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
        error.args = (f"run id prefix {run_id!r} is ambiguous: it matches {shown}",)
    raise error


def get_run(conn: sa.Connection, run_id: str) -> Run:
    """The run with exactly this id."""
    params = {"run_id": run_id}
    row = conn.execute(_ONE_RUN, params).first()
    if row is None:
        raise RunNotFound(run_id)
    metrics: dict[str, float] = {}
    for key, _, value in conn.execute(_ONE_METRICS, params):  # lower ranks come later and win
        metrics[key] = math.nan if value is None else value
    return _run(
        row,
        tags=dict(conn.execute(_ONE_TAGS, params).all()),
        params=dict(conn.execute(_ONE_PARAMS, params).all()),
        metrics=metrics,
    )


def run_state(conn: sa.Connection, run_id: str) -> RunState:
    """The lifecycle fields of the run with exactly this id."""
    row = conn.execute(_STATE, {"run_id": run_id}).first()
    if row is None:
        raise RunNotFound(run_id)
    return state_of(row)


def run_states(conn: sa.Connection, ids: Iterable[str]) -> dict[str, RunState]:
    """The lifecycle fields of the runs with these ids (ids of no run are left out)."""
    wanted = list(dict.fromkeys(ids))
    rows = conn.execute(_STATES, {"ids": wanted}).all() if wanted else []
    return {row.id: state_of(row) for row in rows}


def state_of(row: sa.Row[Any]) -> RunState:
    """The :class:`RunState` of a row of :data:`STATE_COLUMNS`."""
    fields = dict(zip(STATE_FIELDS, row, strict=True))
    fields["status"] = _STATUSES[fields["status"]]
    return RunState(**fields)


def status_history(conn: sa.Connection, run_id: str) -> list[StatusChange]:
    require_run(conn, run_id)
    rows = conn.execute(
        sa.select(history_table.c.status, history_table.c.time, history_table.c.reason)
        .where(history_table.c.run_id == run_id)
        .order_by(history_table.c.id)
    )
    return [StatusChange(RunStatus(s), t, r) for s, t, r in rows]


def search_runs(
    conn: sa.Connection,
    *,
    experiment: str | None,
    statuses: Iterable[RunStatus] | None,
    tags: Mapping[str, str] | None,
    parent_id: str | None,
    ids: Iterable[str] | None = None,
    order_by: str | None,
    limit: int | None,
) -> list[Run]:
    if limit is not None and limit < 0:
        raise UserError(f"limit must be zero or more, got {limit}")
    if ids is not None and (experiment, statuses, tags, parent_id, order_by, limit) == (
        None,
        None,
        None,
        None,
        None,
        None,
    ):  # runs by id alone (a controller reading its trials): a statement built once
        return _load(conn, _BY_IDS, limit=None, params={"ids": list(ids)})
    stmt = _select_runs()
    if experiment is not None:
        stmt = stmt.where(experiments.c.name == experiment)
    if statuses is not None:
        stmt = stmt.where(runs.c.status.in_([RunStatus(s).value for s in statuses]))
    for key, value in (tags or {}).items():
        stmt = stmt.where(
            sa.exists().where(
                _tag_filter.c.run_id == runs.c.id,
                _tag_filter.c.key == key,
                _tag_filter.c.value == value,
            )
        )
    if parent_id is not None:
        stmt = stmt.where(runs.c.parent_id == parent_id)
    if ids is not None:
        stmt = stmt.where(runs.c.id.in_(list(ids)))
    stmt = stmt.order_by(*_ordering(order_by or "created"))
    if limit is not None:
        stmt = stmt.limit(limit)
    return _load(conn, stmt, limit=limit)


def _ordering(order_by: str) -> list[sa.ColumnElement[Any]]:
    newest: list[sa.ColumnElement[Any]] = [runs.c.created_at.desc(), runs.c.id.desc()]
    if order_by == "created":
        return newest
    if order_by == "duration":
        duration = sa.func.coalesce(runs.c.ended_at, time.time()) - runs.c.started_at
        return [duration.desc().nulls_last(), *newest]
    if order_by.startswith("metric:") and len(order_by) > len("metric:"):
        key, descending = order_by[len("metric:") :], True
        if key.endswith((":asc", ":desc")):
            key, direction = key.rsplit(":", 1)
            descending = direction == "desc"
        value = (
            sa.select(_sort_metric.c.value)
            .where(_sort_metric.c.run_id == runs.c.id, _sort_metric.c.key == key)
            .order_by(_sort_metric.c.rank)
            .limit(1)
            .scalar_subquery()
        )
        # NaN is stored as NULL, so runs whose latest value is NaN sort with those lacking it.
        first = value.desc() if descending else value.asc()
        return [first.nulls_last(), *newest]
    raise UserError(
        f"cannot order runs by {order_by!r}: use created, duration, metric:KEY "
        "(highest first) or metric:KEY:asc"
    )


def _select_runs() -> sa.Select[Any]:
    return sa.select(*_RUN_COLUMNS).join(experiments, experiments.c.id == runs.c.experiment_id)


_ONE_RUN = _select_runs().where(_by_id(runs))
_BY_IDS = _select_runs().where(runs.c.id.in_(_IDS)).order_by(*_ordering("created"))
_ONE_TAGS = sa.select(tags_table.c.key, tags_table.c.value).where(_by_id(tags_table))
_ONE_PARAMS = sa.select(params_table.c.key, params_table.c.value).where(_by_id(params_table))
_ONE_METRICS = (
    sa.select(latest_metrics.c.key, latest_metrics.c.rank, latest_metrics.c.value)
    .where(_by_id(latest_metrics))
    .order_by(latest_metrics.c.rank.desc())
)


def _run(
    row: sa.Row[Any], *, tags: dict[str, str], params: dict[str, str], metrics: dict[str, float]
) -> Run:
    fields = dict(zip(_FIELDS, row, strict=True))
    fields["status"] = _STATUSES[fields["status"]]
    return Run(**fields, tags=tags, params=params, metrics=metrics)


def _load(
    conn: sa.Connection,
    stmt: sa.Select[Any],
    *,
    limit: int | None,
    params: dict[str, Any] | None = None,
) -> list[Run]:
    """Run records for the rows of ``stmt`` (executed with ``params``, which then bind all
    its values), with their tags, params and latest metrics."""
    with bulk.gc_paused():
        rows = conn.execute(stmt, params).all()
        if not rows:
            return []
        ids: Sequence[str] | sa.Select[Any]
        if len(rows) <= ID_LIST_LIMIT or params is not None:
            ids = [r.id for r in rows]
        else:
            ids = stmt.with_only_columns(runs.c.id)
            if limit is None:
                ids = ids.order_by(None)
        tag_map = _key_values(conn, tags_table, ids)
        param_map = _key_values(conn, params_table, ids)
        metric_map = _latest_metrics(conn, ids)
        return [
            _run(
                row,
                tags=tag_map.get(row.id) or {},
                params=param_map.get(row.id) or {},
                metrics=metric_map.get(row.id) or {},
            )
            for row in rows
        ]


def _for_runs(columns: Sequence[sa.Column[Any]], table: sa.Table) -> sa.Select[Any]:
    """``columns`` of the rows of ``table`` whose run is in the list bound as ``ids``."""
    return sa.select(*columns).where(table.c.run_id.in_(sa.bindparam("ids", expanding=True)))


_KEY_VALUES = {
    t.name: _for_runs([t.c.run_id, t.c.key, t.c.value], t) for t in (tags_table, params_table)
}
_LATEST = _for_runs(
    [latest_metrics.c.run_id, latest_metrics.c.key, latest_metrics.c.rank, latest_metrics.c.value],
    latest_metrics,
).order_by(latest_metrics.c.rank.desc())
_LATEST_OF_KEY = _LATEST.where(latest_metrics.c.key == sa.bindparam("key"))


def _key_values(
    conn: sa.Connection, table: sa.Table, ids: Sequence[str] | sa.Select[Any]
) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    if isinstance(ids, sa.Select):
        stmt = sa.select(table.c.run_id, table.c.key, table.c.value)
        rows = conn.execute(stmt.where(table.c.run_id.in_(ids))).all()
    else:
        rows = conn.execute(_KEY_VALUES[table.name], {"ids": list(ids)}).all()
    for run_id, key, value in rows:
        if run_id in out:
            out[run_id][key] = value
        else:
            out[run_id] = {key: value}
    return out


def latest_values(
    conn: sa.Connection, ids: Sequence[str], key: str | None
) -> dict[str, dict[str, float]]:
    """Latest value per run and key (only ``key``, when given), as :func:`get_run` reads it."""
    if key is None:
        return _latest_metrics(conn, ids)
    return _by_run_and_key(conn.execute(_LATEST_OF_KEY, {"ids": list(ids), "key": key}).all())


def _latest_metrics(
    conn: sa.Connection, ids: Sequence[str] | sa.Select[Any]
) -> dict[str, dict[str, float]]:
    """Latest value per run and key, from rank 0 or else the lowest rank that logged it."""
    lm = latest_metrics
    if isinstance(ids, sa.Select):
        stmt = sa.select(lm.c.run_id, lm.c.key, lm.c.rank, lm.c.value).where(lm.c.run_id.in_(ids))
        rows = conn.execute(stmt.order_by(lm.c.rank.desc())).all()
    else:
        rows = conn.execute(_LATEST, {"ids": list(ids)}).all()
    return _by_run_and_key(rows)


def _by_run_and_key(rows: Iterable[Any]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for run_id, key, _, value in rows:  # lower ranks come later and win
        if run_id not in out:
            out[run_id] = {}
        out[run_id][key] = math.nan if value is None else value
    return out
