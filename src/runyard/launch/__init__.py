"""Launch planning: from a job spec and a placement, the exact processes and variables of
every rank, as pure data (golden-tested, printed by ``runyard run --dry-run``, executed by
the supervisor).

::

    spec = load_job("job.yaml")
    ports = allocate_ports(ports_needed(spec))                  # the one impure step
    plan = plan_launch(spec, Placement.local(spec.resources.instance_count, ports=ports),
                       argv=command_argv(spec, outputs_dir=...), as_root=os.geteuid() == 0)
    print(plan.describe())

One module per distribution type: :mod:`~runyard.launch.pytorch` (per rank, or ``torchrun``
per node), :mod:`~runyard.launch.mpi` (``mpirun`` with a hostfile, and the
:mod:`~runyard.launch.mpi_env` rank wrapper), :mod:`~runyard.launch.tensorflow`
(``TF_CONFIG``). :mod:`~runyard.launch.local` gathers this machine's ports and GPUs and plans
for local compute (:func:`plan_local`), or checks a spec at submit (:func:`check_launch`).
"""

from __future__ import annotations

from runyard.launch.local import check_launch, plan_local, visible_gpus
from runyard.launch.mpi import FORWARDED_VARIABLES, HOSTFILE
from runyard.launch.plan import (
    LOG_DIR,
    MPI_LOG,
    SINGLE_LOG,
    LaunchPlan,
    LaunchRequest,
    Placement,
    ProcessPlan,
    Role,
    node_log_name,
    rank_log_name,
)
from runyard.launch.planner import (
    FRAMEWORKS,
    Framework,
    plan_launch,
    ports_needed,
    processes_per_node,
)
from runyard.launch.ports import allocate_ports

__all__ = [
    "FORWARDED_VARIABLES",
    "FRAMEWORKS",
    "HOSTFILE",
    "LOG_DIR",
    "MPI_LOG",
    "SINGLE_LOG",
    "Framework",
    "LaunchPlan",
    "LaunchRequest",
    "Placement",
    "ProcessPlan",
    "Role",
    "allocate_ports",
    "check_launch",
    "node_log_name",
    "plan_launch",
    "plan_local",
    "ports_needed",
    "processes_per_node",
    "rank_log_name",
    "visible_gpus",
]
