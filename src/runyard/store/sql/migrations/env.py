"""Alembic environment for the SQL store.

:func:`runyard.store.sql.engine.migrate` hands in its connection, already inside the write
transaction, as ``config.attributes["connection"]``; the whole upgrade runs in that
transaction. Without one (a developer running Alembic by hand to write the next revision,
with :func:`runyard.store.sql.engine.alembic_config` and ``sqlalchemy.url`` set) the URL is
used.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from runyard.store.sql.schema import metadata


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite alters tables by copying them; later revisions get batch operations.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    from runyard.store.sql.engine import create_engine, transaction

    engine = create_engine(url or "")
    try:
        with transaction(engine, write=True) as conn:
            _run(conn)
    finally:
        engine.dispose()


main()
