"""Metric history and latest values.

A batch is one multi-row insert into ``metrics`` plus one upsert per (key, rank) into
``latest_metrics``, whose row is replaced only by a point with a greater or equal
``(step, timestamp)``; so listings never read the history. NaN travels as NULL (see
:mod:`runyard.store.sql.schema`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from runyard.errors import InvalidMetric
from runyard.records import MetricPoint
from runyard.store.sql import bulk, dialects
from runyard.store.sql.schema import latest_metrics, metrics

#: Longest metric key the schema holds.
MAX_KEY_LENGTH = 255

_NAN = math.nan
_COLUMNS = ("run_id", "key", "rank", "step", "timestamp", "value")


def _number(key: str, value: Any) -> float:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    raise InvalidMetric(f"metric {key!r}: value {value!r} is not a real number")


def _check_key(key: Any) -> None:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidMetric(
            f"metric key {key!r} must be a non-empty string of at most {MAX_KEY_LENGTH} characters"
        )


def log_metrics(conn: sa.Connection, run_id: str, points: Sequence[MetricPoint]) -> None:
    rows: list[tuple[Any, ...]] = []
    isnan = math.isnan
    append = rows.append
    latest: dict[tuple[str, int], tuple[int, float, float | None]] = {}
    for point in points:
        key, value, step, ts, rank = point.key, point.value, point.step, point.timestamp, point.rank
        if type(value) is not float:
            value = _number(key, value)
        stored = None if isnan(value) else value
        append((run_id, key, rank, step, ts, stored))
        seen = latest.get((key, rank))
        if seen is None or step > seen[0] or (step == seen[0] and ts >= seen[1]):
            latest[(key, rank)] = (step, ts, stored)
    if not rows:
        return
    for key, _ in latest:
        _check_key(key)
    bulk.insert_rows(conn, metrics, _COLUMNS, rows)
    dialects.upsert(
        conn,
        latest_metrics,
        [
            {"run_id": run_id, "key": k, "rank": r, "step": s, "timestamp": t, "value": v}
            for (k, r), (s, t, v) in latest.items()
        ],
        update=["step", "timestamp", "value"],
        only_if=_newer,
    )


def _newer(new: Any) -> sa.ColumnElement[bool]:
    """Whether the ``new`` latest-value row is at a later (step, timestamp) than the stored."""
    lm = latest_metrics
    return sa.or_(
        new.step > lm.c.step, sa.and_(new.step == lm.c.step, new.timestamp >= lm.c.timestamp)
    )


def metric_keys(conn: sa.Connection, run_id: str) -> list[str]:
    return list(
        conn.scalars(
            sa.select(latest_metrics.c.key)
            .where(latest_metrics.c.run_id == run_id)
            .distinct()
            .order_by(latest_metrics.c.key)
        )
    )


def metric_history(
    conn: sa.Connection, run_id: str, key: str, rank: int | None
) -> list[MetricPoint]:
    m = metrics
    stmt = sa.select(m.c.value, m.c.step, m.c.timestamp, m.c.rank)
    stmt = stmt.where(m.c.run_id == run_id, m.c.key == key)
    if rank is None:
        stmt = stmt.order_by(m.c.step, m.c.timestamp, m.c.rank, m.c.id)
    else:
        stmt = stmt.where(m.c.rank == rank).order_by(m.c.step, m.c.timestamp, m.c.id)
    # Histories run to millions of points: plain driver rows, each point made with one
    # tuple.__new__ (MetricPoint is a named tuple), and no garbage collection meanwhile
    # (the new objects hold no cycles). NaN is stored as NULL and put back here.
    new, point, nan = tuple.__new__, MetricPoint, _NAN
    with bulk.gc_paused():
        return [
            new(point, (key, nan if value is None else value, step, ts, r))
            for value, step, ts, r in bulk.driver_rows(conn, stmt)
        ]
