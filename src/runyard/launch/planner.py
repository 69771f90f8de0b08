"""From a job spec and a placement, the launch plan: which processes, where, with what.

Pure: no clock, no randomness, no look at this machine. Ports and the GPU count come in
through the :class:`~runyard.launch.plan.Placement`, whether to add ``--allow-run-as-root``
through ``as_root``. Each distribution type has one planner, looked up by name in
:data:`FRAMEWORKS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from runyard.errors import SpecError
from runyard.launch.mpi import FORWARDED_VARIABLES, plan_mpi
from runyard.launch.plan import SINGLE_LOG, LaunchPlan, LaunchRequest, Placement, ProcessPlan
from runyard.launch.pytorch import plan_pytorch
from runyard.launch.tensorflow import plan_tensorflow, task_count
from runyard.spec import DistributionSpec, JobSpec


@dataclass(frozen=True)
class Framework:
    """How one distribution type is planned, and how many ports its plan uses."""

    plan: Callable[[LaunchRequest], LaunchPlan]
    ports: Callable[[LaunchRequest], int]


def _one_port(_req: LaunchRequest) -> int:
    return 1


#: Planners by ``distribution.type``.
FRAMEWORKS: Mapping[str, Framework] = {
    "pytorch": Framework(plan=plan_pytorch, ports=_one_port),
    "mpi": Framework(plan=plan_mpi, ports=_one_port),
    "tensorflow": Framework(plan=plan_tensorflow, ports=task_count),
}


def processes_per_node(dist: DistributionSpec, gpus_per_node: int = 0) -> int:
    """``process_count_per_instance`` resolved: ``auto`` is one process per visible GPU, or
    one without GPUs."""
    count = dist.process_count_per_instance
    if count == "auto":
        return gpus_per_node if gpus_per_node > 0 else 1
    return int(count)


def ports_needed(spec: JobSpec, *, gpus_per_node: int = 0) -> int:
    """How many free ports :func:`plan_launch` needs in ``Placement.ports`` for ``spec``: 0
    for one process, 1 for PyTorch and MPI, one per task for TensorFlow."""
    dist = spec.distribution
    if dist is None:
        return 0
    req = _request(spec, dist, Placement(hosts=(), gpus_per_node=gpus_per_node), argv=())
    return FRAMEWORKS[dist.type].ports(req)


def plan_launch(
    spec: JobSpec,
    placement: Placement,
    *,
    argv: Sequence[str],
    as_root: bool = False,
    python: str = "python",
    forward: Sequence[str] = FORWARDED_VARIABLES,
) -> LaunchPlan:
    """The processes that run ``spec`` on ``placement``, each executing ``argv`` (the
    command as :func:`runyard.spec.command_argv` gives it) or a launcher of it.

    ``as_root`` adds ``--allow-run-as-root`` to ``mpirun`` (pass ``os.geteuid() == 0``);
    ``python`` is the interpreter, with runyard installed, that runs the MPI rank wrapper;
    ``forward`` names the variables of the run's environment that ``mpirun`` carries to
    other hosts (the spec's own are added).

    A spec that cannot be planned is a :class:`~runyard.errors.SpecError`; a placement that
    does not fit the spec (a host per instance, enough ports, no two tasks on one address) a
    ``ValueError``."""
    if not argv:
        raise ValueError("argv is empty: there is no command to launch")
    instances = spec.resources.instance_count
    if len(placement.hosts) != instances:
        raise ValueError(
            f"the placement has {len(placement.hosts)} hosts for {instances} instances "
            "(resources.instance_count); it needs one host per instance"
        )
    dist = spec.distribution
    if dist is None:
        if instances > 1:
            raise SpecError(
                f"instance_count is {instances} but there is no distribution to wire the "
                "instances together (pytorch, mpi or tensorflow)",
                source=spec.source,
                field="resources.instance_count",
            )
        return _plan_single(placement, tuple(argv))
    req = _request(
        spec, dist, placement, argv=tuple(argv), as_root=as_root, python=python, forward=forward
    )
    framework = FRAMEWORKS[dist.type]
    _check_ports(req, framework.ports(req))
    return framework.plan(req)


def _plan_single(placement: Placement, argv: tuple[str, ...]) -> LaunchPlan:
    process = ProcessPlan(
        name="rank 0",
        role="worker",
        rank=0,
        node_rank=0,
        local_rank=0,
        host=placement.hosts[0],
        argv=argv,
        env={"RUNYARD_RANK": "0", "RUNYARD_NODE_RANK": "0"},
        log_name=SINGLE_LOG,
    )
    return LaunchPlan(kind="single", world_size=1, nnodes=1, processes=(process,))


def _request(
    spec: JobSpec,
    dist: DistributionSpec,
    placement: Placement,
    *,
    argv: tuple[str, ...],
    as_root: bool = False,
    python: str = "python",
    forward: Sequence[str] = (),
) -> LaunchRequest:
    _check_distribution(spec, dist)
    return LaunchRequest(
        spec_env={k: str(v) for k, v in spec.environment.env_vars.items()},
        nnodes=spec.resources.instance_count,
        nproc_per_node=processes_per_node(dist, placement.gpus_per_node),
        hosts=placement.hosts,
        ports=placement.ports,
        gpus_per_node=placement.gpus_per_node,
        argv=argv,
        per_node=dist.per_node,
        worker_count=dist.worker_count,
        parameter_server_count=dist.parameter_server_count,
        as_root=as_root,
        python=python,
        forward=tuple(forward),
    )


def _check_distribution(spec: JobSpec, dist: DistributionSpec) -> None:
    def fail(field: str, problem: str) -> SpecError:
        return SpecError(problem, source=spec.source, field=f"distribution.{field}")

    if dist.type not in FRAMEWORKS:
        known = ", ".join(FRAMEWORKS)
        raise fail("type", f"unknown type {dist.type!r} (expected one of {known})")
    count = dist.process_count_per_instance
    if count != "auto" and not (isinstance(count, int) and count >= 1):
        raise fail("process_count_per_instance", f"must be at least 1 or 'auto', not {count!r}")
    if dist.per_node and dist.type != "pytorch":
        raise fail("per_node", f"only applies to type pytorch, not {dist.type}")
    if dist.type != "tensorflow":
        if dist.worker_count is not None:
            raise fail("worker_count", f"only applies to type tensorflow, not {dist.type}")
        if dist.parameter_server_count:
            raise fail(
                "parameter_server_count", f"only applies to type tensorflow, not {dist.type}"
            )
    if dist.worker_count is not None and dist.worker_count < 1:
        raise fail("worker_count", f"must be at least 1, not {dist.worker_count}")
    if dist.parameter_server_count < 0:
        raise fail(
            "parameter_server_count", f"must be 0 or more, not {dist.parameter_server_count}"
        )


def _check_ports(req: LaunchRequest, needed: int) -> None:
    if len(req.ports) < needed:
        raise ValueError(
            f"the placement has {len(req.ports)} ports, this launch needs {needed} "
            "(ports_needed(spec) says how many to allocate)"
        )
    bad = [p for p in req.ports[:needed] if not 0 < p < 65536]
    if bad:
        raise ValueError(f"not TCP ports: {bad}")
