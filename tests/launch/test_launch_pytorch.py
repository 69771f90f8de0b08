"""PyTorch plans: every rank's variables, golden; torchrun per node through PET_*."""

from __future__ import annotations

from runyard.launch import Placement, plan_launch, ports_needed
from runyard.spec import DistributionSpec, EnvironmentSpec, JobSpec, ResourcesSpec

ARGV = ("/bin/sh", "-c", "python train.py")


def torch_spec(nodes: int, per_instance: int | str, *, per_node: bool = False) -> JobSpec:
    return JobSpec(
        command="python train.py",
        resources=ResourcesSpec(instance_count=nodes),
        distribution=DistributionSpec(
            type="pytorch", process_count_per_instance=per_instance, per_node=per_node
        ),
    )


def rank_env(
    rank: int, local: int, node: int, *, world: int, per_node: int, nodes: int, omp: bool
) -> dict[str, str]:
    env = {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29500",
        "WORLD_SIZE": str(world),
        "RANK": str(rank),
        "LOCAL_RANK": str(local),
        "LOCAL_WORLD_SIZE": str(per_node),
        "NODE_RANK": str(node),
        "GROUP_RANK": str(node),
        "GROUP_WORLD_SIZE": str(nodes),
        "RUNYARD_RANK": str(rank),
        "RUNYARD_NODE_RANK": str(node),
    }
    if omp:
        env["OMP_NUM_THREADS"] = "1"
    return env


def test_one_node_two_processes() -> None:
    plan = plan_launch(torch_spec(1, 2), Placement.local(1, ports=(29500,)), argv=ARGV)
    assert (plan.kind, plan.world_size, plan.nnodes) == ("pytorch", 2, 1)
    assert [dict(p.env) for p in plan.processes] == [
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": "29500",
            "WORLD_SIZE": "2",
            "RANK": "0",
            "LOCAL_RANK": "0",
            "LOCAL_WORLD_SIZE": "2",
            "NODE_RANK": "0",
            "GROUP_RANK": "0",
            "GROUP_WORLD_SIZE": "1",
            "OMP_NUM_THREADS": "1",
            "RUNYARD_RANK": "0",
            "RUNYARD_NODE_RANK": "0",
        },
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": "29500",
            "WORLD_SIZE": "2",
            "RANK": "1",
            "LOCAL_RANK": "1",
            "LOCAL_WORLD_SIZE": "2",
            "NODE_RANK": "0",
            "GROUP_RANK": "0",
            "GROUP_WORLD_SIZE": "1",
            "OMP_NUM_THREADS": "1",
            "RUNYARD_RANK": "1",
            "RUNYARD_NODE_RANK": "0",
        },
    ]
    assert [p.argv for p in plan.processes] == [ARGV, ARGV]
    assert [p.log_name for p in plan.processes] == [
        "std_log_process_0.txt",
        "std_log_process_1.txt",
    ]
    assert [(p.name, p.role, p.rank, p.node_rank, p.local_rank) for p in plan.processes] == [
        ("rank 0", "worker", 0, 0, 0),
        ("rank 1", "worker", 1, 0, 1),
    ]
    assert plan.files == {}
    assert plan.rank_logs == {}


def test_two_simulated_nodes_one_process_each() -> None:
    plan = plan_launch(torch_spec(2, 1), Placement.local(2, ports=(29500,)), argv=ARGV)
    assert [dict(p.env) for p in plan.processes] == [
        rank_env(0, 0, 0, world=2, per_node=1, nodes=2, omp=False),
        rank_env(1, 0, 1, world=2, per_node=1, nodes=2, omp=False),
    ]
    assert [(p.node_rank, p.host) for p in plan.processes] == [(0, "127.0.0.1"), (1, "127.0.0.1")]


def test_two_nodes_two_processes_on_distinct_hosts() -> None:
    placement = Placement(hosts=("10.0.0.4", "10.0.0.5"), ports=(29500,))
    plan = plan_launch(torch_spec(2, 2), placement, argv=ARGV)
    expected = [
        rank_env(0, 0, 0, world=4, per_node=2, nodes=2, omp=True),
        rank_env(1, 1, 0, world=4, per_node=2, nodes=2, omp=True),
        rank_env(2, 0, 1, world=4, per_node=2, nodes=2, omp=True),
        rank_env(3, 1, 1, world=4, per_node=2, nodes=2, omp=True),
    ]
    for env in expected:
        env["MASTER_ADDR"] = "10.0.0.4"
    assert [dict(p.env) for p in plan.processes] == expected
    assert [p.host for p in plan.processes] == ["10.0.0.4", "10.0.0.4", "10.0.0.5", "10.0.0.5"]


