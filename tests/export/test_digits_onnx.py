"""The digits example exports its model to ONNX, registers it from the run, and the
registered model serves predictions as good as the run's own validation accuracy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from runyard import Workspace
from runyard.serving import Deployment, serve_in_thread

pytestmark = [pytest.mark.serve, pytest.mark.torch, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent.parent


def cli(*args: str, ws: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runyard", *args],
        env={**os.environ, "RUNYARD_WORKSPACE": str(ws)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_digits_trains_exports_registers_and_serves(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    ws_root = tmp_path / "ws"
    done = cli(
        "run", "examples/digits/job.yaml",
        "python", "train.py", "--epochs", "5", "--register", "digits",
        ws=ws_root,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    assert "onnxruntime max abs diff" in done.stdout
    assert "[runyard] registered model digits@1 from outputs/model.onnx" in done.stdout
    run = json.loads(cli("ls", "--json", ws=ws_root).stdout)[0]
    arts = {a["path"] for a in json.loads(cli("artifacts", run["id"], "--json", ws=ws_root).stdout)}
    assert {"outputs/model.pt", "outputs/model.onnx"} <= arts
    with Workspace.open(ws_root) as ws:
        mv = ws.models.get("digits")
        assert mv.framework == "onnx" and mv.run_id == run["id"]
        assert mv.run_metrics["val_acc"] == run["metrics"]["val_acc"]
        digits = load_digits()
        x = (digits.data / 16.0).astype(np.float32)
        _, x_val, _, y_val = train_test_split(
            x, digits.target, test_size=0.2, random_state=0, stratify=digits.target
        )
        d = Deployment(mv.name, mv.version, ws.models.local_dir(mv), mv.framework)
        with serve_in_thread([d]) as server:
            r = httpx.post(f"{server.url}/score", json={"data": x_val.tolist()}, timeout=30)
        logits = np.array(r.json()["predictions"])
        accuracy = float((logits.argmax(1) == y_val).mean())
        assert abs(accuracy - mv.run_metrics["val_acc"]) < 1e-6
