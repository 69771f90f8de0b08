"""What stores return: plain, frozen data. No I/O here."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields, replace
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

    @property
    def state(self) -> RunState:
        """Its lifecycle fields."""
        return RunState(**{name: getattr(self, name) for name in _STATE_FIELDS})

    def with_state(self, state: RunState) -> Run:
        """This record with the lifecycle fields of ``state`` (the same run, read later)."""
        return replace(self, **{name: getattr(state, name) for name in _STATE_FIELDS})


@dataclass(frozen=True)
class RunState:
    """A run's lifecycle fields alone, without its spec, tags, params or metrics: what a
    supervisor or a sweep controller polls, read in one statement."""

    id: str
    status: RunStatus
    reason: str | None = None
    exit_code: int | None = None
    error: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    host: str | None = None
    supervisor_pid: int | None = None
    heartbeat_at: float | None = None
    cancel_requested: bool = False
    cancel_reason: str | None = None


_STATE_FIELDS = tuple(f.name for f in fields(RunState))


@dataclass(frozen=True)
class ModelFile:
    """A file of a model version. ``path`` is relative to the version's folder: a registered
    file keeps its name (``model.onnx``), a registered folder its own name as the first part
    (``model_dir/weights.bin``), as Azure ML lays out ``AZUREML_MODEL_DIR``."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ModelVersion:
    """One immutable version of a registered model. Tags and the description may change;
    files, framework, properties and lineage never do."""

    name: str
    version: int
    created_at: float
    framework: str | None = None
    framework_version: str | None = None
    description: str | None = None
    files: tuple[ModelFile, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    #: Lineage: the run it was registered from, that run's params and final metrics.
    run_id: str | None = None
    run_params: dict[str, str] = field(default_factory=dict)
    run_metrics: dict[str, float] = field(default_factory=dict)
    #: Where the files came from: ``run:<id>/outputs/model.onnx`` or a local path.
    source: str | None = None

    @property
    def ref(self) -> str:
        """``name@version``, as the CLI accepts it."""
        return f"{self.name}@{self.version}"

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


class EndpointStatus(str, enum.Enum):
    """``Starting`` until its server answers, then ``Running``; ``Failed`` when the server
    could not start or its process died; ``Stopped`` after a person stopped it."""

    STARTING = "Starting"
    RUNNING = "Running"
    FAILED = "Failed"
    STOPPED = "Stopped"

    @property
    def is_live(self) -> bool:
        return self in (EndpointStatus.STARTING, EndpointStatus.RUNNING)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class TrafficRoute:
    """A share of an endpoint's requests: ``weight`` out of the sum of its routes' weights."""

    model: str
    version: int
    weight: int

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"


@dataclass(frozen=True)
class Endpoint:
    """A named, served deployment of model versions, recorded in the workspace.

    ``config`` holds the serving options (``score``, ``workers``, ``bind``, ``auth``,
    ``batching`` ...) as JSON; ``traffic`` the versions served and their weights;
    ``hostname`` and ``pid`` the machine and process serving it."""

    name: str
    status: EndpointStatus
    traffic: tuple[TrafficRoute, ...]
    config: dict[str, Any]
    created_at: float
    updated_at: float
    hostname: str | None = None
    pid: int | None = None
    port: int | None = None
    error: str | None = None

    @property
    def url(self) -> str | None:
        if self.port is None:
            return None
        bind = str(self.config.get("bind") or "127.0.0.1")
        host = "127.0.0.1" if bind in ("0.0.0.0", "") else bind  # noqa: S104
        host = "[::1]" if host == "::" else (f"[{host}]" if ":" in host else host)
        return f"http://{host}:{self.port}"


@dataclass(frozen=True)
class EnvironmentRecord:
    """One version of a registered environment (see :mod:`runyard.envs.registry`)."""

    name: str
    version: int
    #: ``EnvironmentDefinition.to_dict()`` of the version.
    definition: dict[str, Any]
    #: ``definition_digest()`` of it: a new version is recorded only when this changes.
    digest: str
    #: Seconds since the epoch.
    created_at: float

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"
