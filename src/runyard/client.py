"""The SDK facade: one object for everything a person does with a workspace.

>>> ws = Workspace.open("~/.runyard")            # doctest: +SKIP
>>> run = ws.run(JobSpec(command="python train.py", code="."))   # doctest: +SKIP
>>> ws.metric_history(run.id, "loss")             # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from runyard.errors import InvalidTransition, NotFound, UserError
from runyard.records import ArtifactInfo, MetricPoint, Run, RunStatus, StatusChange
from runyard.spec import JobSpec
from runyard.store import Store
from runyard.workspace import Resources

#: Where a run's standard output and error are captured, relative to its working folder.
STD_LOG = "logs/std_log.txt"


class Workspace:
    """An open workspace. Create with :meth:`open`; close with :meth:`close` (or ``with``)."""

    def __init__(self, resources: Resources):
        self.resources = resources

    @classmethod
    def open(cls, path: str | Path | None = None) -> Workspace:
        """Open (creating if needed) the workspace at ``path``, else ``RUNYARD_WORKSPACE``,
        else ``~/.runyard``."""
        return cls(Resources.open(path))

    def close(self) -> None:
        self.resources.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def root(self) -> Path:
        return self.resources.layout.root

    @property
    def store(self) -> Store:
        return self.resources.store

    # -- starting runs -------------------------------------------------------------------
    def _spec(self, spec: JobSpec | str | Path, overrides: Mapping[str, Any]) -> JobSpec:
        if isinstance(spec, JobSpec):
            job = spec
        else:
            from runyard.spec.load import load_job

            job = load_job(spec)
        changes = {k: v for k, v in overrides.items() if v is not None}
        if "tags" in changes:
            changes["tags"] = {**job.tags, **changes["tags"]}
        return job.replace(**changes) if changes else job

    def create_run(
        self,
        spec: JobSpec,
        *,
        parent_id: str | None = None,
        snapshot_id: str | None = None,
        extra_tags: Mapping[str, str] | None = None,
    ) -> Run:
        """Validate, snapshot the code folder and record the run as Queued."""
        from runyard.backends import get_backend

        get_backend(spec.compute, self.resources)  # an unknown target fails before recording
        git = None
        git_diff = None
        if snapshot_id is None and spec.code is not None:
            from runyard.snapshot import git_info, take_snapshot

            s = self.resources.settings
            snap = take_snapshot(
                Path(spec.code),
                self.resources.layout.snapshots,
                max_files=s.snapshot_max_files,
                max_bytes=s.snapshot_max_bytes,
            )
            snapshot_id = snap.id
            info = git_info(Path(spec.code))
            if info is not None:
                git = info.to_record()
                git_diff = info.diff or None
        run = self.store.create_run(
            experiment=spec.experiment,
            spec=spec.to_dict(),
            compute=spec.compute,
            name=spec.name,
            tags={**spec.tags, **(extra_tags or {})},
            snapshot_id=snapshot_id,
            parent_id=parent_id,
            git=git,
        )
        if git_diff:
            self._store_text(run.id, "logs/git_diff.patch", git_diff)
        return run

    def _store_text(self, run_id: str, rel: str, text: str) -> None:
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
            f.write(text)
        tmp = Path(f.name)
        try:
            size = self.resources.artifacts.put_file(f"{run_id}/{rel}", tmp)
        finally:
            tmp.unlink()
        self.store.record_artifacts(run_id, [ArtifactInfo(rel, size)])

    def submit(
        self,
        spec: JobSpec | str | Path,
        *,
        experiment: str | None = None,
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Run:
        """Record the run and hand it to its compute target; returns at once (Queued)."""
        from runyard.backends import get_backend

        job = self._spec(spec, {"experiment": experiment, "name": name, "tags": tags})
        run = self.create_run(job)
        get_backend(job.compute, self.resources).submit(run.id)
        return run

    def run(
        self,
        spec: JobSpec | str | Path,
        *,
        experiment: str | None = None,
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> Run:
        """Run in the foreground and return the finished run. ``echo`` receives the run's
        output line by line as it is produced; Ctrl-C cancels the run."""
        job = self._spec(spec, {"experiment": experiment, "name": name, "tags": tags})
        run = self.create_run(job)
        return self._run_foreground(run, echo)

    def _run_foreground(self, run: Run, echo: Callable[[str], None] | None) -> Run:
        from runyard.backends import get_backend

        backend = get_backend(run.compute, self.resources)
        foreground = getattr(backend, "run_foreground", None)
        if foreground is not None:
            result: Run = foreground(run.id, echo)
            return result
        backend.submit(run.id)
        for line in self.logs(run.id, follow=True):
            if echo:
                echo(line)
        return self.get_run(run.id)

    def rerun(
        self, run_id: str, *, detach: bool = False, echo: Callable[[str], None] | None = None
    ) -> Run:
        """A new run of the same snapshot and the same spec."""
        from runyard.backends import get_backend

        old = self.get_run(run_id)
        spec = JobSpec.from_dict(old.spec)
        run = self.create_run(
            spec, snapshot_id=old.snapshot_id, extra_tags={"runyard.rerun_of": old.id}
        )
        if detach:
            get_backend(run.compute, self.resources).submit(run.id)
            return run
        return self._run_foreground(run, echo)

    def cancel(self, run_id: str, reason: str = "canceled by user") -> Run:
        run = self.get_run(run_id)
        if run.status.is_terminal:
            raise InvalidTransition(f"run {run.id} is already {run.status.value}")
        return self.store.request_cancel(run.id, reason)

    def wait(self, run_id: str, *, timeout: float | None = None, poll: float = 0.2) -> Run:
        """Block until the run is terminal (or ``timeout`` seconds pass) and return it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self.get_run(run_id)
            if run.status.is_terminal:
                return run
            if deadline is not None and time.monotonic() > deadline:
                return run
            self.reap()
            time.sleep(poll)

    # -- reading ---------------------------------------------------------------------
    def reap(self) -> list[str]:
        """Mark runs whose supervisor vanished as lost; returns their ids."""
        from runyard.supervisor import reap_lost

        return reap_lost(self.resources)

    def get_run(self, run_id: str) -> Run:
        return self.store.get_run(run_id)

    def search_runs(
        self,
        *,
        experiment: str | None = None,
        statuses: list[RunStatus] | None = None,
        tags: Mapping[str, str] | None = None,
        parent_id: str | None = None,
        order_by: str | None = None,
        limit: int | None = None,
    ) -> list[Run]:
        return self.store.search_runs(
            experiment=experiment,
            statuses=statuses,
            tags=tags,
            parent_id=parent_id,
            order_by=order_by,
            limit=limit,
        )

    def status_history(self, run_id: str) -> list[StatusChange]:
        return self.store.status_history(self.get_run(run_id).id)

    def metric_keys(self, run_id: str) -> list[str]:
        return self.store.metric_keys(self.get_run(run_id).id)

    def metric_history(self, run_id: str, key: str, *, rank: int | None = 0) -> list[MetricPoint]:
        run = self.get_run(run_id)
        points: list[MetricPoint] = self.store.metric_history(run.id, key, rank=rank)
        if not points and key not in self.store.metric_keys(run.id):
            raise NotFound(f"run {run.id} has no metric {key!r}")
        return points

    def list_artifacts(self, run_id: str) -> list[ArtifactInfo]:
        return self.store.list_artifacts(self.get_run(run_id).id)

    def download(self, run_id: str, dest: str | Path, path: str | None = None) -> list[Path]:
        """Copy the run's artifacts (all, or those at/under ``path``) into ``dest``."""
        run = self.get_run(run_id)
        prefix = (path or "").strip("/")
        chosen = [
            a
            for a in self.store.list_artifacts(run.id)
            if not prefix or a.path == prefix or a.path.startswith(prefix + "/")
        ]
        if not chosen:
            raise NotFound(
                f"run {run.id} has no artifact at {prefix!r}"
                if prefix
                else f"run {run.id} has no artifacts"
            )
        out = []
        for a in chosen:
            target = Path(dest) / a.path
            self.resources.artifacts.get_file(f"{run.id}/{a.path}", target)
            out.append(target)
        return out

    def log_path(self, run_id: str) -> Path | None:
        """The run's output log: the live file while the run's folder is on this machine,
        else the stored artifact (local artifact stores), else None."""
        live = self.resources.layout.work_dir(run_id) / STD_LOG
        if live.is_file():
            return live
        stored = self.resources.artifacts.open_read(f"{run_id}/{STD_LOG}")
        return stored if stored is not None and stored.is_file() else None

    def logs(self, run_id: str, *, follow: bool = False, poll: float = 0.2) -> Iterator[str]:
        """The run's output, line by line; with ``follow``, until the run ends."""
        run = self.get_run(run_id)
        offset = 0
        pending = ""
        done = not follow
        polls = 0
        while True:
            path = self.log_path(run.id)
            if path is not None:
                with path.open("r", encoding="utf-8", errors="replace") as f:
                    f.seek(offset)
                    chunk = f.read()
                    offset = f.tell()
                pending += chunk
                *lines, pending = pending.split("\n")
                yield from lines
            if done:
                break
            time.sleep(poll)
            polls += 1
            if polls % 10 == 0:
                self.reap()
            # Read once more after the run ends so the tail is never lost.
            done = self.get_run(run.id).status.is_terminal
        if pending:
            yield pending


def parse_tags(pairs: list[str] | tuple[str, ...], *, what: str = "--tag") -> dict[str, str]:
    """``["k=v", ...]`` → dict, with a clear error for a pair without '='."""
    out = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise UserError(f"{what} {p!r}: expected KEY=VALUE")
        out[key] = value
    return out
