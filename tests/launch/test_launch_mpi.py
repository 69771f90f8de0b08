"""MPI plans: the mpirun command, its hostfile and exports; the rank wrapper, run for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runyard.launch import Placement, allocate_ports, plan_launch, ports_needed
from runyard.launch.mpi_env import mpi_rank_env
from runyard.spec import DistributionSpec, EnvironmentSpec, JobSpec, ResourcesSpec

ARGV = ("/bin/sh", "-c", "python train.py")
CONTRACT_EXPORTS = (
    "-x AZUREML_RUN_ID -x AZ_BATCHAI_MPI_MASTER_NODE -x AZ_BATCH_MASTER_NODE -x MASTER_ADDR "
    "-x MASTER_PORT -x PATH -x PYTHONUNBUFFERED -x RUNYARD_EVENTS -x RUNYARD_EXPERIMENT "
    "-x RUNYARD_OUTPUTS -x RUNYARD_RUN_ID -x RUNYARD_STOP_FILE"
)
#: Prints the variables a rank sees as one JSON line.
DUMP_ENV = "import json, os; print(json.dumps(dict(os.environ)))"


def mpi_spec(nodes: int, per_node: int, env_vars: dict[str, str] | None = None) -> JobSpec:
    return JobSpec(
        command="python train.py",
        resources=ResourcesSpec(instance_count=nodes),
        distribution=DistributionSpec(type="mpi", process_count_per_instance=per_node),
        environment=EnvironmentSpec(env_vars=env_vars or {}),
    )


def test_one_node_four_processes() -> None:
    plan = plan_launch(mpi_spec(1, 4), Placement.local(1, ports=(6105,)), argv=ARGV)
    assert (plan.kind, plan.world_size, plan.nnodes) == ("mpi", 4, 1)
    (mpirun,) = plan.processes
    assert " ".join(mpirun.argv) == (
        "mpirun -np 4 --hostfile .runyard/hostfile --bind-to none --map-by slot "
        f"{CONTRACT_EXPORTS} python -m runyard.launch.mpi_env --nproc-per-node 4 "
        "--log-dir logs -- /bin/sh -c python train.py"
    )
    assert mpirun.argv[-3:] == ARGV
    assert dict(mpirun.env) == {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "6105",
        "AZ_BATCH_MASTER_NODE": "127.0.0.1:6105",
        "AZ_BATCHAI_MPI_MASTER_NODE": "127.0.0.1",
    }
    assert (mpirun.name, mpirun.role, mpirun.rank, mpirun.node_rank, mpirun.local_rank) == (
        "mpirun",
        "launcher",
        None,
        0,
        None,
    )
    assert mpirun.log_name == "mpi_log.txt"
    assert plan.files == {".runyard/hostfile": "127.0.0.1 slots=4\n"}
    assert plan.rank_logs == {r: f"std_log_process_{r}.txt" for r in range(4)}


def test_simulated_nodes_become_one_host_with_all_the_slots() -> None:
    plan = plan_launch(mpi_spec(2, 2), Placement.local(2, ports=(6105,)), argv=ARGV)
    (mpirun,) = plan.processes
    assert mpirun.argv[:5] == ("mpirun", "-np", "4", "--hostfile", ".runyard/hostfile")
    assert plan.files == {".runyard/hostfile": "127.0.0.1 slots=4\n"}
    # Node ranks are kept apart by the wrapper: 2 ranks per node.
    i = mpirun.argv.index("--nproc-per-node")
    assert mpirun.argv[i + 1] == "2"
    assert (plan.world_size, plan.nnodes) == (4, 2)


def test_distinct_hosts_each_get_their_slots() -> None:
    placement = Placement(hosts=("node-a", "node-b"), ports=(6105,))
    plan = plan_launch(mpi_spec(2, 2), placement, argv=ARGV)
    assert plan.files == {".runyard/hostfile": "node-a slots=2\nnode-b slots=2\n"}
    assert plan.processes[0].host == "node-a"
    assert plan.processes[0].env["AZ_BATCH_MASTER_NODE"] == "node-a:6105"


def test_as_root_adds_allow_run_as_root() -> None:
    plan = plan_launch(mpi_spec(2, 2), Placement.local(2, ports=(6105,)), argv=ARGV, as_root=True)
    assert plan.processes[0].argv[:7] == (
        "mpirun",
        "-np",
        "4",
        "--hostfile",
        ".runyard/hostfile",
        "--allow-run-as-root",
        "--bind-to",
    )


def test_exports_the_specs_variables_and_the_given_ones() -> None:
    spec = mpi_spec(1, 2, env_vars={"NCCL_DEBUG": "INFO"})
    plan = plan_launch(
        spec,
        Placement.local(1, ports=(6105,)),
        argv=ARGV,
        python="/opt/venv/bin/python",
        forward=("PATH", "VIRTUAL_ENV"),
    )
    argv = plan.processes[0].argv
    exported = [argv[i + 1] for i, a in enumerate(argv) if a == "-x"]
    assert exported == [
        "AZ_BATCHAI_MPI_MASTER_NODE",
        "AZ_BATCH_MASTER_NODE",
        "MASTER_ADDR",
        "MASTER_PORT",
        "NCCL_DEBUG",
        "PATH",
        "VIRTUAL_ENV",
    ]
    assert argv[argv.index("-m") - 1] == "/opt/venv/bin/python"


def test_mpi_needs_one_port() -> None:
    assert ports_needed(mpi_spec(2, 2)) == 1


# The rank wrapper, run as mpirun would run it (fake Open MPI variables, no mpirun).


def ompi(rank: int, size: int, local: int, local_size: int) -> dict[str, str]:
    return {
        "OMPI_COMM_WORLD_RANK": str(rank),
        "OMPI_COMM_WORLD_SIZE": str(size),
        "OMPI_COMM_WORLD_LOCAL_RANK": str(local),
        "OMPI_COMM_WORLD_LOCAL_SIZE": str(local_size),
    }


def run_wrapper(
    args: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OMPI_")}
    return subprocess.run(
        [sys.executable, "-m", "runyard.launch.mpi_env", *args],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_wrapper_gives_the_command_torch_variables(tmp_path: Path) -> None:
    # Rank 3 of 2 simulated nodes x 2: one host, so Open MPI says local rank 3 of 4.
    env = {**ompi(3, 4, 3, 4), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "6105"}
    out = run_wrapper(
        ["--nproc-per-node", "2", "--", sys.executable, "-c", DUMP_ENV], env, tmp_path
    )
    assert out.returncode == 0, out.stderr
    child = json.loads(out.stdout)
    assert {k: child[k] for k in TORCH_AND_RUNYARD} == {
        "RANK": "3",
        "WORLD_SIZE": "4",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "2",
        "NODE_RANK": "1",
        "GROUP_RANK": "1",
        "GROUP_WORLD_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "6105",
        "RUNYARD_RANK": "3",
        "RUNYARD_NODE_RANK": "1",
    }
    assert child["OMPI_COMM_WORLD_RANK"] == "3"  # MPI's own variables stay for mpi4py


TORCH_AND_RUNYARD = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "NODE_RANK",
    "GROUP_RANK",
    "GROUP_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "RUNYARD_RANK",
    "RUNYARD_NODE_RANK",
)


def test_wrapper_writes_the_ranks_log_and_keeps_the_exit_status(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-c",
        "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)",
    ]
    out = run_wrapper(
        ["--nproc-per-node", "1", "--log-dir", "logs", "--", *command], ompi(1, 2, 0, 1), tmp_path
    )
    assert out.returncode == 3
    assert (out.stdout, out.stderr) == ("", "")
    assert (tmp_path / "logs" / "std_log_process_1.txt").read_text() == "out\nerr\n"


def test_wrapper_without_nproc_uses_open_mpis_local_rank() -> None:
    assert mpi_rank_env(ompi(5, 8, 1, 4), nproc_per_node=None) == {
        "RANK": "5",
        "WORLD_SIZE": "8",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "4",
        "NODE_RANK": "1",
        "GROUP_RANK": "1",
        "GROUP_WORLD_SIZE": "2",
        "RUNYARD_RANK": "5",
        "RUNYARD_NODE_RANK": "1",
    }


def test_wrapper_outside_mpirun_says_so(tmp_path: Path) -> None:
    out = run_wrapper(["--", sys.executable, "-c", "pass"], {}, tmp_path)
    assert out.returncode == 2
    assert "OMPI_COMM_WORLD_RANK is not set: run this under Open MPI's mpirun" in out.stderr


def test_wrapper_needs_a_command(tmp_path: Path) -> None:
    out = run_wrapper(["--nproc-per-node", "2"], ompi(0, 2, 0, 2), tmp_path)
    assert out.returncode == 2
    assert "usage:" in out.stderr


def test_wrapper_reports_a_missing_program(tmp_path: Path) -> None:
    out = run_wrapper(["--", "no-such-program-xyz"], ompi(0, 1, 0, 1), tmp_path)
    assert out.returncode == 127
    assert "cannot run no-such-program-xyz" in out.stderr


# The whole plan under a real Open MPI.


@pytest.mark.slow
@pytest.mark.mpi
def test_plan_runs_under_open_mpi(tmp_path: Path) -> None:
    spec = mpi_spec(2, 2)
    placement = Placement.local(2, ports=allocate_ports(ports_needed(spec)))
    plan = plan_launch(
        spec,
        placement,
        argv=(sys.executable, "-c", DUMP_ENV),
        as_root=os.geteuid() == 0,
        python=sys.executable,
        forward=("PATH",),
    )
    for path, text in plan.files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    (mpirun,) = plan.processes
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_"))}
    out = subprocess.run(
        mpirun.argv,
        env={**base, **mpirun.env},
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    seen = []
    for rank, name in plan.rank_logs.items():
        child = json.loads((tmp_path / "logs" / name).read_text())
        seen.append((rank, child["RANK"], child["LOCAL_RANK"], child["NODE_RANK"]))
        assert child["OMPI_COMM_WORLD_RANK"] == str(rank)
        assert child["MASTER_PORT"] == str(placement.ports[0])
        assert child["AZ_BATCH_MASTER_NODE"] == f"127.0.0.1:{placement.ports[0]}"
    assert seen == [(0, "0", "0", "0"), (1, "1", "1", "0"), (2, "2", "0", "1"), (3, "3", "1", "1")]
