"""Distributed runs with the real frameworks, through the SDK and the command line, against
a fresh workspace. The examples under examples/ are the jobs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from dist_helpers import ROOT, Cli

from runyard.client import Workspace

SETTINGS = "heartbeat_interval: 0.5\nkill_grace: 2\nsystem_metrics_interval: 0\n"


@pytest.fixture
def ws_root(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "config.yaml").write_text(SETTINGS)
    return root


@pytest.fixture
def ws(ws_root: Path) -> Iterator[Workspace]:
    with Workspace.open(ws_root) as workspace:
        yield workspace


@pytest.fixture
def cli(ws_root: Path) -> Cli:
    """Run the real ``runyard`` command line against the test's workspace."""

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "runyard", *args],
            cwd=ROOT,
            env={**os.environ, "RUNYARD_WORKSPACE": str(ws_root)},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
