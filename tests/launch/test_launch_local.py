"""Planning on this machine: the GPUs it shows (``auto``), fresh ports, and the check a spec
gets when a run is created."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from runyard.errors import SpecError
from runyard.launch import check_launch, plan_local, visible_gpus
from runyard.spec import DistributionSpec, JobSpec, ResourcesSpec

SMI = """#!/bin/sh
[ "$1" = "-L" ] || exit 2
i=0
while [ $i -lt {count} ]; do
  echo "GPU $i: NVIDIA H100 80GB HBM3 (UUID: GPU-0000000$i-aaaa-bbbb-cccc-dddddddddddd)"
  i=$((i + 1))
done
"""


@pytest.fixture
def fake_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """``fake_gpus(n)``: an ``nvidia-smi`` on PATH that lists n GPUs (and nothing else)."""

    def install(count: int) -> None:
        folder = tmp_path / f"bin{count}"
        folder.mkdir()
        smi = folder / "nvidia-smi"
        smi.write_text(SMI.replace("{count}", str(count)))
        smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")

    return install


def spec(nodes: int = 1, **dist: object) -> JobSpec:
    return JobSpec(
        command="python train.py",
        source="job.yaml",
        resources=ResourcesSpec(instance_count=nodes),
        distribution=DistributionSpec(**dist) if dist else None,
    )


def test_no_nvidia_smi_is_no_gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert visible_gpus({}) == 0
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "0,1"}) == 0


def test_gpus_listed_by_nvidia_smi(fake_gpus: Callable[[int], None]) -> None:
    fake_gpus(4)
    assert visible_gpus({}) == 4


@pytest.mark.parametrize(
    ("mask", "seen"),
    [
        ("0,1", 2),
        ("3", 1),
        ("", 0),
        ("-1", 0),
        ("0,-1,1", 1),
        ("GPU-00000001-aaaa", 1),
        ("0,1,2,3,4,5", 4),
    ],
)
def test_cuda_visible_devices_narrows_them(
    fake_gpus: Callable[[int], None], mask: str, seen: int
) -> None:
    fake_gpus(4)
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": mask}) == seen


def test_auto_is_one_process_per_gpu(fake_gpus: Callable[[int], None]) -> None:
    fake_gpus(2)
    plan = plan_local(spec(2, type="pytorch", process_count_per_instance="auto"), ["python"])
    assert (plan.world_size, plan.nnodes) == (4, 2)
    assert [p.local_rank for p in plan.processes] == [0, 1, 0, 1]


def test_auto_without_gpus_is_one_process_per_node(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    plan = plan_local(spec(2, type="pytorch", process_count_per_instance="auto"), ["python"])
    assert plan.world_size == 2
    (port,) = {p.env["MASTER_PORT"] for p in plan.processes}
    assert 0 < int(port) < 65536


def test_a_one_process_spec_is_the_command_alone() -> None:
    plan = plan_local(spec(), ["python", "train.py"])
    assert plan.kind == "single"
    assert [p.argv for p in plan.processes] == [("python", "train.py")]


def test_tensorflow_tasks_get_distinct_free_ports() -> None:
    plan = plan_local(spec(type="tensorflow", worker_count=3, parameter_server_count=1), ["x"])
    cluster = json.loads(plan.processes[0].env["TF_CONFIG"])["cluster"]
    addresses = cluster["worker"] + cluster["ps"]
    assert len(set(addresses)) == 4


@pytest.mark.parametrize(
    ("job", "field"),
    [
        (spec(2), "resources.instance_count"),
        (spec(type="mpi", per_node=True), "distribution.per_node"),
        (spec(type="pytorch", worker_count=2), "distribution.worker_count"),
        (
            spec(type="pytorch", process_count_per_instance=0),
            "distribution.process_count_per_instance",
        ),
        (spec(type="horovod"), "distribution.type"),
    ],
)
def test_check_launch_names_the_field(job: JobSpec, field: str) -> None:
    with pytest.raises(SpecError) as err:
        check_launch(job)
    assert err.value.field == field
    assert str(err.value).startswith(f"job.yaml: {field}: ")


def test_check_launch_accepts_what_can_run() -> None:
    check_launch(spec())
    check_launch(spec(2, type="pytorch", process_count_per_instance="auto"))
    check_launch(spec(2, type="tensorflow", worker_count=3, parameter_server_count=2))
