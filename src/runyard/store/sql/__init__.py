"""The SQL store: SQLite (the embedded default) and PostgreSQL, schema managed by Alembic."""

from __future__ import annotations

from runyard.store.sql.store import SqlStore

__all__ = ["SqlStore"]
