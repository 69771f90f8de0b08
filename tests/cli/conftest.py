from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "config.yaml").write_text(
        "heartbeat_interval: 0.2\nheartbeat_timeout: 3\nkill_grace: 1\nsystem_metrics_interval: 0\n"
    )
    return ws


@pytest.fixture
def runyard(workspace: Path, tmp_path: Path) -> Runner:
    """Run the real ``runyard`` command line in a subprocess against a fresh workspace."""

    def run(
        *args: str, cwd: Path | None = None, timeout: float = 120, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "RUNYARD_WORKSPACE": str(workspace), **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "runyard", *args],
            cwd=cwd or tmp_path,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
