"""``SqlStore``: the :class:`~runyard.store.base.Store` on SQLite or PostgreSQL.

Each public method is one transaction, opened here and nowhere else: reads with
:meth:`SqlStore._read`, changes with :meth:`SqlStore._write`. The queries live in
:mod:`.runs`, :mod:`.lifecycle`, :mod:`.metrics` and :mod:`.environments`. Database
failures leave as :class:`~runyard.errors.StoreError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from runyard.errors import RunNotFound, StoreError
from runyard.records import (
    ArtifactInfo,
    EnvironmentRecord,
    Experiment,
    MetricPoint,
    Run,
    RunState,
    RunStatus,
    StatusChange,
)
from runyard.store.sql import dialects, environments, lifecycle, metrics, runs, schema
from runyard.store.sql.engine import create_engine, migrate, transaction
from runyard.store.sql.registry import RegistryMethods


class SqlStore(RegistryMethods):
    """A store on a SQLAlchemy engine whose schema is current.

    Build one with :meth:`open`, which migrates; the constructor only wraps an engine.
    Thread-safe: every call takes its own pooled connection. Close it when done."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._name = engine.url.render_as_string(hide_password=True)

    @classmethod
    def open(cls, url: str) -> SqlStore:
        """Open the store at ``url`` (``sqlite:///PATH`` or ``postgresql://...``), creating
        or migrating its schema to the current version."""
        engine = create_engine(url)
        try:
            with _translated(engine.url.render_as_string(hide_password=True)):
                migrate(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    def close(self) -> None:
        self._engine.dispose()

    def __repr__(self) -> str:
        return f"SqlStore({self._name!r})"

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with _translated(self._name), transaction(self._engine) as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with _translated(self._name), transaction(self._engine, write=True) as conn:
            yield conn

    # -- experiments -------------------------------------------------------------------------

    def get_or_create_experiment(self, name: str) -> Experiment:
        with self._write() as conn:
            return runs.get_or_create_experiment(conn, name)

    def list_experiments(self) -> list[Experiment]:
        with self._read() as conn:
            return runs.list_experiments(conn)

    # -- runs ----------------------------------------------------------------------------------

    def create_run(
        self,
        *,
        experiment: str,
        spec: Mapping[str, Any],
        compute: str = "local",
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        snapshot_id: str | None = None,
        parent_id: str | None = None,
        git: Mapping[str, Any] | None = None,
    ) -> Run:
        with self._write() as conn:
            return runs.create_run(
                conn,
                experiment=experiment,
                spec=spec,
                compute=compute,
                name=name,
                tags=tags,
                params=params,
                snapshot_id=snapshot_id,
                parent_id=parent_id,
                git=git,
            )

    def get_run(self, run_id: str) -> Run:
        with self._read() as conn:
            try:
                return runs.get_run(conn, run_id)
            except RunNotFound:  # a prefix, perhaps
                return runs.get_run(conn, runs.resolve_id(conn, run_id))

    def run_state(self, run_id: str) -> RunState:
        with self._read() as conn:
            return runs.run_state(conn, run_id)

    def run_states(self, ids: Iterable[str]) -> dict[str, RunState]:
        with self._read() as conn:
            return runs.run_states(conn, ids)

    def latest_metrics(
        self, ids: Iterable[str], *, key: str | None = None
    ) -> dict[str, dict[str, float]]:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        with self._read() as conn:
            return runs.latest_values(conn, wanted, key)

    def search_runs(
        self,
        *,
        experiment: str | None = None,
        statuses: Iterable[RunStatus] | None = None,
        tags: Mapping[str, str] | None = None,
        parent_id: str | None = None,
        ids: Iterable[str] | None = None,
        order_by: str | None = None,
        limit: int | None = None,
    ) -> list[Run]:
        with self._read() as conn:
            return runs.search_runs(
                conn,
                experiment=experiment,
                statuses=statuses,
                tags=tags,
                parent_id=parent_id,
                ids=ids,
                order_by=order_by,
                limit=limit,
            )

    def status_history(self, run_id: str) -> list[StatusChange]:
        with self._read() as conn:
            return runs.status_history(conn, run_id)

    def transition(
        self,
        run_id: str,
        status: RunStatus,
        *,
        expected: Iterable[RunStatus] | None = None,
        reason: str | None = None,
        exit_code: int | None = None,
        error: str | None = None,
        via: Sequence[tuple[RunStatus, float]] = (),
        pgid: int | None = None,
        artifacts: Sequence[ArtifactInfo] = (),
    ) -> RunState:
        with self._write() as conn:
            state = lifecycle.transition(
                conn,
                run_id,
                status,
                expected=expected,
                reason=reason,
                exit_code=exit_code,
                error=error,
                via=via,
                pgid=pgid,
            )
            _index_artifacts(conn, run_id, artifacts)
            return state

    def claim(self, run_id: str, *, slots: int, supervisor: tuple[str, int] | None = None) -> bool:
        with self._write() as conn:
            return lifecycle.claim(conn, run_id, slots, supervisor)

    def attach_supervisor(self, run_id: str, *, host: str, pid: int) -> None:
        with self._write() as conn:
            lifecycle.attach_supervisor(conn, run_id, host, pid)

    def set_process_group(self, run_id: str, pgid: int | None) -> None:
        with self._write() as conn:
            lifecycle.set_process_group(conn, run_id, pgid)

    def process_group(self, run_id: str) -> int | None:
        with self._read() as conn:
            return lifecycle.process_group(conn, run_id)

    def heartbeat(self, run_id: str) -> None:
        with self._write() as conn:
            lifecycle.heartbeat(conn, run_id)

    def request_cancel(self, run_id: str, reason: str = "canceled by user") -> Run:
        with self._write() as conn:
            lifecycle.request_cancel(conn, run_id, reason)
            return runs.get_run(conn, run_id)

    def mark_lost(
        self, *, heartbeat_timeout: float, host: str | None = None, dead_pids: Iterable[int] = ()
    ) -> list[str]:
        with self._write() as conn:
            return lifecycle.mark_lost(
                conn, heartbeat_timeout=heartbeat_timeout, host=host, dead_pids=dead_pids
            )

    # -- params, tags, metrics ----------------------------------------------------------------

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        with self._write() as conn:
            runs.require_run(conn, run_id)
            runs.log_params(conn, run_id, params)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        with self._write() as conn:
            runs.require_run(conn, run_id)
            runs.set_tags(conn, run_id, tags)

    def delete_tag(self, run_id: str, key: str) -> None:
        with self._write() as conn:
            runs.require_run(conn, run_id)
            runs.delete_tag(conn, run_id, key)

    def log_metrics(self, run_id: str, points: Sequence[MetricPoint]) -> None:
        if not points:
            return
        with self._write() as conn:
            runs.require_run(conn, run_id)
            metrics.log_metrics(conn, run_id, points)

    def metric_keys(self, run_id: str) -> list[str]:
        with self._read() as conn:
            runs.require_run(conn, run_id)
            return metrics.metric_keys(conn, run_id)

    def metric_history(self, run_id: str, key: str, *, rank: int | None = 0) -> list[MetricPoint]:
        with self._read() as conn:
            runs.require_run(conn, run_id)
            return metrics.metric_history(conn, run_id, key, rank)

    # -- artifacts --------------------------------------------------------------------------

    def record_artifacts(self, run_id: str, artifacts: Sequence[ArtifactInfo]) -> None:
        with self._write() as conn:
            runs.require_run(conn, run_id)
            _index_artifacts(conn, run_id, artifacts)

    def list_artifacts(self, run_id: str) -> list[ArtifactInfo]:
        with self._read() as conn:
            runs.require_run(conn, run_id)
            rows = conn.execute(
                sa.select(schema.artifacts.c.path, schema.artifacts.c.size)
                .where(schema.artifacts.c.run_id == run_id)
                .order_by(schema.artifacts.c.path)
            )
            return [ArtifactInfo(path=path, size=size) for path, size in rows]

    # -- registered environments --------------------------------------------------------------

    def put_environment(
        self, name: str, definition: Mapping[str, Any], digest: str
    ) -> EnvironmentRecord:
        with self._write() as conn:
            return environments.put_environment(conn, name, definition, digest)

    def get_environment(self, name: str, version: int | None = None) -> EnvironmentRecord:
        with self._read() as conn:
            return environments.get_environment(conn, name, version)

    def list_environments(self, name: str | None = None) -> list[EnvironmentRecord]:
        with self._read() as conn:
            return environments.list_environments(conn, name)


def _index_artifacts(conn: sa.Connection, run_id: str, artifacts: Sequence[ArtifactInfo]) -> None:
    rows = {a.path: {"run_id": run_id, "path": a.path, "size": a.size} for a in artifacts}
    dialects.upsert(conn, schema.artifacts, list(rows.values()), update=["size"])


@contextmanager
def _translated(name: str) -> Iterator[None]:
    """Database errors become :class:`StoreError`, naming the store and the cause."""
    try:
        yield
    except sa.exc.SQLAlchemyError as e:
        cause = getattr(e, "orig", None) or e
        raise StoreError(f"store {name}: {type(cause).__name__}: {cause}") from e
