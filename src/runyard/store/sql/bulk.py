"""Moving many rows quickly: driver-level executemany and fetches, and no collector pauses.

Core's per-row work (parameter dictionaries, row objects) costs as much as SQLite's own, and
the cyclic garbage collector, set off again and again by a million new objects, as much
again. These helpers skip both where the values need no conversion (numbers, plain strings).
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa


def insert_rows(
    conn: sa.Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert many rows, each a tuple of values in ``columns`` order.

    Core compiles the INSERT. Where the driver takes positional parameters (SQLite) the
    tuples go straight to its ``executemany``: Core's per-row parameter handling would cost as
    much as SQLite's own insert. Elsewhere Core's executemany batches them (on PostgreSQL into
    multi-row ``VALUES``)."""
    if not rows:
        return
    if conn.dialect.positional:
        sql = _positional_insert(conn.dialect, table, tuple(columns))
        if sql is not None:
            conn.exec_driver_sql(sql, list(rows))
            return
    conn.execute(sa.insert(table), [dict(zip(columns, row, strict=True)) for row in rows])


@functools.cache
def _positional_insert(
    dialect: sa.Dialect, table: sa.Table, columns: tuple[str, ...]
) -> str | None:
    """The INSERT's SQL when its parameters come in ``columns`` order, else None."""
    compiled = sa.insert(table).compile(dialect=dialect, column_keys=list(columns))
    return compiled.string if tuple(compiled.positiontup or ()) == columns else None


def driver_rows(conn: sa.Connection, stmt: sa.Select[Any]) -> Iterator[tuple[Any, ...]]:
    """The rows of ``stmt`` as the driver returns them, without Core's row objects.

    Only for selects whose columns need no result processing (numbers, plain strings)."""
    compiled = stmt.compile(dialect=conn.dialect)
    params = compiled.construct_params()
    args: Any = (
        tuple(params[name] for name in compiled.positiontup or ())
        if compiled.positional
        else params
    )
    cursor = conn.connection.cursor()
    try:
        cursor.execute(compiled.string, args)
        while chunk := cursor.fetchmany(10_000):
            yield from chunk
    finally:
        cursor.close()


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (the new objects hold no cycles)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
