from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

PythonRunner = Callable[..., subprocess.CompletedProcess[str]]

#: Variables that would make a child process think it is inside a run, or give it a rank.
RUN_VARIABLES = (
    "RUNYARD_RUN_ID",
    "RUNYARD_EXPERIMENT",
    "RUNYARD_EVENTS",
    "RUNYARD_OUTPUTS",
    "RUNYARD_OFFLINE_DIR",
    "RUNYARD_STOP_FILE",
    "RANK",
    "OMPI_COMM_WORLD_RANK",
    "PMI_RANK",
)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in RUN_VARIABLES}
    env["MPLBACKEND"] = "Agg"
    env.update(extra)
    return env


@pytest.fixture
def clean_env() -> Callable[..., dict[str, str]]:
    """This process's environment without runyard's run variables, plus those given."""
    return _clean_env


@pytest.fixture
def run_python(tmp_path: Path) -> PythonRunner:
    """Run ``code`` in a fresh Python process (cwd ``tmp_path`` by default) with no runyard
    run variables unless given; fails the test if it exits non-zero."""

    def run(code: str, *, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=cwd or tmp_path,
            env=_clean_env(**env),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result

    return run


@pytest.fixture
def run_env(tmp_path: Path) -> dict[str, str]:
    """The variables a supervisor gives a training process, pointing into ``tmp_path``."""
    return {
        "RUNYARD_RUN_ID": "run-1",
        "RUNYARD_EXPERIMENT": "exp",
        "RUNYARD_EVENTS": str(tmp_path / "run" / "events.log"),
        "RUNYARD_OUTPUTS": str(tmp_path / "work" / "outputs"),
    }
