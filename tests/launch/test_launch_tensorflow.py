"""TensorFlow plans: TF_CONFIG per task, exactly; one port per task, never shared."""

from __future__ import annotations

import json

import pytest

from runyard.launch import Placement, plan_launch, ports_needed
from runyard.spec import DistributionSpec, JobSpec, ResourcesSpec

ARGV = ("python", "train.py")


def tf_spec(
    nodes: int, workers: int | None = None, ps: int = 0, per_instance: int | str = 1
) -> JobSpec:
    return JobSpec(
        command="python train.py",
        resources=ResourcesSpec(instance_count=nodes),
        distribution=DistributionSpec(
            type="tensorflow",
            worker_count=workers,
            parameter_server_count=ps,
            process_count_per_instance=per_instance,
        ),
    )


def test_two_workers_and_a_parameter_server_on_two_nodes() -> None:
    spec = tf_spec(2, workers=2, ps=1)
    assert ports_needed(spec) == 3
    plan = plan_launch(spec, Placement.local(2, ports=(2222, 2223, 2224)), argv=ARGV)
    assert (plan.kind, plan.world_size, plan.nnodes) == ("tensorflow", 3, 2)
    cluster = '{"cluster":{"worker":["127.0.0.1:2222","127.0.0.1:2223"],"ps":["127.0.0.1:2224"]},'
    assert [dict(p.env) for p in plan.processes] == [
        {
            "TF_CONFIG": cluster + '"task":{"type":"worker","index":0}}',
            "RUNYARD_RANK": "0",
            "RUNYARD_NODE_RANK": "0",
        },
        {
            "TF_CONFIG": cluster + '"task":{"type":"worker","index":1}}',
            "RUNYARD_RANK": "1",
            "RUNYARD_NODE_RANK": "1",
        },
        {
            "TF_CONFIG": cluster + '"task":{"type":"ps","index":0}}',
            "RUNYARD_RANK": "2",
            "RUNYARD_NODE_RANK": "0",
        },
    ]
    assert [
        (p.name, p.role, p.rank, p.node_rank, p.local_rank, p.log_name) for p in plan.processes
    ] == [
        ("worker 0", "worker", 0, 0, 0, "std_log_process_0.txt"),
        ("worker 1", "worker", 1, 1, 0, "std_log_process_1.txt"),
        ("ps 0", "ps", 2, 0, 1, "std_log_process_2.txt"),
    ]
    assert [p.argv for p in plan.processes] == [ARGV] * 3
    # No chief key: worker 0 acts as chief, as under Azure ML.
    assert "chief" not in json.loads(plan.processes[0].env["TF_CONFIG"])["cluster"]


def test_every_task_listens_on_its_own_address() -> None:
    plan = plan_launch(
        tf_spec(1, workers=3, ps=2),
        Placement.local(1, ports=(5001, 5002, 5003, 5004, 5005)),
        argv=ARGV,
    )
    config = json.loads(plan.processes[0].env["TF_CONFIG"])
    addresses = config["cluster"]["worker"] + config["cluster"]["ps"]
    assert len(set(addresses)) == 5
    assert [json.loads(p.env["TF_CONFIG"])["cluster"] for p in plan.processes] == [
        config["cluster"]
    ] * 5


def test_workers_default_to_instances_times_processes_and_no_ps_key() -> None:
    spec = tf_spec(2, per_instance=2)
    assert ports_needed(spec) == 4
    plan = plan_launch(spec, Placement.local(2, ports=(1, 2, 3, 4)), argv=ARGV)
    config = json.loads(plan.processes[3].env["TF_CONFIG"])
    assert config == {
        "cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"]},
        "task": {"type": "worker", "index": 3},
    }
    assert [p.node_rank for p in plan.processes] == [0, 1, 0, 1]


def test_gpus_are_shared_out_between_workers_of_a_node_and_hidden_from_ps() -> None:
    spec = tf_spec(1, workers=2, ps=1)
    placement = Placement.local(1, ports=(1, 2, 3), gpus_per_node=2)
    plan = plan_launch(spec, placement, argv=ARGV)
    assert [p.env.get("CUDA_VISIBLE_DEVICES") for p in plan.processes] == ["0", "1", ""]


def test_a_lone_worker_keeps_every_gpu() -> None:
    spec = tf_spec(2, workers=2)
    plan = plan_launch(spec, Placement.local(2, ports=(1, 2), gpus_per_node=4), argv=ARGV)
    assert all("CUDA_VISIBLE_DEVICES" not in p.env for p in plan.processes)


def test_too_few_ports_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"has 2 ports, this launch needs 3 \(ports_needed"):
        plan_launch(tf_spec(2, workers=2, ps=1), Placement.local(2, ports=(1, 2)), argv=ARGV)


def test_two_tasks_on_one_address_is_refused() -> None:
    with pytest.raises(ValueError, match=r"same address: \['127.0.0.1:7000'\]"):
        plan_launch(tf_spec(2, workers=2), Placement.local(2, ports=(7000, 7000)), argv=ARGV)


def test_the_same_port_on_different_hosts_is_fine() -> None:
    placement = Placement(hosts=("a", "b"), ports=(2222, 2222))
    plan = plan_launch(tf_spec(2, workers=2), placement, argv=ARGV)
    config = json.loads(plan.processes[0].env["TF_CONFIG"])
    assert config["cluster"]["worker"] == ["a:2222", "b:2222"]
