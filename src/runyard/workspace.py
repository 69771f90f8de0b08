"""Where a workspace keeps things, and its settings. No I/O beyond reading settings.

A workspace folder (the embedded default)::

    <root>/runyard.db            SQLite store (WAL)
    <root>/config.yaml           optional settings (see :class:`Settings`)
    <root>/artifacts/<run_id>/   the run's stored files: outputs/..., logs/...
    <root>/snapshots/            content-addressed code snapshots (blobs/ and manifests/)
    <root>/runs/<run_id>/        per-run folder on this machine:
        work/                    the working folder laid out from the snapshot (cwd)
        work/outputs/            RUNYARD_OUTPUTS, stored as artifacts at the end
        work/logs/               stored as artifacts while the run goes
        events.log               RUNYARD_EVENTS: the in-job API's append-only events file
        supervisor.log           what the supervisor itself reports
    <root>/envs/                 environment cache

The workspace is chosen by ``--workspace PATH``, then ``RUNYARD_WORKSPACE``, then the
per-user default ``~/.runyard``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from runyard.errors import UserError

if TYPE_CHECKING:
    from runyard.artifacts import ArtifactStore
    from runyard.store import Store

DEFAULT_WORKSPACE = "~/.runyard"


def default_root() -> Path:
    return Path(os.environ.get("RUNYARD_WORKSPACE") or DEFAULT_WORKSPACE).expanduser()


@dataclass(frozen=True)
class Settings:
    """Workspace settings, from ``config.yaml`` then ``RUNYARD_<NAME>`` variables."""

    #: Store URL; default the workspace's SQLite file.
    store_url: str | None = None
    #: How many runs the local compute target runs at once; extra runs wait Queued.
    local_slots: int = max(1, os.cpu_count() or 1)
    #: Seconds without a supervisor heartbeat after which a run is marked lost.
    heartbeat_timeout: float = 30.0
    #: Seconds between supervisor heartbeats.
    heartbeat_interval: float = 2.0
    #: Seconds between TERM and KILL when stopping a run.
    kill_grace: float = 5.0
    #: Seconds between system-metric samples (0 turns them off).
    system_metrics_interval: float = 10.0
    #: Snapshot limits.
    snapshot_max_files: int = 2000
    snapshot_max_bytes: int = 300 * 1024 * 1024

    @classmethod
    def load(cls, root: Path) -> Settings:
        values: dict[str, object] = {}
        cfg = root / "config.yaml"
        if cfg.is_file():
            data = yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}
            if not isinstance(data, dict):
                raise UserError(f"{cfg}: expected a mapping of settings")
            values.update(data)
        names = {f.name: f for f in fields(cls)}
        for name in names:
            env = os.environ.get(f"RUNYARD_{name.upper()}")
            if env is not None:
                values[name] = env
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise UserError(f"{cfg}: unknown setting {unknown[0]!r} (known: {', '.join(names)})")
        out: dict[str, object] = {}
        for name, raw in values.items():
            kind = type(getattr(cls, name)) if getattr(cls, name) is not None else str
            try:
                out[name] = kind(raw)
            except (TypeError, ValueError):
                raise UserError(f"setting {name}: expected {kind.__name__}, got {raw!r}") from None
        return cls(**out)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Layout:
    """Paths inside a workspace folder."""

    root: Path

    @property
    def db_path(self) -> Path:
        return self.root / "runyard.db"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    @property
    def envs(self) -> Path:
        return self.root / "envs"

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def work_dir(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "work"

    def events_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "events.log"

    def supervisor_log(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "supervisor.log"


@dataclass
class Resources:
    """An open workspace: its layout, settings, store and artifact store.

    Inner layers (supervisor, backends) take this; the public facade is
    :class:`runyard.client.Workspace`. Opening migrates the store's schema if needed."""

    layout: Layout
    settings: Settings
    store: Store
    artifacts: ArtifactStore

    @classmethod
    def open(cls, root: str | Path | None = None) -> Resources:
        from runyard.artifacts import LocalArtifactStore
        from runyard.store import open_store

        path = Path(root).expanduser() if root is not None else default_root()
        path = path.resolve()
        path.mkdir(parents=True, exist_ok=True)
        layout = Layout(path)
        settings = Settings.load(path)
        url = settings.store_url or f"sqlite:///{layout.db_path}"
        return cls(
            layout=layout,
            settings=settings,
            store=open_store(url),
            artifacts=LocalArtifactStore(layout.artifacts),
        )

    def close(self) -> None:
        self.store.close()
