"""Engines for store URLs, and schema migration with Alembic.

SQLite engines run in WAL mode with ``synchronous=NORMAL``, a 60 s busy timeout and foreign
keys on. pysqlite's own transaction handling is switched off so that the store decides how
each transaction begins (:func:`transaction`): reads with a plain ``BEGIN``, writes with
``BEGIN IMMEDIATE``, which takes the write lock up front (waiting up to the busy timeout)
instead of failing with "database is locked" when a read transaction later tries to write.
``BEGIN`` is emitted by :func:`transaction` rather than by a ``begin`` event listener (the
recipe in SQLAlchemy's SQLite documentation): any connection-event listener makes
SQLAlchemy dispatch events around every statement, which cost about a third of a short
transaction's time. So every transaction on these engines starts with :func:`transaction`.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from runyard.errors import StoreError, UserError
from runyard.store.sql import dialects

if TYPE_CHECKING:
    from alembic.config import Config

#: The newest revision in ``migrations/versions`` (a test keeps the two in step). Knowing it
#: lets :func:`migrate` check a current schema without loading Alembic.
HEAD_REVISION = "0003"

#: Seconds a new SQLite connection keeps trying to put the file in WAL mode (see _use_wal).
WAL_WAIT = 60.0


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    if url.database in (None, "", ":memory:") or url.query.get("mode") == "memory":
        raise UserError(
            "an in-memory SQLite store cannot be shared between connections; "
            "use a file: sqlite:///PATH/runyard.db"
        )
    engine = sa.create_engine(url)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # transaction() emits BEGIN
        dbapi_conn.execute("PRAGMA busy_timeout = 60000")
        _use_wal(dbapi_conn)
        dbapi_conn.execute("PRAGMA synchronous = NORMAL")
        dbapi_conn.execute("PRAGMA foreign_keys = ON")

    return engine


def _use_wal(conn: sqlite3.Connection) -> None:
    """Put the database in WAL mode, which its file keeps once set. Processes opening a new
    file together race to set it, and SQLite refuses the losers at once ("database is
    locked", without waiting for the busy timeout): they look again, and try again."""
    deadline = time.monotonic() + WAL_WAIT
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal":
                return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() >= deadline:
                raise
        if time.monotonic() >= deadline:
            raise sqlite3.OperationalError("could not put the database in WAL mode")
        time.sleep(random.uniform(0.005, 0.02))


def _postgres_engine(url: sa.URL) -> sa.Engine:
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.drivername == "postgresql+psycopg":
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise UserError(
                "a PostgreSQL store needs psycopg: pip install 'runyard[postgres]'"
            ) from None
    return sa.create_engine(url, pool_pre_ping=True)


_ENGINES: dict[str, Callable[[sa.URL], sa.Engine]] = {
    "sqlite": _sqlite_engine,
    "postgresql": _postgres_engine,
    "postgres": _postgres_engine,
}


#: Engines in use, whose pooled connections a forked child must not share with its parent.
_LIVE: weakref.WeakSet[sa.Engine] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for engine in list(_LIVE):
        engine.dispose(close=False)  # the child opens connections of its own


def close_connections() -> None:
    """Close the pooled connections of every engine of this process (each reconnects when
    next used): before a ``fork()`` whose child may open the same SQLite database, which
    must not inherit an open connection to it. Connections in use are left alone, so call
    it between store calls of a single-threaded process."""
    for engine in list(_LIVE):
        engine.dispose()


os.register_at_fork(after_in_child=_after_fork_in_child)


def create_engine(url: str) -> sa.Engine:
    """An engine for a store URL: ``sqlite:///PATH`` or ``postgresql://...``."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise UserError(f"not a store URL: {url!r}") from None
    factory = _ENGINES.get(parsed.get_backend_name())
    if factory is None:
        raise UserError(
            f"unsupported store URL {parsed.render_as_string(hide_password=True)!r}: "
            "expected sqlite:///PATH or postgresql://USER@HOST/DB"
        )
    engine = factory(parsed)
    _LIVE.add(engine)
    return engine


@contextmanager
def transaction(engine: sa.Engine, *, write: bool = False) -> Iterator[sa.Connection]:
    """A connection inside a transaction, committed when the block ends (rolled back if it
    raises). ``write``: on SQLite, take the write lock now (``BEGIN IMMEDIATE``)."""
    with engine.connect() as conn, conn.begin():
        if engine.dialect.name == "sqlite":
            _begin_sqlite(conn, "BEGIN IMMEDIATE" if write else "BEGIN")
        yield conn


def _begin_sqlite(conn: sa.Connection, statement: str) -> None:
    # Straight to the driver: through SQLAlchemy's execution path a bare BEGIN costs as much
    # as a query. Its errors are wrapped as SQLAlchemy would have.
    dbapi = conn.dialect.loaded_dbapi
    driver = conn.connection.driver_connection  # a sqlite3.Connection
    assert driver is not None  # checked out of the pool, so open
    try:
        driver.execute(statement)
    except dbapi.Error as e:
        raise sa.exc.DBAPIError.instance(statement, None, e, dbapi.Error) from e


def alembic_config() -> Config:
    """Alembic's configuration for the store's migrations; no ``alembic.ini`` involved."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "runyard.store.sql:migrations")
    config.set_main_option("path_separator", "os")
    return config


def migrate(engine: sa.Engine) -> None:
    """Bring the schema to the newest revision, if it is not there already.

    Concurrent callers are safe: the upgrade runs in one write transaction (``BEGIN
    IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL) and re-reads the version inside it.
    """
    with engine.connect() as conn:
        if sa.inspect(conn).has_table("alembic_version"):
            current = conn.scalars(sa.text("SELECT version_num FROM alembic_version")).all()
            if current == [HEAD_REVISION]:
                return
    from alembic import command
    from alembic.util import CommandError

    config = alembic_config()
    try:
        with transaction(engine, write=True) as conn:
            dialects.lock(conn, "runyard.migrate")
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except CommandError as e:
        raise StoreError(
            f"cannot migrate the store's schema ({e}); is it from a newer runyard?"
        ) from e
