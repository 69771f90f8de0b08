"""Launch planning in general: one process without a distribution, the dry-run text, the
errors, port allocation and log names."""

from __future__ import annotations

import socket

import pytest

from runyard.errors import SpecError
from runyard.launch import (
    Placement,
    allocate_ports,
    node_log_name,
    plan_launch,
    ports_needed,
    rank_log_name,
)
from runyard.spec import DistributionSpec, JobSpec, ResourcesSpec

ARGV = ("python", "train.py")


def spec_with(nodes: int = 1, **dist: object) -> JobSpec:
    distribution = DistributionSpec(**dist) if dist else None  # type: ignore[arg-type]
    return JobSpec(
        command="python train.py",
        source="job.yaml",
        resources=ResourcesSpec(instance_count=nodes),
        distribution=distribution,
    )


def test_no_distribution_is_one_process_rank_zero() -> None:
    spec = spec_with()
    assert ports_needed(spec) == 0
    plan = plan_launch(spec, Placement.local(), argv=ARGV)
    assert (plan.kind, plan.world_size, plan.nnodes) == ("single", 1, 1)
    (p,) = plan.processes
    assert (p.name, p.role, p.rank, p.node_rank, p.local_rank, p.host) == (
        "rank 0",
        "worker",
        0,
        0,
        0,
        "127.0.0.1",
    )
    assert p.argv == ARGV
    assert dict(p.env) == {"RUNYARD_RANK": "0", "RUNYARD_NODE_RANK": "0"}
    assert p.log_name == "std_log.txt"


def test_plans_are_pure_and_comparable() -> None:
    spec = spec_with(2, type="pytorch", process_count_per_instance=2)
    placement = Placement.local(2, ports=(29500,))
    assert plan_launch(spec, placement, argv=ARGV) == plan_launch(spec, placement, argv=ARGV)


def test_describe_pytorch() -> None:
    spec = spec_with(type="pytorch", process_count_per_instance=2)
    plan = plan_launch(
        spec, Placement.local(1, ports=(29500,)), argv=("/bin/sh", "-c", "python train.py --lr 0.1")
    )
    assert plan.describe() == (
        """\
pytorch: world size 2, 1 node, 2 processes
working folder: <workdir>

[rank 0] node 0 (127.0.0.1), local rank 0
  command: /bin/sh -c 'python train.py --lr 0.1'
  log: logs/std_log_process_0.txt
  GROUP_RANK=0
  GROUP_WORLD_SIZE=1
  LOCAL_RANK=0
  LOCAL_WORLD_SIZE=2
  MASTER_ADDR=127.0.0.1
  MASTER_PORT=29500
  NODE_RANK=0
  OMP_NUM_THREADS=1
  RANK=0
  RUNYARD_NODE_RANK=0
  RUNYARD_RANK=0
  WORLD_SIZE=2

[rank 1] node 0 (127.0.0.1), local rank 1
  command: /bin/sh -c 'python train.py --lr 0.1'
  log: logs/std_log_process_1.txt
  GROUP_RANK=0
  GROUP_WORLD_SIZE=1
  LOCAL_RANK=1
  LOCAL_WORLD_SIZE=2
  MASTER_ADDR=127.0.0.1
  MASTER_PORT=29500
  NODE_RANK=0
  OMP_NUM_THREADS=1
  RANK=1
  RUNYARD_NODE_RANK=0
  RUNYARD_RANK=1
  WORLD_SIZE=2
"""
    )


def test_describe_mpi_with_its_files_and_rank_logs() -> None:
    spec = spec_with(2, type="mpi")
    plan = plan_launch(
        spec, Placement.local(2, ports=(6105,)), argv=ARGV, as_root=True, forward=("PATH",)
    )
    assert plan.describe(workdir="/ws/runs/abc/work") == (
        """\
mpi: world size 2, 2 nodes, 1 process
working folder: /ws/runs/abc/work

[mpirun] launcher, node 0 (127.0.0.1)
  command: mpirun -np 2 --hostfile .runyard/hostfile --allow-run-as-root --bind-to none \
--map-by slot -x AZ_BATCHAI_MPI_MASTER_NODE -x AZ_BATCH_MASTER_NODE -x MASTER_ADDR \
-x MASTER_PORT -x PATH python -m runyard.launch.mpi_env --nproc-per-node 1 --log-dir logs \
-- python train.py
  log: logs/mpi_log.txt
  AZ_BATCHAI_MPI_MASTER_NODE=127.0.0.1
  AZ_BATCH_MASTER_NODE=127.0.0.1:6105
  MASTER_ADDR=127.0.0.1
  MASTER_PORT=6105

logs written by the ranks:
  rank 0: logs/std_log_process_0.txt
  rank 1: logs/std_log_process_1.txt

file .runyard/hostfile:
  127.0.0.1 slots=2
"""
    )


