"""An MPI job: every rank contributes ``rank + 1`` to an allreduce (sum) with mpi4py.

Started by runyard (``distribution: {type: mpi}``) or by
``mpirun -np N python -m mpi4py allreduce.py`` (``-m mpi4py``: a rank that raises aborts the
job, where a plain ``python`` would wait forever in ``MPI_Finalize`` for the others).
Each rank logs the sum it received (runyard records it with the rank) and checks it against
``N (N + 1) / 2``. Under runyard each rank also finds torch's variables (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``NODE_RANK``, ``MASTER_ADDR``), printed here for show.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

import numpy as np
from mpi4py import MPI

import runyard


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--length", type=int, default=1000, help="elements per vector")
    args = parser.parse_args()

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    mine = np.full(args.length, rank + 1.0)
    total = np.empty_like(mine)
    comm.Allreduce(mine, total, op=MPI.SUM)
    expected = size * (size + 1) / 2

    runyard.log_metrics({"allreduce_sum": float(total[0]), "world_size": size})
    torch_vars = {k: os.environ.get(k) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK")}
    print(
        f"rank {rank} of {size} on {socket.gethostname()}: allreduce sum {total[0]:g} "
        f"(expected {expected:g}); torch variables {torch_vars}"
    )
    if not np.all(total == expected):
        print(f"rank {rank}: wrong sum", file=sys.stderr)
        return 1
    comm.Barrier()
    if rank == 0:
        print(f"all {size} ranks agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
