"""TensorFlow gangs for real: MultiWorkerMirroredStrategy with 2 CPU workers, each given its
TF_CONFIG by runyard (examples/tensorflow)."""

from __future__ import annotations

import json

import pytest
from dist_helpers import EXAMPLES, artifact_text

from runyard.client import Workspace
from runyard.records import RunStatus
from runyard.spec import InputSpec
from runyard.spec.load import load_job

pytestmark = [pytest.mark.tensorflow, pytest.mark.slow]


def test_multi_worker_mirrored_strategy_with_two_workers(ws: Workspace) -> None:
    spec = load_job(EXAMPLES / "tensorflow" / "job.yaml")
    spec = spec.replace(inputs={"epochs": InputSpec(value="3")})
    lines: list[str] = []
    run = ws.run(spec, echo=lines.append)
    assert run.status is RunStatus.COMPLETED, run.error
    sums = {artifact_text(ws, run, f"outputs/weights.rank{r}.sha256") for r in (0, 1)}
    assert len(sums) == 1, "the workers ended with different weights"
    assert "outputs/model.weights.h5" in {a.path for a in ws.list_artifacts(run.id)}
    points = ws.metric_history(run.id, "train_loss", rank=None)
    assert sorted((p.rank, p.step) for p in points) == [(r, s) for r in (0, 1) for s in range(3)]
    assert run.metrics["val_acc"] > 0.8
    assert any(line.startswith("[rank 1] worker 1 of 2") for line in lines)
    ranks = json.loads(artifact_text(ws, run, "logs/ranks.json"))
    assert [p["name"] for p in ranks["processes"]] == ["worker 0", "worker 1"]
