"""What stores return: plain, frozen data. No I/O here."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class RunStatus(str, enum.Enum):
    """The run lifecycle: Queued → Preparing → Starting → Running → Finalizing → terminal."""

    QUEUED = "Queued"
    PREPARING = "Preparing"
    STARTING = "Starting"
    RUNNING = "Running"
    FINALIZING = "Finalizing"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELED = "Canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        """Holding a slot on its compute target (claimed and not yet terminal)."""
        return self in ACTIVE_STATUSES

    def __str__(self) -> str:
        return self.value


TERMINAL_STATUSES = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED})
ACTIVE_STATUSES = frozenset(
    {RunStatus.PREPARING, RunStatus.STARTING, RunStatus.RUNNING, RunStatus.FINALIZING}
)

#: Which status may follow which. Any non-terminal status may go to Failed or Canceled.
ALLOWED_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.PREPARING}),
    RunStatus.PREPARING: frozenset({RunStatus.STARTING}),
    RunStatus.STARTING: frozenset({RunStatus.RUNNING}),
    RunStatus.RUNNING: frozenset({RunStatus.FINALIZING}),
    RunStatus.FINALIZING: frozenset({RunStatus.COMPLETED}),
    RunStatus.COMPLETED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELED: frozenset(),
}
for _s in RunStatus:
    if not _s.is_terminal:
        ALLOWED_TRANSITIONS[_s] = ALLOWED_TRANSITIONS[_s] | {RunStatus.FAILED, RunStatus.CANCELED}


@dataclass(frozen=True)
class Experiment:
    id: int
    name: str
    created_at: float


@dataclass(frozen=True)
class StatusChange:
    status: RunStatus
    time: float
    reason: str | None = None


class MetricPoint(NamedTuple):
    """One logged value. ``step`` is the caller's step (or the per-key count when not given);
    ``timestamp`` is seconds since the epoch; ``rank`` the process rank that logged it.

    A named tuple rather than a dataclass: histories run to millions of points, and a tuple
    is several times cheaper to build."""

    key: str
    value: float
    step: int
    timestamp: float
    rank: int = 0


@dataclass(frozen=True)
class ArtifactInfo:
    """A stored file of a run. ``path`` is relative to the run's artifact root
    (``outputs/model.pt``, ``logs/std_log.txt``)."""

    path: str
    size: int


@dataclass(frozen=True)
class Run:
    id: str
    experiment: str
    name: str | None
    status: RunStatus
    #: The job spec as a JSON-able dict (see :meth:`runyard.spec.JobSpec.to_dict`).
    spec: dict[str, Any]
    compute: str
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    #: Why the run ended as it did: "exit code 3", "canceled by user", "timeout after 60s",
    #: "lost: supervisor heartbeat stale".
    reason: str | None = None
    #: Tail of the error output for failed runs.
    error: str | None = None
    snapshot_id: str | None = None
    parent_id: str | None = None
    #: {"commit": ..., "branch": ..., "dirty": bool, "remote": ...}; the diff is an artifact.
    git: dict[str, Any] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    #: Latest value per metric key (rank 0 unless only other ranks logged it).
    metrics: dict[str, float] = field(default_factory=dict)
    host: str | None = None
    supervisor_pid: int | None = None
    heartbeat_at: float | None = None
    cancel_requested: bool = False
    cancel_reason: str | None = None

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        import time

        return (self.ended_at or time.time()) - self.started_at