def test_the_spec_keeps_its_own_thread_count() -> None:
    spec = torch_spec(1, 2).replace(environment=EnvironmentSpec(env_vars={"OMP_NUM_THREADS": "4"}))
    plan = plan_launch(spec, Placement.local(1, ports=(29500,)), argv=ARGV)
    assert all("OMP_NUM_THREADS" not in p.env for p in plan.processes)


def test_auto_without_gpus_is_one_process_per_node() -> None:
    plan = plan_launch(torch_spec(1, "auto"), Placement.local(1, ports=(29500,)), argv=ARGV)
    assert [dict(p.env) for p in plan.processes] == [
        rank_env(0, 0, 0, world=1, per_node=1, nodes=1, omp=False)
    ]


def test_auto_with_four_gpus_is_one_process_per_gpu_all_gpus_visible() -> None:
    placement = Placement.local(1, ports=(29500,), gpus_per_node=4)
    plan = plan_launch(torch_spec(1, "auto"), placement, argv=ARGV)
    assert [dict(p.env) for p in plan.processes] == [
        rank_env(r, r, 0, world=4, per_node=4, nodes=1, omp=True) for r in range(4)
    ]
    # Each rank picks its GPU with torch.cuda.set_device(LOCAL_RANK), as under torchrun;
    # hiding the others would make that call fail on every rank but the first.
    assert all("CUDA_VISIBLE_DEVICES" not in p.env for p in plan.processes)


def test_auto_on_two_nodes_with_gpus() -> None:
    placement = Placement.local(2, ports=(29500,), gpus_per_node=2)
    plan = plan_launch(torch_spec(2, "auto"), placement, argv=ARGV)
    assert [(p.rank, p.node_rank, p.local_rank) for p in plan.processes] == [
        (0, 0, 0),
        (1, 0, 1),
        (2, 1, 0),
        (3, 1, 1),
    ]
    assert plan.world_size == 4


def test_per_node_runs_the_command_once_per_node_with_torchrun_variables() -> None:
    spec = torch_spec(2, 2, per_node=True)
    user_argv = ("/bin/sh", "-c", "torchrun train.py")
    plan = plan_launch(spec, Placement.local(2, ports=(29500,)), argv=user_argv)
    assert (plan.kind, plan.world_size, plan.nnodes) == ("pytorch-per-node", 4, 2)
    assert [dict(p.env) for p in plan.processes] == [
        {
            "PET_NNODES": "2",
            "PET_NODE_RANK": "0",
            "PET_NPROC_PER_NODE": "2",
            "PET_MASTER_ADDR": "127.0.0.1",
            "PET_MASTER_PORT": "29500",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": "29500",
            "NODE_RANK": "0",
            "RUNYARD_NODE_RANK": "0",
        },
        {
            "PET_NNODES": "2",
            "PET_NODE_RANK": "1",
            "PET_NPROC_PER_NODE": "2",
            "PET_MASTER_ADDR": "127.0.0.1",
            "PET_MASTER_PORT": "29500",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": "29500",
            "NODE_RANK": "1",
            "RUNYARD_NODE_RANK": "1",
        },
    ]
    assert [(p.name, p.role, p.rank, p.local_rank) for p in plan.processes] == [
        ("node 0", "launcher", None, None),
        ("node 1", "launcher", None, None),
    ]
    assert [p.argv for p in plan.processes] == [user_argv, user_argv]
    assert [p.log_name for p in plan.processes] == ["std_log_node_0.txt", "std_log_node_1.txt"]


def test_per_node_auto_resolves_the_gpu_count() -> None:
    spec = torch_spec(1, "auto", per_node=True)
    plan = plan_launch(spec, Placement.local(1, ports=(29500,), gpus_per_node=8), argv=ARGV)
    assert plan.processes[0].env["PET_NPROC_PER_NODE"] == "8"


def test_pytorch_needs_one_port() -> None:
    assert ports_needed(torch_spec(2, 2)) == 1
    assert ports_needed(torch_spec(2, 2, per_node=True)) == 1
