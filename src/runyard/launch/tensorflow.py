"""TensorFlow gangs: one process per task, each told the whole cluster through ``TF_CONFIG``.

``TF_CONFIG`` is ``{"cluster": {"worker": ["host:port", ...], "ps": [...]}, "task":
{"type": "worker" | "ps", "index": i}}``, without a ``chief`` key, as Azure ML wrote it:
worker 0 acts as chief. ``ps`` is left out without parameter servers.

Tasks (workers, then parameter servers) go to nodes round-robin, so workers spread evenly;
task ``t`` listens on ``ports[t]``, so no two tasks on one host share a port. Its rank (for
logs and ``RUNYARD_RANK``) is ``t``: worker ``i`` is rank ``i``, parameter server ``j`` is
rank ``worker_count + j``. ``RANK`` and the other torch variables are not set.

With GPUs, a node running several workers gives each one GPU (``CUDA_VISIBLE_DEVICES``, in
turn), since a TensorFlow process takes memory on every GPU it sees; a lone worker keeps
them all (``MultiWorkerMirroredStrategy`` uses every local GPU); parameter servers get none.
"""

from __future__ import annotations

import json

from runyard.launch.plan import LaunchPlan, LaunchRequest, ProcessPlan, rank_log_name


def task_count(req: LaunchRequest) -> int:
    return worker_count(req) + req.parameter_server_count


def worker_count(req: LaunchRequest) -> int:
    return req.worker_count if req.worker_count is not None else req.world_size


def plan_tensorflow(req: LaunchRequest) -> LaunchPlan:
    workers = worker_count(req)
    tasks = [("worker", i) for i in range(workers)]
    tasks += [("ps", j) for j in range(req.parameter_server_count)]
    nodes = [t % req.nnodes for t in range(len(tasks))]
    addresses = [f"{req.hosts[node]}:{req.ports[t]}" for t, node in enumerate(nodes)]
    clashes = sorted({a for a in addresses if addresses.count(a) > 1})
    if clashes:
        raise ValueError(f"two TensorFlow tasks would listen on the same address: {clashes}")
    cluster: dict[str, list[str]] = {"worker": addresses[:workers]}
    if req.parameter_server_count:
        cluster["ps"] = addresses[workers:]
    workers_on = [nodes[:workers].count(n) for n in range(req.nnodes)]

    processes = []
    seen_on = [0] * req.nnodes
    for t, ((kind, index), node) in enumerate(zip(tasks, nodes, strict=True)):
        local, seen_on[node] = seen_on[node], seen_on[node] + 1
        config = {"cluster": cluster, "task": {"type": kind, "index": index}}
        env = {
            "TF_CONFIG": json.dumps(config, separators=(",", ":")),
            "RUNYARD_RANK": str(t),
            "RUNYARD_NODE_RANK": str(node),
        }
        if req.gpus_per_node and kind == "ps":
            env["CUDA_VISIBLE_DEVICES"] = ""
        elif req.gpus_per_node and workers_on[node] > 1:
            env["CUDA_VISIBLE_DEVICES"] = str(local % req.gpus_per_node)
        processes.append(
            ProcessPlan(
                name=f"{kind} {index}",
                role="ps" if kind == "ps" else "worker",
                rank=t,
                node_rank=node,
                local_rank=local,
                host=req.hosts[node],
                argv=req.argv,
                env=env,
                log_name=rank_log_name(t, len(tasks)),
            )
        )
    return LaunchPlan(
        kind="tensorflow", world_size=len(tasks), nnodes=req.nnodes, processes=tuple(processes)
    )
