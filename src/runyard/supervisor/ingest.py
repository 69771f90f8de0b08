"""Tailing the run's events file into the store, in batches."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from runyard.errors import UserError
from runyard.records import MetricPoint
from runyard.store import Store
from runyard.supervisor.logsync import FolderSync
from runyard.tracking.events import EventBatch, ModelRequest, read_events

#: Bytes of the events file parsed per read (~60,000 metric points).
READ_BYTES = 4 << 20
#: Points per ``log_metrics`` call.
METRICS_PER_CALL = 10_000


class Ingestor:
    """Reads new records from ``events_path`` and records them for ``run_id``.

    Artifact records name files under the outputs folder; those are copied to the artifact
    store at once through ``outputs`` (the final sync of the whole folder skips them unless
    they changed again). Records the store refuses (a param logged twice with different
    values, a bad metric key) are reported through ``warn`` and skipped: one bad record
    never stops a run's ingestion."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        events_path: Path,
        outputs: FolderSync,
        warn: Callable[[str], None],
    ):
        self.store = store
        self.run_id = run_id
        self.events_path = events_path
        self.outputs = outputs
        self.warn = warn
        self.offset = 0
        self.points = 0
        #: Models the run asked to register when it succeeds, in the order asked.
        self.models: list[ModelRequest] = []

    def pending(self) -> bool:
        try:
            return os.stat(self.events_path).st_size > self.offset  # noqa: PTH116
        except OSError:
            return False

    def poll(self, *, max_reads: int | None = 4) -> int:
        """Ingest what was appended since the last call (at most ``max_reads`` reads of
        :data:`READ_BYTES`, or everything when ``None``). Returns the points ingested."""
        n = 0
        reads = 0
        while self.pending() and (max_reads is None or reads < max_reads):
            batch, offset = read_events(self.events_path, self.offset, max_bytes=READ_BYTES)
            reads += 1
            if offset == self.offset:  # only a partial last line so far
                break
            self._record(batch)
            self.offset = offset
            n += len(batch.metrics)
        self.points += n
        return n

    def _record(self, batch: EventBatch) -> None:
        self.models.extend(batch.models)
        if batch.params:
            self._params(batch.params)
        if batch.tags:
            self.store.set_tags(self.run_id, batch.tags)
        for i in range(0, len(batch.metrics), METRICS_PER_CALL):
            self._metrics(batch.metrics[i : i + METRICS_PER_CALL])
        if batch.artifacts:
            infos = [self.outputs.sync_one(path) for path, _kind in batch.artifacts]
            found = [i for i in infos if i is not None]
            if found:
                self.store.record_artifacts(self.run_id, found)

    def _params(self, params: dict[str, str]) -> None:
        try:
            self.store.log_params(self.run_id, params)
        except UserError:
            for key, value in params.items():
                try:
                    self.store.log_params(self.run_id, {key: value})
                except UserError as e:
                    self.warn(f"param {key!r} not recorded: {e}")

    def _metrics(self, points: Sequence[MetricPoint]) -> None:
        try:
            self.store.log_metrics(self.run_id, points)
        except UserError:
            # Rare (the in-job API validates keys): find the bad points one by one.
            for p in points:
                try:
                    self.store.log_metrics(self.run_id, [p])
                except UserError as e:
                    self.warn(f"metric point {p.key!r} step {p.step} not recorded: {e}")