def test_describe_quotes_values_for_the_shell() -> None:
    spec = spec_with(type="tensorflow", worker_count=1, parameter_server_count=1)
    placement = Placement.local(1, ports=(2222, 2223), gpus_per_node=1)
    plan = plan_launch(spec, placement, argv=ARGV)
    assert plan.describe() == (
        """\
tensorflow: world size 2, 1 node, 2 processes
working folder: <workdir>

[worker 0] node 0 (127.0.0.1), rank 0, local rank 0
  command: python train.py
  log: logs/std_log_process_0.txt
  RUNYARD_NODE_RANK=0
  RUNYARD_RANK=0
  TF_CONFIG='{"cluster":{"worker":["127.0.0.1:2222"],"ps":["127.0.0.1:2223"]},\
"task":{"type":"worker","index":0}}'

[ps 0] parameter server, node 0 (127.0.0.1), rank 1, local rank 1
  command: python train.py
  log: logs/std_log_process_1.txt
  CUDA_VISIBLE_DEVICES=''
  RUNYARD_NODE_RANK=0
  RUNYARD_RANK=1
  TF_CONFIG='{"cluster":{"worker":["127.0.0.1:2222"],"ps":["127.0.0.1:2223"]},\
"task":{"type":"ps","index":0}}'
"""
    )


# Errors: the person's spec is a SpecError naming the field; a placement that does not fit
# the spec is the caller's bug, a ValueError.


@pytest.mark.parametrize(
    ("dist", "field", "problem"),
    [
        ({"type": "horovod"}, "distribution.type", "unknown type 'horovod'"),
        (
            {"type": "mpi", "per_node": True},
            "distribution.per_node",
            "only applies to type pytorch",
        ),
        (
            {"type": "pytorch", "worker_count": 2},
            "distribution.worker_count",
            "only applies to type tensorflow",
        ),
        (
            {"type": "mpi", "parameter_server_count": 1},
            "distribution.parameter_server_count",
            "only applies to type tensorflow",
        ),
        (
            {"type": "pytorch", "process_count_per_instance": "many"},
            "distribution.process_count_per_instance",
            "must be at least 1 or 'auto', not 'many'",
        ),
        (
            {"type": "pytorch", "process_count_per_instance": 0},
            "distribution.process_count_per_instance",
            "must be at least 1 or 'auto', not 0",
        ),
        (
            {"type": "tensorflow", "worker_count": 0},
            "distribution.worker_count",
            "must be at least 1, not 0",
        ),
    ],
)
def test_a_spec_that_cannot_be_planned_names_the_field(
    dist: dict[str, object], field: str, problem: str
) -> None:
    spec = spec_with(**dist)
    with pytest.raises(SpecError) as info:
        plan_launch(spec, Placement.local(1, ports=(1, 2, 3)), argv=ARGV)
    assert info.value.field == field
    assert info.value.source == "job.yaml"
    assert problem in str(info.value)
    with pytest.raises(SpecError):
        ports_needed(spec)


def test_several_instances_need_a_distribution() -> None:
    with pytest.raises(SpecError, match=r"resources\.instance_count: instance_count is 2 but"):
        plan_launch(spec_with(2), Placement.local(2), argv=ARGV)


def test_too_few_ports() -> None:
    spec = spec_with(type="pytorch")
    with pytest.raises(ValueError, match=r"has 0 ports, this launch needs 1"):
        plan_launch(spec, Placement.local(1), argv=ARGV)


def test_ports_must_be_tcp_ports() -> None:
    spec = spec_with(type="pytorch")
    with pytest.raises(ValueError, match=r"not TCP ports: \[70000\]"):
        plan_launch(spec, Placement.local(1, ports=(70000,)), argv=ARGV)


def test_one_host_per_instance() -> None:
    spec = spec_with(2, type="pytorch")
    with pytest.raises(ValueError, match="has 1 hosts for 2 instances"):
        plan_launch(spec, Placement.local(1, ports=(1,)), argv=ARGV)


def test_an_empty_command_is_refused() -> None:
    with pytest.raises(ValueError, match="argv is empty"):
        plan_launch(spec_with(), Placement.local(), argv=())


# Ports and log names.


def test_allocate_ports_returns_distinct_free_ports() -> None:
    ports = allocate_ports(8)
    assert len(ports) == 8
    assert len(set(ports)) == 8
    assert all(1024 <= p < 65536 for p in ports)
    # None is held: each can be bound (and listened on) again right away.
    for port in ports:
        with socket.socket() as s:
            s.bind(("", port))
            s.listen()


def test_allocate_ports_on_one_address() -> None:
    (port,) = allocate_ports(1, "127.0.0.1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
    assert allocate_ports(0) == ()


def test_log_names_sort_by_rank() -> None:
    assert rank_log_name(0, 1) == "std_log_process_0.txt"
    assert rank_log_name(3, 10) == "std_log_process_3.txt"
    assert rank_log_name(3, 11) == "std_log_process_03.txt"
    assert rank_log_name(10, 11) == "std_log_process_10.txt"
    assert node_log_name(1, 2) == "std_log_node_1.txt"
