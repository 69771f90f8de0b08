"""Helpers shared by the distributed tests (imported by name: ``from dist_helpers import``)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from runyard.client import Workspace
from runyard.records import Run

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

Cli = Callable[..., subprocess.CompletedProcess[str]]


def artifact_text(ws: Workspace, run: Run, path: str) -> str:
    stored = ws.resources.artifacts.open_read(f"{run.id}/{path}")
    assert stored is not None, f"run {run.id} has no {path}"
    return stored.read_text()
