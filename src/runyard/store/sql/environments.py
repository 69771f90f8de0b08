"""Registered environments: the store's side of :class:`runyard.envs.EnvironmentCatalog`.

Each function runs inside the caller's transaction. :func:`put_environment` needs a write
transaction: it takes the name's lock (SQLite's one write lock, which ``BEGIN IMMEDIATE``
already holds; a transaction-scoped advisory lock on PostgreSQL) before reading the latest
version, so two writers of the same name are serialized and never both add a version.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from runyard.errors import NotFound
from runyard.records import EnvironmentRecord
from runyard.store.sql import dialects
from runyard.store.sql.schema import environments as t

_COLUMNS = (t.c.name, t.c.version, t.c.definition, t.c.digest, t.c.created_at)


def _record(row: sa.Row[Any, Any, Any, Any, Any]) -> EnvironmentRecord:
    return EnvironmentRecord(
        name=row.name,
        version=int(row.version),
        definition=dict(row.definition),
        digest=str(row.digest).strip(),
        created_at=float(row.created_at),
    )


def _latest(conn: sa.Connection, name: str) -> EnvironmentRecord | None:
    row = conn.execute(
        sa.select(*_COLUMNS).where(t.c.name == name).order_by(t.c.version.desc()).limit(1)
    ).first()
    return None if row is None else _record(row)


def put_environment(
    conn: sa.Connection, name: str, definition: Mapping[str, Any], digest: str
) -> EnvironmentRecord:
    dialects.lock(conn, f"runyard.environments:{name}")
    latest = _latest(conn, name)
    if latest is not None and latest.digest == digest:
        return latest
    record = EnvironmentRecord(
        name=name,
        version=1 if latest is None else latest.version + 1,
        definition=dict(definition),
        digest=digest,
        created_at=time.time(),
    )
    conn.execute(
        sa.insert(t).values(
            name=record.name,
            version=record.version,
            definition=record.definition,
            digest=record.digest,
            created_at=record.created_at,
        )
    )
    return record


def get_environment(conn: sa.Connection, name: str, version: int | None) -> EnvironmentRecord:
    if version is None:
        latest = _latest(conn, name)
        if latest is None:
            raise NotFound(f"environment {name!r} not found (runyard env ls lists them)")
        return latest
    row = conn.execute(sa.select(*_COLUMNS).where(t.c.name == name, t.c.version == version)).first()
    if row is None:
        latest = _latest(conn, name)
        known = (
            f"the latest is {latest.ref}"
            if latest is not None
            else f"nothing is registered as {name!r} (runyard env ls lists them)"
        )
        raise NotFound(f"environment {name}@{version} not found: {known}")
    return _record(row)


def list_environments(conn: sa.Connection, name: str | None) -> list[EnvironmentRecord]:
    if name is not None:
        rows = conn.execute(
            sa.select(*_COLUMNS).where(t.c.name == name).order_by(t.c.version.desc())
        )
        return [_record(r) for r in rows]
    newest = (
        sa.select(t.c.name, sa.func.max(t.c.version).label("version")).group_by(t.c.name).subquery()
    )
    rows = conn.execute(
        sa.select(*_COLUMNS)
        .join(newest, sa.and_(t.c.name == newest.c.name, t.c.version == newest.c.version))
        .order_by(t.c.name)
    )
    return [_record(r) for r in rows]
