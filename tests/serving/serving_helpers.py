"""Helpers shared by the serving tests (imported by name: ``from serving_helpers import ...``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from runyard import Workspace
from runyard.records import ModelVersion
from runyard.serving import Deployment


@dataclass(frozen=True)
class ModelFiles:
    """One file per kind, and the digits rows they were made for."""

    sklearn: Path
    torchscript: Path
    torch_export: Path
    onnx: Path
    rows: np.ndarray  # float32, (n, 64)


Serve = Callable[..., AbstractContextManager[httpx.Client]]


def deployment(ws: Workspace, mv: ModelVersion, **kw: Any) -> Deployment:
    return Deployment(mv.name, mv.version, ws.models.local_dir(mv), mv.framework, **kw)


def v2_input(rows: np.ndarray, name: str = "input", datatype: str = "FP32") -> dict[str, Any]:
    tensor = {"name": name, "shape": list(rows.shape), "datatype": datatype}
    return {"inputs": [{**tensor, "data": rows.ravel().tolist()}]}


def runyard_cli(
    ws: Path, *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runyard", *args],
        env={**os.environ, "RUNYARD_WORKSPACE": str(ws)},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
