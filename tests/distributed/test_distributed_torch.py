"""PyTorch gangs for real: DDP over gloo on the digits example, as 2 processes on one node,
as 2 simulated nodes, and with the user's own ``torchrun`` once per node."""

from __future__ import annotations

import json

import pytest
from dist_helpers import EXAMPLES, Cli, artifact_text

from runyard.client import Workspace
from runyard.launch import visible_gpus
from runyard.records import Run, RunStatus
from runyard.spec import DistributionSpec, InputSpec, JobSpec, ResourcesSpec
from runyard.spec.load import load_job

pytestmark = [pytest.mark.torch, pytest.mark.slow]

DDP_JOB = EXAMPLES / "digits" / "ddp_job.yaml"


def ddp_spec(epochs: int = 3, **changes: object) -> JobSpec:
    spec = load_job(DDP_JOB)
    return spec.replace(inputs={**spec.inputs, "epochs": InputSpec(value=str(epochs))}, **changes)


def assert_synchronized(ws: Workspace, run: Run, world: int, epochs: int) -> None:
    """Every rank ends with the same weights and logged every epoch under its own rank."""
    assert run.status is RunStatus.COMPLETED, run.error
    sums = {artifact_text(ws, run, f"outputs/weights.rank{r}.sha256").strip() for r in range(world)}
    assert len(sums) == 1, f"ranks ended with different weights: {sums}"
    arts = {a.path for a in ws.list_artifacts(run.id)}
    assert "outputs/model.pt" in arts
    for key in ("train_loss", "val_acc"):
        points = ws.metric_history(run.id, key, rank=None)
        assert sorted({p.rank for p in points}) == list(range(world))
        assert len(points) == world * epochs
    assert run.metrics["val_acc"] > 0.8  # the listing's figure: rank 0's
    assert run.params["world_size"] == str(world)
    if world > 1:  # the all-reduced training loss agrees between ranks; each shard's does not
        shard = {
            r: [p.value for p in ws.metric_history(run.id, "shard_loss", rank=r)] for r in (0, 1)
        }
        assert shard[0] != shard[1]
        train = {
            r: [p.value for p in ws.metric_history(run.id, "train_loss", rank=r)] for r in (0, 1)
        }
        assert train[0] == pytest.approx(train[1])


def test_ddp_two_processes_synchronize_gradients(ws: Workspace) -> None:
    lines: list[str] = []
    run = ws.run(ddp_spec(), echo=lines.append)
    assert_synchronized(ws, run, world=2, epochs=3)
    arts = {a.path for a in ws.list_artifacts(run.id)}
    assert {"logs/std_log_process_0.txt", "logs/std_log_process_1.txt"} <= arts
    assert any(line.startswith("[rank 0] epoch   2") for line in lines)
    assert any(line.startswith("[rank 1] rank 1 of 2: weights sha256") for line in lines)


def test_ddp_on_two_simulated_nodes(ws: Workspace) -> None:
    spec = ddp_spec(
        distribution=DistributionSpec(type="pytorch", process_count_per_instance=1),
        resources=ResourcesSpec(instance_count=2),
    )
    run = ws.run(spec)
    assert_synchronized(ws, run, world=2, epochs=3)
    ranks = json.loads(artifact_text(ws, run, "logs/ranks.json"))
    assert ranks["nnodes"] == 2
    assert [(p["rank"], p["node_rank"], p["local_rank"]) for p in ranks["processes"]] == [
        (0, 0, 0),
        (1, 1, 0),
    ]


def test_a_users_torchrun_command_runs_once_per_node(ws: Workspace) -> None:
    # A bare `torchrun train_ddp.py` finds --nnodes, --node-rank, --nproc-per-node and the
    # master's address in the PET_* variables runyard sets for each node.
    spec = ddp_spec(
        command="torchrun train_ddp.py --epochs 3",
        distribution=DistributionSpec(type="pytorch", process_count_per_instance=1, per_node=True),
        resources=ResourcesSpec(instance_count=2),
    )
    run = ws.run(spec)
    assert_synchronized(ws, run, world=2, epochs=3)
    assert "rank 1 of 2" in artifact_text(ws, run, "logs/std_log_node_1.txt")


def test_run_and_logs_from_the_command_line(cli: Cli) -> None:
    done = cli("run", str(DDP_JOB), "--input", "epochs=2")
    assert done.returncode == 0, done.stderr
    assert "[rank 0] epoch   1" in done.stdout
    assert "[rank 1] rank 1 of 2" in done.stdout
    run_id = json.loads(cli("ls", "--json").stdout)[0]["id"]
    one = cli("logs", run_id, "--rank", "1")
    assert one.returncode == 0, one.stderr
    assert one.stdout.startswith("rank 1 of 2: weights sha256")
    assert "[rank" not in one.stdout


@pytest.mark.skipif(visible_gpus() == 0, reason="no GPU here: the NCCL path needs one")
def test_ddp_over_nccl_one_rank_per_gpu(ws: Workspace) -> None:
    spec = ddp_spec(
        command="python train_ddp.py --backend nccl --epochs 3",
        distribution=DistributionSpec(type="pytorch", process_count_per_instance="auto"),
    )
    run = ws.run(spec)
    assert_synchronized(ws, run, world=visible_gpus(), epochs=3)
