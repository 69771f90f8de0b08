"""Endpoints: rows to :class:`~runyard.records.Endpoint`.

Every function takes a connection inside a transaction the caller (``SqlStore``) opened.
Setting an endpoint's traffic takes the models lock (see :mod:`.models`) and checks that every
version it names is registered, so a version cannot be deleted while it is being deployed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from runyard.errors import EndpointNotFound, InvalidTransition, UserError
from runyard.naming import check_name
from runyard.records import Endpoint, EndpointStatus, TrafficRoute
from runyard.store.sql import dialects
from runyard.store.sql.models import LOCK, READY
from runyard.store.sql.schema import endpoints, models

#: What ``update_endpoint`` may change.
CHANGEABLE = frozenset({"status", "traffic", "config", "hostname", "pid", "port", "error"})


def create_endpoint(
    conn: sa.Connection,
    name: str,
    traffic: Sequence[TrafficRoute],
    config: Mapping[str, Any],
) -> Endpoint:
    check_name(name, "endpoint")
    dialects.lock(conn, LOCK)
    routes = _check_traffic(conn, traffic)
    now = time.time()
    if conn.scalar(sa.select(endpoints.c.name).where(endpoints.c.name == name)) is not None:
        raise UserError(f"endpoint {name!r} already exists (runyard endpoint delete {name})")
    conn.execute(
        sa.insert(endpoints).values(
            name=name,
            status=EndpointStatus.STARTING.value,
            traffic=routes,
            config=dict(config),
            created_at=now,
            updated_at=now,
        )
    )
    return get_endpoint(conn, name)


def get_endpoint(conn: sa.Connection, name: str) -> Endpoint:
    row = conn.execute(sa.select(endpoints).where(endpoints.c.name == name)).first()
    if row is None:
        raise EndpointNotFound(name)
    return _record(row)


def list_endpoints(conn: sa.Connection) -> list[Endpoint]:
    return [_record(r) for r in conn.execute(sa.select(endpoints).order_by(endpoints.c.name))]


def update_endpoint(
    conn: sa.Connection,
    name: str,
    changes: Mapping[str, Any],
    expected: Iterable[EndpointStatus] | None,
) -> Endpoint:
    unknown = sorted(set(changes) - CHANGEABLE)
    if unknown:
        raise UserError(f"cannot change an endpoint's {', '.join(unknown)}")
    values = dict(changes)
    if "traffic" in values:
        dialects.lock(conn, LOCK)
        values["traffic"] = _check_traffic(conn, values["traffic"])
    if "status" in values:
        values["status"] = EndpointStatus(values["status"]).value
    if "config" in values:
        values["config"] = dict(values["config"])
    current = get_endpoint(conn, name)
    if expected is not None:
        allowed = {EndpointStatus(s) for s in expected}
        if current.status not in allowed:
            raise InvalidTransition(
                f"endpoint {name!r} is {current.status}, not "
                + " or ".join(sorted(s.value for s in allowed))
            )
    conn.execute(
        sa.update(endpoints)
        .where(endpoints.c.name == name)
        .values(**values, updated_at=time.time())
    )
    return get_endpoint(conn, name)


def delete_endpoint(conn: sa.Connection, name: str) -> None:
    if not conn.execute(sa.delete(endpoints).where(endpoints.c.name == name)).rowcount:
        raise EndpointNotFound(name)


def _check_traffic(conn: sa.Connection, traffic: Sequence[TrafficRoute]) -> list[dict[str, Any]]:
    """The routes as JSON rows, after checking weights and that every version is ready."""
    if not traffic:
        raise UserError("an endpoint serves at least one model version")
    rows: list[dict[str, Any]] = []
    seen = set()
    for route in traffic:
        if not isinstance(route.weight, int) or isinstance(route.weight, bool) or route.weight < 0:
            raise UserError(f"traffic weight of {route.ref} must be a whole number >= 0")
        if route.ref in seen:
            raise UserError(f"{route.ref} appears twice in the traffic split")
        seen.add(route.ref)
        state = conn.scalar(
            sa.select(models.c.state).where(
                models.c.name == route.model, models.c.version == route.version
            )
        )
        if state != READY:
            raise UserError(f"cannot serve {route.ref}: no such model version")
        rows.append({"model": route.model, "version": route.version, "weight": route.weight})
    if sum(r["weight"] for r in rows) <= 0:
        raise UserError("the traffic weights add up to 0: give at least one version a weight")
    return rows


def _record(row: sa.Row[Any]) -> Endpoint:
    return Endpoint(
        name=row.name,
        status=EndpointStatus(row.status),
        traffic=tuple(
            TrafficRoute(r["model"], int(r["version"]), int(r["weight"])) for r in row.traffic
        ),
        config=dict(row.config),
        created_at=row.created_at,
        updated_at=row.updated_at,
        hostname=row.hostname,
        pid=row.pid,
        port=row.port,
        error=row.error,
    )
