"""The Preparing step's environment, where no build is needed: images (refused without a
container engine; the wrapped command), and what the run records. Built environments are
tested end to end in tests/envs/test_envs_runs.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sv_helpers import RunMaker

from runyard.envs import Environment
from runyard.records import RunStatus
from runyard.supervisor import Supervisor
from runyard.supervisor.environment import in_image
from runyard.supervisor.workdir import WorkDir
from runyard.workspace import Resources


def test_an_image_without_a_container_engine_fails_the_run_saying_why(
    ws: Resources, new_run: RunMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # neither docker nor podman
    run = new_run(ws, "print('never')\n", environment={"image": "python:3.11-slim"})
    lines: list[str] = []
    final = Supervisor(ws, run.id, echo=lines.append).execute()
    assert final.status is RunStatus.FAILED
    assert final.reason == (
        "environment.image: running in a container image needs docker or podman, "
        "and neither is installed"
    )
    assert lines == [f"[runyard] {final.reason}"]
    assert [c.status for c in ws.store.status_history(run.id)] == [
        RunStatus.QUEUED, RunStatus.PREPARING, RunStatus.FAILED
    ]  # fmt: skip
    stored = {a.path for a in ws.store.list_artifacts(run.id)}
    assert {"logs/environment.txt", "logs/std_log.txt"} <= stored


def test_a_command_in_an_image_gets_the_runs_folder_and_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", "/home/me")
    run_dir = tmp_path / "runs" / "r1"
    wd = WorkDir(
        root=run_dir / "work",
        outputs=run_dir / "work/outputs",
        logs=run_dir / "work/logs",
        events=run_dir / "events.log",
        stop_file=run_dir / "stop",
    )
    env = Environment(
        hash=None,
        path=Path("/"),
        python=Path("python"),
        cached=True,
        image="python:3.11-slim",
        container_runtime=Path("/usr/bin/podman"),
    )
    variables = {**os.environ, "RUNYARD_RUN_ID": "r1", "OMP_NUM_THREADS": "1"}
    argv = in_image(env, ["python", "train.py"], wd, variables)
    assert argv[:5] == ["/usr/bin/podman", "run", "--rm", "--init", "--network"]
    assert argv[-3:] == ["python:3.11-slim", "python", "train.py"]
    assert f"{wd.root}:{wd.root}" in argv and f"{run_dir}:{run_dir}" in argv
    passed = {argv[i + 1] for i, a in enumerate(argv) if a == "--env"}
    assert passed == {"RUNYARD_RUN_ID", "OMP_NUM_THREADS", "PYTHONUNBUFFERED"}  # not HOME, PATH
