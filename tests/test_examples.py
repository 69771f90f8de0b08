"""The README's first command: the digits example trains for real as a tracked run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, ws: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runyard", *args],
        env={**os.environ, "RUNYARD_WORKSPACE": str(ws)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.torch
def test_digits_example_trains_and_is_tracked(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    res = cli("run", "examples/digits/job.yaml", "--input", "epochs=8", ws=ws)
    assert res.returncode == 0, res.stderr
    assert "val_acc" in res.stdout
    run = json.loads(cli("ls", "--json", ws=ws).stdout)[0]
    assert run["experiment"] == "digits"
    assert run["status"] == "Completed"
    assert run["params"]["epochs"] == "8"
    assert run["metrics"]["val_acc"] > 0.9
    history = json.loads(cli("metrics", run["id"], "val_loss", "--json", ws=ws).stdout)
    assert [p["step"] for p in history["points"]] == list(range(8))
    arts = {a["path"] for a in json.loads(cli("artifacts", run["id"], "--json", ws=ws).stdout)}
    assert "outputs/model.pt" in arts
