"""What a launch looks like: the processes to start, where, and the variables each one gets.

Pure data. A :class:`LaunchPlan` is computed from a job spec and a :class:`Placement` by
:func:`runyard.launch.plan_launch`; the supervisor executes it, ``runyard run --dry-run``
prints :meth:`LaunchPlan.describe`.

Paths in a plan are relative to the run's working folder, where every process starts: log
names live in :data:`LOG_DIR`, :attr:`LaunchPlan.files` are written there before the first
process starts.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

#: The run's logs folder, relative to the working folder (``WorkDir.logs``).
LOG_DIR = "logs"
#: The log of a run that is one process (what the supervisor has always written).
SINGLE_LOG = "std_log.txt"
#: The log of ``mpirun`` itself (its own messages; the ranks write their own files).
MPI_LOG = "mpi_log.txt"

#: ``worker``: one rank running the user's command. ``ps``: a TensorFlow parameter server, which
#: serves until it is stopped (the run is over when every worker is). ``launcher``: a process
#: that starts the ranks itself (the user's ``torchrun`` per node, ``mpirun``).
Role = Literal["worker", "ps", "launcher"]
_ROLE_NAMES = {"worker": "worker", "ps": "parameter server", "launcher": "launcher"}


def rank_log_name(rank: int, world_size: int) -> str:
    """``std_log_process_<rank>.txt`` as Azure ML's ``user_logs`` names them, the rank
    zero-padded to the width of the largest one so that listings sort by rank."""
    width = len(str(max(world_size - 1, 0)))
    return f"std_log_process_{rank:0{width}d}.txt"


def node_log_name(node_rank: int, nnodes: int) -> str:
    """The log of a per-node launcher: ``std_log_node_<node>.txt``."""
    width = len(str(max(nnodes - 1, 0)))
    return f"std_log_node_{node_rank:0{width}d}.txt"


@dataclass(frozen=True)
class Placement:
    """Where a run's gang goes, chosen before planning.

    ``hosts`` has one entry per node (instance), in node-rank order; on local compute the
    same address repeats for simulated nodes. ``ports`` are free ports chosen outside the
    planner (:func:`runyard.launch.allocate_ports`, :func:`runyard.launch.ports_needed` says
    how many), so that planning stays pure. ``gpus_per_node`` is the number of GPUs each
    node's processes can see (0 without GPUs)."""

    hosts: tuple[str, ...]
    ports: tuple[int, ...] = ()
    gpus_per_node: int = 0

    @classmethod
    def local(
        cls, nodes: int = 1, *, ports: tuple[int, ...] = (), gpus_per_node: int = 0
    ) -> Placement:
        """``nodes`` simulated nodes on this machine (all ``127.0.0.1``)."""
        return cls(hosts=("127.0.0.1",) * nodes, ports=ports, gpus_per_node=gpus_per_node)


@dataclass(frozen=True)
class ProcessPlan:
    """One process the supervisor starts, on ``host``, in the working folder.

    ``rank`` is the global rank (``None`` for a launcher, whose children get theirs from it);
    ``env`` holds only the variables runyard adds for this process, on top of the run's
    environment, and wins over it. stdout and stderr go to ``LOG_DIR/log_name``."""

    name: str
    role: Role
    rank: int | None
    node_rank: int
    local_rank: int | None
    host: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    log_name: str


@dataclass(frozen=True)
class LaunchPlan:
    """Every process of a run, in start order, and what they need.

    ``kind`` is ``single``, ``pytorch``, ``pytorch-per-node``, ``mpi`` or ``tensorflow``;
    ``world_size`` counts the ranks (for launchers, the ranks they start). ``files`` maps a
    path relative to the working folder to the text to write there before starting (the
    MPI hostfile). ``rank_logs`` names the log each rank writes itself when a launcher
    starts it (MPI), rank to file name in ``LOG_DIR``; empty when every rank is a process
    of ``processes`` with its own ``log_name``."""

    kind: str
    world_size: int
    nnodes: int
    processes: tuple[ProcessPlan, ...]
    files: Mapping[str, str] = field(default_factory=dict)
    rank_logs: Mapping[int, str] = field(default_factory=dict)

    def describe(self, workdir: str = "<workdir>") -> str:
        """The dry-run text: per process its command, working folder, log and the variables
        runyard adds, sorted; then the files written before the start. Stable for a given
        plan, so it can be golden-tested."""
        nodes = "node" if self.nnodes == 1 else "nodes"
        procs = "process" if len(self.processes) == 1 else "processes"
        lines = [
            f"{self.kind}: world size {self.world_size}, {self.nnodes} {nodes}, "
            f"{len(self.processes)} {procs}",
            f"working folder: {workdir}",
        ]
        for p in self.processes:
            where = [] if p.role == "worker" else [_ROLE_NAMES[p.role]]
            where.append(f"node {p.node_rank} ({p.host})")
            if p.rank is not None and p.name != f"rank {p.rank}":
                where.append(f"rank {p.rank}")
            if p.local_rank is not None:
                where.append(f"local rank {p.local_rank}")
            lines += [
                "",
                f"[{p.name}] {', '.join(where)}",
                f"  command: {shlex.join(p.argv)}",
                f"  log: {LOG_DIR}/{p.log_name}",
            ]
            lines += [f"  {k}={shlex.quote(v)}" for k, v in sorted(p.env.items())]
        if self.rank_logs:
            lines += ["", "logs written by the ranks:"]
            lines += [f"  rank {r}: {LOG_DIR}/{n}" for r, n in sorted(self.rank_logs.items())]
        for path, text in sorted(self.files.items()):
            lines += ["", f"file {path}:"]
            lines += [f"  {line}" for line in text.splitlines()]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class LaunchRequest:
    """What one framework's planner gets: the spec's distribution resolved against the
    placement. Built (and checked) by :func:`runyard.launch.plan_launch`."""

    spec_env: Mapping[str, str]
    nnodes: int
    nproc_per_node: int
    hosts: tuple[str, ...]
    ports: tuple[int, ...]
    gpus_per_node: int
    argv: tuple[str, ...]
    per_node: bool = False
    worker_count: int | None = None
    parameter_server_count: int = 0
    as_root: bool = False
    python: str = "python"
    forward: tuple[str, ...] = ()

    @property
    def world_size(self) -> int:
        return self.nnodes * self.nproc_per_node
