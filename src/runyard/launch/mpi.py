"""MPI gangs: one ``mpirun`` (Open MPI) on node 0 starts every rank.

::

    mpirun -np N --hostfile .runyard/hostfile [--allow-run-as-root] --bind-to none
        --map-by slot -x NAME ... python -m runyard.launch.mpi_env --nproc-per-node K
        --log-dir logs -- COMMAND...

- The hostfile lists each distinct host once with ``slots=`` its process count. Simulated
  nodes on one machine cannot be separate hosts for mpirun (a host named twice with slots
  is an error), so they become one host with all the slots; the node a rank belongs to is
  then logical: ``rank // K``, which with ``--map-by slot`` is also the real host on a
  cluster of distinct, uniform hosts. Since np never exceeds the slots named,
  ``--oversubscribe`` is never needed.
- ``--bind-to none --map-by slot`` as Horovod's docs advise: binding a training process to
  one core hurts it, and ranks fill hosts in order.
- ``-x`` exports by name (values come from mpirun's own environment) the variables runyard
  adds (``MASTER_ADDR``, ``MASTER_PORT``, ``AZ_BATCH_MASTER_NODE=host:port`` and
  ``AZ_BATCHAI_MPI_MASTER_NODE=host`` as Azure ML set them), the run's contract variables
  and the spec's own, so that ranks on other hosts get them too.
- Each rank runs :mod:`runyard.launch.mpi_env`, which maps ``OMPI_COMM_WORLD_*`` to torch's
  ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``NODE_RANK``, sends the
  rank's output to ``logs/std_log_process_<rank>.txt`` and execs the command: mpi4py and
  Horovod scripts see MPI's own variables, torch scripts find theirs too.
"""

from __future__ import annotations

from collections.abc import Sequence

from runyard.launch.plan import (
    LOG_DIR,
    MPI_LOG,
    LaunchPlan,
    LaunchRequest,
    ProcessPlan,
    rank_log_name,
)

#: Where the hostfile is written, relative to the working folder.
HOSTFILE = ".runyard/hostfile"

#: Variables of the run's environment that mpirun must carry to ranks on other hosts: the
#: supervisor's contract variables (``runyard.supervisor.workdir.child_env``).
FORWARDED_VARIABLES: tuple[str, ...] = (
    "PATH",
    "PYTHONUNBUFFERED",
    "RUNYARD_RUN_ID",
    "RUNYARD_EXPERIMENT",
    "RUNYARD_EVENTS",
    "RUNYARD_OUTPUTS",
    "RUNYARD_STOP_FILE",
    "AZUREML_RUN_ID",
)


def hostfile(hosts: Sequence[str], slots_per_host: int) -> str:
    """An Open MPI hostfile: each distinct host once, in order of first appearance, with
    ``slots=`` its share of the ranks."""
    slots: dict[str, int] = {}
    for host in hosts:
        slots[host] = slots.get(host, 0) + slots_per_host
    return "".join(f"{host} slots={n}\n" for host, n in slots.items())


def plan_mpi(req: LaunchRequest) -> LaunchPlan:
    world = req.world_size
    addr, port = req.hosts[0], str(req.ports[0])
    env = {
        "MASTER_ADDR": addr,
        "MASTER_PORT": port,
        "AZ_BATCH_MASTER_NODE": f"{addr}:{port}",
        "AZ_BATCHAI_MPI_MASTER_NODE": addr,
    }
    argv = ["mpirun", "-np", str(world), "--hostfile", HOSTFILE]
    if req.as_root:
        argv.append("--allow-run-as-root")
    argv += ["--bind-to", "none", "--map-by", "slot"]
    for name in sorted({*env, *req.forward, *req.spec_env}):
        argv += ["-x", name]
    argv += [
        req.python,
        "-m",
        "runyard.launch.mpi_env",
        "--nproc-per-node",
        str(req.nproc_per_node),
        "--log-dir",
        LOG_DIR,
        "--",
        *req.argv,
    ]
    launcher = ProcessPlan(
        name="mpirun",
        role="launcher",
        rank=None,
        node_rank=0,
        local_rank=None,
        host=addr,
        argv=tuple(argv),
        env=env,
        log_name=MPI_LOG,
    )
    return LaunchPlan(
        kind="mpi",
        world_size=world,
        nnodes=req.nnodes,
        processes=(launcher,),
        files={HOSTFILE: hostfile(req.hosts, req.nproc_per_node)},
        rank_logs={rank: rank_log_name(rank, world) for rank in range(world)},
    )
