"""The rank wrapper ``mpirun`` starts: torch's variables from Open MPI's, then the command.

::

    python -m runyard.launch.mpi_env [--nproc-per-node K] [--log-dir DIR] -- COMMAND...

From ``OMPI_COMM_WORLD_RANK`` and ``OMPI_COMM_WORLD_SIZE`` it sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``NODE_RANK``, ``GROUP_RANK``, ``GROUP_WORLD_SIZE``,
``RUNYARD_RANK`` and ``RUNYARD_NODE_RANK`` (``MASTER_ADDR`` and ``MASTER_PORT`` come from
mpirun's ``-x``), with ``K`` ranks per node, ranks filling nodes in order: node rank
``rank // K``, local rank ``rank % K``. That is what ``--map-by slot`` does on uniform hosts,
and it keeps simulated nodes (one host, all the slots) apart. Without ``--nproc-per-node``,
``OMPI_COMM_WORLD_LOCAL_RANK``/``_LOCAL_SIZE`` are used and nodes assumed uniform
(``OMPI_COMM_WORLD_NODE_RANK`` is not the node index). With ``--log-dir`` the rank's stdout
and stderr go to ``DIR/std_log_process_<rank>.txt``. Then the command replaces this process
(``os.execvp``), so signals and the exit status are the command's own.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from runyard.launch.plan import rank_log_name
from runyard.launch.pytorch import rank_variables

USAGE = "python -m runyard.launch.mpi_env [--nproc-per-node K] [--log-dir DIR] -- COMMAND..."


def _int_var(environ: Mapping[str, str], name: str) -> int:
    value = environ.get(name)
    if value is None:
        raise ValueError(f"{name} is not set: run this under Open MPI's mpirun")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} is not a number: {value!r}") from None


def mpi_rank_env(environ: Mapping[str, str], *, nproc_per_node: int | None) -> dict[str, str]:
    """The variables to add for the rank that ``environ`` (Open MPI's) describes."""
    rank = _int_var(environ, "OMPI_COMM_WORLD_RANK")
    world = _int_var(environ, "OMPI_COMM_WORLD_SIZE")
    per_node = nproc_per_node or _int_var(environ, "OMPI_COMM_WORLD_LOCAL_SIZE")
    if per_node < 1 or world % per_node:
        raise ValueError(f"{world} ranks cannot be split into nodes of {per_node}")
    env = rank_variables(rank, per_node, world)
    if nproc_per_node is None:
        env["LOCAL_RANK"] = str(_int_var(environ, "OMPI_COMM_WORLD_LOCAL_RANK"))
    return env


def _redirect_output(log_dir: str, rank: int, world: int) -> None:
    path = Path(log_dir) / rank_log_name(rank, world)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def main(args: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if args is None else args)
    if "--" not in args:
        print(f"usage: {USAGE}", file=sys.stderr)
        return 2
    split = args.index("--")
    command = args[split + 1 :]
    parser = argparse.ArgumentParser(prog="python -m runyard.launch.mpi_env", usage=USAGE)
    parser.add_argument("--nproc-per-node", type=int, default=None)
    parser.add_argument("--log-dir", default=None)
    options = parser.parse_args(args[:split])
    if not command:
        parser.error("no command after --")
    try:
        env = mpi_rank_env(os.environ, nproc_per_node=options.nproc_per_node)
    except ValueError as e:
        print(f"runyard.launch.mpi_env: {e}", file=sys.stderr)
        return 2
    os.environ.update(env)
    if options.log_dir:
        _redirect_output(options.log_dir, int(env["RANK"]), int(env["WORLD_SIZE"]))
    try:
        os.execvp(command[0], command)  # noqa: S606 - the run's own command, as given
    except OSError as e:
        print(f"runyard.launch.mpi_env: cannot run {command[0]}: {e}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main())
