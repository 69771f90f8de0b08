"""Laying out a run's working folder and the environment its processes start with."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runyard.records import Run
from runyard.spec import JobSpec
from runyard.workspace import Layout

if TYPE_CHECKING:
    from runyard.envs import Environment

#: The in-job log every process of the run writes its stdout and stderr to.
STD_LOG = "std_log.txt"


@dataclass(frozen=True)
class WorkDir:
    root: Path
    outputs: Path
    logs: Path
    events: Path
    #: Created to ask the run to stop early (``runyard.should_stop()`` looks for it).
    stop_file: Path

    @property
    def std_log(self) -> Path:
        return self.logs / STD_LOG


def prepare_workdir(layout: Layout, run: Run, spec: JobSpec) -> WorkDir:
    """Lay out ``runs/<id>/work`` from the run's snapshot (empty without one) with its
    ``outputs/`` (and one folder per declared output) and ``logs/``."""
    root = layout.work_dir(run.id)
    if run.snapshot_id is not None:
        from runyard.snapshot import materialize

        materialize(layout.snapshots, run.snapshot_id, root)
    root.mkdir(parents=True, exist_ok=True)
    wd = WorkDir(
        root=root,
        outputs=root / "outputs",
        logs=root / "logs",
        events=layout.events_path(run.id),
        stop_file=layout.run_dir(run.id) / "stop",
    )
    wd.outputs.mkdir(exist_ok=True)
    wd.logs.mkdir(exist_ok=True)
    for name, out in spec.outputs.items():
        if out.path is None:
            (wd.outputs / name).mkdir(parents=True, exist_ok=True)
    return wd


def child_env(
    run: Run, spec: JobSpec, wd: WorkDir, environment: Environment | None = None
) -> dict[str, str]:
    """The environment of the run's processes: this process's own, with the interpreter's
    folder first on ``PATH`` (so ``python`` is the run's interpreter, as in an activated
    virtual environment), the spec's variables, then runyard's contract variables (which the
    spec cannot override).

    The interpreter is ``environment``'s (a materialized one:
    :func:`runyard.envs.env_vars_for`, its variables included), else the one runyard runs in.
    In a built environment that does not install runyard, ``PYTHONPATH`` also gets a folder
    holding only runyard's package, so the script's ``import runyard`` (the in-job API, which
    needs nothing but the standard library) works there."""
    if environment is None:
        env = dict(os.environ)
        bindir = str(Path(sys.executable).parent)
        path = env.get("PATH", "")
        if path.split(os.pathsep, 1)[0] != bindir:
            env["PATH"] = bindir + (os.pathsep + path if path else "")
    else:
        from runyard.envs import env_vars_for, tracking_path

        env = env_vars_for(environment)
        if environment.hash is not None and not _installs_runyard(environment.lock):
            api = str(tracking_path(environment.path.parent))
            env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), api) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in spec.environment.env_vars.items()})
    env.update(
        {
            "RUNYARD_RUN_ID": run.id,
            "RUNYARD_EXPERIMENT": run.experiment,
            "RUNYARD_EVENTS": str(wd.events),
            "RUNYARD_OUTPUTS": str(wd.outputs),
            "RUNYARD_STOP_FILE": str(wd.stop_file),
            # Scripts written for Azure ML read their run id from here.
            "AZUREML_RUN_ID": run.id,
        }
    )
    return env


def _installs_runyard(lock: tuple[str, ...]) -> bool:
    return any(line.lower().startswith(("runyard==", "runyard @")) for line in lock)
