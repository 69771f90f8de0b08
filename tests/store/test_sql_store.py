"""The SQL store: the Store contract on SQLite and PostgreSQL, and what is SQL's own."""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from runyard.errors import StoreError, UserError
from runyard.records import MetricPoint
from runyard.store import open_store
from runyard.store.sql import SqlStore, runs
from runyard.store.sql.engine import HEAD_REVISION, alembic_config, create_engine, transaction
from runyard.store.sql.schema import metadata

from .contract import *  # noqa: F403
from .contract import new_run, points
from .contract_lifecycle import *  # noqa: F403
from .contract_models import *  # noqa: F403


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runyard.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    opened = SqlStore.open(store_url)
    yield opened
    opened.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runyard.db'}"


# -- schema and opening ---------------------------------------------------------------------


def test_migrations_build_the_declared_schema(store_url: str) -> None:
    SqlStore.open(store_url).close()
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_head_revision_is_the_newest_migration() -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert heads == [HEAD_REVISION]


def test_open_is_repeatable_and_keeps_data(store_url: str) -> None:
    with_data = SqlStore.open(store_url)
    run_id = new_run(with_data)
    with_data.close()
    again = open_store(store_url)
    try:
        assert again.get_run(run_id).id == run_id
    finally:
        again.close()


def test_constructor_does_not_migrate(sqlite_url: str, tmp_path: Path) -> None:
    engine = create_engine(sqlite_url)
    SqlStore(engine).close()
    conn = sqlite3.connect(tmp_path / "runyard.db")
    try:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []
    finally:
        conn.close()


def test_schema_from_a_newer_runyard_is_refused(store_url: str) -> None:
    SqlStore.open(store_url).close()
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StoreError, match="newer runyard"):
        SqlStore.open(store_url)


@pytest.mark.parametrize("url", ["mysql://u@h/db", "sqlite://", "sqlite:///:memory:", "not a url"])
def test_unsupported_urls_are_user_errors(url: str) -> None:
    with pytest.raises(UserError):
        SqlStore.open(url)


