"""The documented digits sweep runs for real: trials train, losers stop early, the best is
recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sweep_helpers import runyard_cli

from runyard.workspace import Resources

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.torch
def test_digits_sweep_example(ws: Resources) -> None:
    done = runyard_cli(ws, "sweep", str(ROOT / "examples/digits/sweep.yaml"), timeout=600)
    assert done.returncode == 0, done.stderr
    (sweep,) = json.loads(runyard_cli(ws, "ls", "--tag", "runyard.type=sweep", "--json").stdout)
    assert sweep["experiment"] == "digits"
    assert sweep["status"] == "Completed"
    assert sweep["metrics"]["trial_count"] == 6
    shown = json.loads(runyard_cli(ws, "sweep", "show", sweep["id"], "--json").stdout)
    assert sorted(t["index"] for t in shown["trials"]) == list(range(6))
    assert set(shown["trials"][0]["params"]) == {"lr", "hidden", "epochs"}
    assert shown["best"]["value"] > 0.9
    assert sweep["tags"]["best_trial"] == shown["best"]["id"]
    stopped = [t for t in shown["trials"] if t["status"] == "Canceled"]
    assert all(t["reason"].startswith("early termination: bandit at step ") for t in stopped)
