"""PyTorch gangs: one process per rank with torch.distributed's ``env://`` variables, or the
user's own ``torchrun`` once per node, configured through torchrun's ``PET_*`` variables.

Per rank (what ``torchrun`` gives its workers, plus ``NODE_RANK`` as Azure ML set it):
``MASTER_ADDR``, ``MASTER_PORT``, ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``LOCAL_WORLD_SIZE``, ``NODE_RANK``, ``GROUP_RANK``, ``GROUP_WORLD_SIZE``. Every visible GPU
stays visible to every rank; a script picks its own with ``torch.cuda.set_device(LOCAL_RANK)``,
as under torchrun. ``OMP_NUM_THREADS=1`` when a node runs several ranks and the spec does not
set it, as torchrun does. ``TORCHELASTIC_RUN_ID`` is not set: no elastic agent runs, and
``torch.distributed.is_torchelastic_launched()`` should say so.

Per node (``per_node: true``): the command runs once per node with ``PET_NNODES``,
``PET_NODE_RANK``, ``PET_NPROC_PER_NODE``, ``PET_MASTER_ADDR`` and ``PET_MASTER_PORT``, which
torchrun reads as the defaults of its flags (``torch/distributed/argparse_util.py``). Its
default static rendezvous listens on node 0 at ``master_addr:master_port``, so no
``PET_RDZV_*`` is needed, and simulated nodes on one machine share that address.
``MASTER_ADDR``, ``MASTER_PORT`` and ``NODE_RANK`` are set too (for launchers other than
torchrun, such as Lightning's, which read them); ``RANK``/``LOCAL_RANK`` are not, since they
mean "the processes were already started".
"""

from __future__ import annotations

from runyard.launch.plan import (
    LaunchPlan,
    LaunchRequest,
    ProcessPlan,
    node_log_name,
    rank_log_name,
)


def rank_variables(rank: int, nproc_per_node: int, world_size: int) -> dict[str, str]:
    """The variables that tell rank ``rank`` where it stands, with ranks filling nodes in
    order (``nproc_per_node`` per node): torch's, and ``RUNYARD_RANK``/``RUNYARD_NODE_RANK``
    for runyard's own tracking."""
    node, local = divmod(rank, nproc_per_node)
    return {
        "RANK": str(rank),
        "WORLD_SIZE": str(world_size),
        "LOCAL_RANK": str(local),
        "LOCAL_WORLD_SIZE": str(nproc_per_node),
        "NODE_RANK": str(node),
        "GROUP_RANK": str(node),
        "GROUP_WORLD_SIZE": str(world_size // nproc_per_node),
        "RUNYARD_RANK": str(rank),
        "RUNYARD_NODE_RANK": str(node),
    }


def plan_pytorch(req: LaunchRequest) -> LaunchPlan:
    if req.per_node:
        return _plan_per_node(req)
    world = req.world_size
    master = {"MASTER_ADDR": req.hosts[0], "MASTER_PORT": str(req.ports[0])}
    if req.nproc_per_node > 1 and "OMP_NUM_THREADS" not in req.spec_env:
        master["OMP_NUM_THREADS"] = "1"
    processes = []
    for rank in range(world):
        node, local = divmod(rank, req.nproc_per_node)
        processes.append(
            ProcessPlan(
                name=f"rank {rank}",
                role="worker",
                rank=rank,
                node_rank=node,
                local_rank=local,
                host=req.hosts[node],
                argv=req.argv,
                env={**master, **rank_variables(rank, req.nproc_per_node, world)},
                log_name=rank_log_name(rank, world),
            )
        )
    return LaunchPlan(
        kind="pytorch", world_size=world, nnodes=req.nnodes, processes=tuple(processes)
    )


def _plan_per_node(req: LaunchRequest) -> LaunchPlan:
    addr, port = req.hosts[0], str(req.ports[0])
    processes = tuple(
        ProcessPlan(
            name=f"node {node}",
            role="launcher",
            rank=None,
            node_rank=node,
            local_rank=None,
            host=req.hosts[node],
            argv=req.argv,
            env={
                "PET_NNODES": str(req.nnodes),
                "PET_NODE_RANK": str(node),
                "PET_NPROC_PER_NODE": str(req.nproc_per_node),
                "PET_MASTER_ADDR": addr,
                "PET_MASTER_PORT": port,
                "MASTER_ADDR": addr,
                "MASTER_PORT": port,
                "NODE_RANK": str(node),
                "RUNYARD_NODE_RANK": str(node),
            },
            log_name=node_log_name(node, req.nnodes),
        )
        for node in range(req.nnodes)
    )
    return LaunchPlan(
        kind="pytorch-per-node", world_size=req.world_size, nnodes=req.nnodes, processes=processes
    )