def test_sqlite_store_uses_wal(sqlite_url: str, tmp_path: Path) -> None:
    SqlStore.open(sqlite_url).close()
    conn = sqlite3.connect(tmp_path / "runyard.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()


def test_transactions_are_atomic(store_url: str) -> None:
    SqlStore.open(store_url).close()
    engine = create_engine(store_url)
    insert = sa.text("INSERT INTO experiments (name, created_at) VALUES ('half-done', 0)")
    try:
        with pytest.raises(RuntimeError), transaction(engine, write=True) as conn:
            conn.execute(insert)
            raise RuntimeError("fails after a statement")
        with transaction(engine) as conn:
            names = conn.scalars(sa.text("SELECT name FROM experiments")).all()
        assert "half-done" not in names
    finally:
        engine.dispose()


def test_sqlite_transactions_read_one_snapshot_and_writes_lock_up_front(
    sqlite_url: str, tmp_path: Path
) -> None:
    SqlStore.open(sqlite_url).close()
    engine = create_engine(sqlite_url)

    @sa.event.listens_for(engine, "connect")
    def _short_wait(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        dbapi_conn.execute("PRAGMA busy_timeout = 50")  # after the engine's own 60 s

    other = sqlite3.connect(tmp_path / "runyard.db", isolation_level=None)
    count = sa.text("SELECT count(*) FROM experiments")
    try:
        with transaction(engine) as conn:
            before = conn.scalar(count)
            other.execute("INSERT INTO experiments (name, created_at) VALUES ('meanwhile', 0)")
            assert conn.scalar(count) == before  # one snapshot, not a statement each
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        with transaction(engine) as conn:  # reading does not wait for it
            assert conn.scalar(count) == before + 1
        locked = pytest.raises(sa.exc.OperationalError, match="database is locked")
        with locked, transaction(engine, write=True):
            pass  # BEGIN IMMEDIATE itself waits for the lock, then fails
        with pytest.raises(StoreError, match="database is locked"):
            SqlStore(engine).get_or_create_experiment("refused")
        other.execute("COMMIT")
        assert SqlStore(engine).get_or_create_experiment("now").name == "now"
    finally:
        other.close()
        engine.dispose()


def test_database_errors_become_store_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unable to open database file"):
        SqlStore.open(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'runyard.db'}")


def test_large_listings_load_details_by_subquery(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = []
    for i in range(6):
        run_id = new_run(store, tags={"i": str(i)}, params={"p": str(i)})
        store.log_metrics(run_id, points("m", [float(i)]))
        made.append(run_id)
    by_id = store.search_runs()
    monkeypatch.setattr(runs, "ID_LIST_LIMIT", 2)
    assert store.search_runs() == by_id
    assert [r.id for r in store.search_runs(order_by="metric:m:asc", limit=4)] == made[:4]
    assert store.search_runs(tags={"i": "3"}) == [r for r in by_id if r.id == made[3]]


# -- many processes on one SQLite file ---------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import sys, time
    from runyard.records import MetricPoint
    from runyard.store.sql import SqlStore

    url, run_id, rank, per_worker, batch = sys.argv[1:6]
    rank, per_worker, batch = int(rank), int(per_worker), int(batch)
    store = SqlStore.open(url)
    print("ready", flush=True)
    sys.stdin.readline()  # wait until every worker is ready
    for start in range(0, per_worker, batch):
        now = time.time()
        store.log_metrics(run_id, [
            MetricPoint("loss", float(step), step, now, rank)
            for step in range(start, start + batch)
        ])
    store.close()
    """
)


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_twenty_processes_write_one_sqlite_file(sqlite_url: str) -> None:
    workers, per_worker, batch = 20, 2000, 100
    store = SqlStore.open(sqlite_url)
    try:
        run_id = new_run(store)
        procs = [
            _spawn(sqlite_url, run_id, str(r), str(per_worker), str(batch)) for r in range(workers)
        ]
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        failures = []
        for proc in procs:
            _, err = proc.communicate(timeout=240)
            if proc.returncode != 0:
                failures.append(err)
        assert failures == []
        every = store.metric_history(run_id, "loss", rank=None)
        assert len(every) == workers * per_worker
        for rank in (0, workers - 1):
            assert [p.step for p in store.metric_history(run_id, "loss", rank=rank)] == list(
                range(per_worker)
            )
        assert store.get_run(run_id).metrics == {"loss": float(per_worker - 1)}
    finally:
        store.close()


@pytest.mark.slow
def test_processes_opening_a_new_sqlite_file_together(sqlite_url: str) -> None:
    code = textwrap.dedent(
        """
        import sys
        from runyard.store.sql import SqlStore
        store = SqlStore.open(sys.argv[1])
        store.create_run(experiment="race", spec={})
        store.close()
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, sqlite_url], stderr=subprocess.PIPE, text=True
        )
        for _ in range(8)
    ]
    results = [(proc, proc.communicate(timeout=120)[1]) for proc in procs]
    assert [err for proc, err in results if proc.returncode != 0] == []
    store = SqlStore.open(sqlite_url)
    try:
        assert len(store.search_runs(experiment="race")) == 8
    finally:
        store.close()


def test_a_forked_child_can_use_its_parents_store(store: SqlStore) -> None:
    """The child gets connections of its own rather than sharing the parent's pooled ones
    (sharing works by luck at best, so this checks the outcome, not the sharing)."""
    run_id = new_run(store)
    store.log_metrics(run_id, points("x", [1.0]))  # the parent holds a pooled connection
    child = multiprocessing.get_context("fork").Process(
        target=store.log_metrics, args=(run_id, points("x", [2.0, 3.0], start=1))
    )
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    assert [p.value for p in store.metric_history(run_id, "x")] == [1.0, 2.0, 3.0]


def test_metric_points_keep_their_fields(store: SqlStore) -> None:
    run_id = new_run(store)
    point = MetricPoint("loss", 0.25, step=7, timestamp=1_700_000_000.125, rank=3)
    store.log_metrics(run_id, [point])
    assert store.metric_history(run_id, "loss", rank=3) == [point]
    assert store.metric_history(run_id, "loss", rank=None) == [point]
