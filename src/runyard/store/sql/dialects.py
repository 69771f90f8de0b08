"""The few statements that differ between SQLite and PostgreSQL, looked up by dialect name."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

_INSERTS: dict[str, Callable[[sa.Table], Any]] = {
    "sqlite": sqlite.insert,
    "postgresql": postgresql.insert,
}


@functools.cache
def _insert_ignore(dialect: str, table: sa.Table) -> Any:
    return _INSERTS[dialect](table).on_conflict_do_nothing()


@functools.cache
def _upsert(
    dialect: str,
    table: sa.Table,
    update: tuple[str, ...],
    only_if: Callable[[Any], sa.ColumnElement[bool]] | None = None,
) -> Any:
    stmt = _INSERTS[dialect](table)
    return stmt.on_conflict_do_update(
        index_elements=list(table.primary_key.columns),
        set_={name: stmt.excluded[name] for name in update},
        where=only_if(stmt.excluded) if only_if is not None else None,
    )


def insert_ignore(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows``, leaving rows whose primary (or unique) key exists untouched."""
    if rows:
        conn.execute(_insert_ignore(conn.dialect.name, table), list(rows))


def upsert(
    conn: sa.Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    update: Sequence[str],
    only_if: Callable[[Any], sa.ColumnElement[bool]] | None = None,
) -> None:
    """Insert ``rows``; where the primary key exists, overwrite the ``update`` columns with the
    new values, and only where ``only_if(excluded)`` holds (``excluded`` is the new row).

    The statement is built once per table, columns and ``only_if``: pass a function defined
    once, not a new lambda each time."""
    if rows:
        conn.execute(_upsert(conn.dialect.name, table, tuple(update), only_if), list(rows))


def lock(conn: sa.Connection, name: str) -> None:
    """Hold a lock called ``name`` until the transaction ends.

    On SQLite every write transaction starts with ``BEGIN IMMEDIATE`` and so already holds the
    database's one write lock; PostgreSQL takes a transaction-scoped advisory lock."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(name, 0))))
