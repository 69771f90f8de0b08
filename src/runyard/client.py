"""The SDK facade: one object for everything a person does with a workspace.

>>> ws = Workspace.open("~/.runyard")            # doctest: +SKIP
>>> run = ws.run(JobSpec(command="python train.py", code="."))   # doctest: +SKIP
>>> ws.metric_history(run.id, "loss")             # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.errors import InvalidTransition, NotFound, UserError
from runyard.records import ArtifactInfo, MetricPoint, Run, RunStatus, StatusChange
from runyard.spec import JobSpec
from runyard.store import Store
from runyard.workspace import Resources

if TYPE_CHECKING:
    from runyard.launch import LaunchPlan
    from runyard.registry import ModelRegistry
    from runyard.serving.endpoints import Endpoints
    from runyard.supervisor.ranklogs import LogSource
    from runyard.sweep import SweepSpec, Trial

#: Where a run's standard output and error are captured, relative to its working folder.
STD_LOG = "logs/std_log.txt"
#: ``${{outputs.NAME}}`` in a dry run's commands (the run's folder does not exist yet).
DRY_RUN_OUTPUTS = "<workdir>/outputs"


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

    @property
    def models(self) -> ModelRegistry:
        """The model registry: ``ws.models.register("digits", "model.onnx")``."""
        from runyard.registry import ModelRegistry

        return ModelRegistry(self.resources)

    @property
    def endpoints(self) -> Endpoints:
        """Served deployments: ``ws.endpoints.create("web", "digits@production")``."""
        from runyard.serving.endpoints import Endpoints

        return Endpoints(self.resources)

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
        if spec.environment.ref is not None:  # so does an unknown environment
            from runyard.envs import lookup

            lookup(self.store, spec.environment.ref)
        from runyard.launch import check_launch

        check_launch(spec)  # so does a distribution that cannot be planned
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

    def plan(self, spec: JobSpec | str | Path) -> LaunchPlan:
        """What running ``spec`` would start, per process: command, log and the variables
        runyard adds (``runyard run --dry-run``). Records nothing; the ports shown are free
        now, a run picks its own when it starts."""
        from runyard.backends import get_backend
        from runyard.launch import plan_local
        from runyard.spec import command_argv

        job = self._spec(spec, {})
        get_backend(job.compute, self.resources)
        return plan_local(job, command_argv(job, outputs_dir=DRY_RUN_OUTPUTS))

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
        if old.tags.get("runyard.type") == "sweep":
            raise UserError(
                f"run {old.id} is a sweep: start it again with runyard sweep, "
                "or rerun one of its trials"
            )
        spec = JobSpec.from_dict(old.spec)
        run = self.create_run(
            spec, snapshot_id=old.snapshot_id, extra_tags={"runyard.rerun_of": old.id}
        )
        if detach:
            get_backend(run.compute, self.resources).submit(run.id)
            return run
        return self._run_foreground(run, echo)

    def cancel(self, run_id: str, reason: str = "canceled by user") -> Run:
        """Cancel a run; for a sweep, the sweep and all its running trials."""
        run = self.get_run(run_id)
        if run.status.is_terminal:
            raise InvalidTransition(f"run {run.id} is already {run.status.value}")
        if run.tags.get("runyard.type") == "sweep":
            from runyard.sweep import cancel_sweep

            return cancel_sweep(self, run.id, reason)
        return self.store.request_cancel(run.id, reason)

    # -- sweeps ----------------------------------------------------------------------
    def sweep(
        self,
        spec: SweepSpec | str | Path,
        *,
        detach: bool = False,
        on_update: Callable[..., None] | None = None,
    ) -> Run:
        """Run a hyperparameter sweep (a :class:`runyard.sweep.SweepSpec` or a sweep YAML
        path): here until it ends, or with ``detach`` in a background controller."""
        from runyard.sweep import run_sweep

        return run_sweep(self, spec, detach=detach, on_update=on_update)

    def resume_sweep(self, sweep_id: str, *, detach: bool = False) -> Run:
        """Continue a sweep whose controller stopped, with no trial lost or repeated."""
        from runyard.sweep import resume_sweep

        return resume_sweep(self, sweep_id, detach=detach)

    def sweep_trials(self, sweep_id: str) -> list[Trial]:
        """The sweep's trials, best first by its objective."""
        from runyard.sweep import sweep_trials

        return sweep_trials(self, sweep_id)

    def best_trial(self, sweep_id: str) -> Trial | None:
        """The best finished trial with the objective logged, or None."""
        from runyard.sweep import best_trial

        return best_trial(self, sweep_id)

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

    def log_files(self, run_id: str) -> dict[str, Path]:
        """The run's process logs by file name (see :mod:`runyard.supervisor.ranklogs`): its
        working folder's ``logs/`` while that is on this machine, else the stored artifacts
        (local artifact stores)."""
        from runyard.supervisor.ranklogs import log_source

        live = self.resources.layout.work_dir(run_id) / "logs"
        if live.is_dir():
            return {p.name: p for p in live.iterdir() if log_source(p.name) and p.is_file()}
        found = {}
        for a in self.store.list_artifacts(run_id):
            folder, _, name = a.path.partition("/")
            if folder == "logs" and log_source(name) is not None:
                stored = self.resources.artifacts.open_read(f"{run_id}/{a.path}")
                if stored is not None and stored.is_file():
                    found[name] = stored
        return found

    def logs(
        self, run_id: str, *, follow: bool = False, rank: int | None = None, poll: float = 0.2
    ) -> Iterator[str]:
        """The run's output, line by line; with ``follow``, until the run ends.

        A distributed run's logs are merged, each line prefixed by where it comes from
        (``[rank 1] ...``, ``[node 0] ...``, ``[mpirun] ...``; runyard's own notes bare);
        ``rank`` gives that rank's output alone, unprefixed (rank 0 of a one-process run is
        its whole output). Raises :class:`~runyard.errors.NotFound` for a rank without a log."""
        from runyard.supervisor.ranklogs import LogSource, log_sources, rank_source

        run = self.get_run(run_id)
        readers: dict[str, _LogReader] = {}
        done = not follow
        polls = 0
        while True:
            files = self.log_files(run.id)
            sources = log_sources(files)
            if rank is not None:
                one = rank_source(sources, rank)
                sources = [] if one is None else [LogSource(one.name, None, rank)]
            for source in sources:
                reader = readers.setdefault(source.name, _LogReader(source))
                yield from reader.read(files[source.name])
            if done:
                break
            time.sleep(poll)
            polls += 1
            if polls % 10 == 0:
                self.reap()
            # Read once more after the run ends so the tail is never lost.
            done = self.get_run(run.id).status.is_terminal
        for reader in readers.values():
            yield from reader.rest()
        if rank is not None and not readers:
            have = ", ".join(s.label or s.name for s in log_sources(self.log_files(run.id)))
            raise NotFound(f"run {run.id} has no log for rank {rank} (its logs: {have or 'none'})")


class _LogReader:
    """Reads the new complete lines of one log (whose path may move from the working folder
    to the artifact store), prefixed by its source."""

    def __init__(self, source: LogSource):
        self.source = source
        self.offset = 0
        self.pending = ""

    def read(self, path: Path) -> list[str]:
        with path.open("r", encoding="utf-8", errors="replace") as f:
            f.seek(self.offset)
            chunk = f.read()
            self.offset = f.tell()
        *lines, self.pending = (self.pending + chunk).split("\n")
        return [self.source.prefix(line) for line in lines]

    def rest(self) -> list[str]:
        line, self.pending = self.pending, ""
        return [self.source.prefix(line)] if line else []


def parse_tags(pairs: list[str] | tuple[str, ...], *, what: str = "--tag") -> dict[str, str]:
    """``["k=v", ...]`` → dict, with a clear error for a pair without '='."""
    out = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise UserError(f"{what} {p!r}: expected KEY=VALUE")
        out[key] = value
    return out
