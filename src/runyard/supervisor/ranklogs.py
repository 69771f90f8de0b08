"""A run's logs, one file per process of its gang, and the merged stream of them.

Files in the run's ``logs/`` folder and the prefix their lines get in the merged stream::

    std_log.txt               (none)       a one-process run's output; a gang's runyard notes
    mpi_log.txt               [mpirun]     mpirun's own messages
    std_log_node_<n>.txt      [node n]     a per-node launcher (the user's torchrun)
    std_log_process_<r>.txt   [rank r]     rank r (written by the supervisor or the rank)

Names are enough to tell what a file holds, so a reader (``runyard logs``) needs nothing but
the folder or the run's artifact list. The merged stream interleaves the files as they grow;
lines keep their order within a file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from runyard.launch.plan import MPI_LOG, SINGLE_LOG
from runyard.supervisor.logsync import LogTail

_RANK = re.compile(r"std_log_process_(\d+)\.txt")
_NODE = re.compile(r"std_log_node_(\d+)\.txt")


@dataclass(frozen=True)
class LogSource:
    """One log file: its name in ``logs/``, the prefix of its lines (``None``: unprefixed)
    and the rank whose output it holds (``None``: not one rank's)."""

    name: str
    label: str | None
    rank: int | None

    def prefix(self, line: str) -> str:
        return line if self.label is None else f"[{self.label}] {line}"


def log_source(name: str) -> LogSource | None:
    """What the file ``name`` in ``logs/`` is, or ``None`` when it is not a process log."""
    if name == SINGLE_LOG:
        return LogSource(name, None, None)
    if name == MPI_LOG:
        return LogSource(name, "mpirun", None)
    if m := _RANK.fullmatch(name):
        rank = int(m.group(1))
        return LogSource(name, f"rank {rank}", rank)
    if m := _NODE.fullmatch(name):
        return LogSource(name, f"node {int(m.group(1))}", None)
    return None


def log_sources(names: Iterable[str]) -> list[LogSource]:
    """The process logs among ``names``, in stream order: runyard's notes (or the one
    process), mpirun, nodes, then ranks, each by number."""
    found = [s for s in map(log_source, names) if s is not None]
    order = {None: 0, "mpirun": 1}

    def key(s: LogSource) -> tuple[int, int, str]:
        if s.rank is not None:
            return (3, s.rank, s.name)
        if s.label in order:
            return (order[s.label], 0, s.name)
        return (2, 0, s.name)

    return sorted(found, key=key)


def rank_source(sources: list[LogSource], rank: int) -> LogSource | None:
    """The log holding rank ``rank``'s output: its own file, or ``std_log.txt`` for rank 0
    of a run that is one process."""
    for s in sources:
        if s.rank == rank:
            return s
    if rank == 0 and [s.name for s in sources] == [SINGLE_LOG]:
        return sources[0]
    return None


class MergedTail:
    """Feeds the new complete lines of several growing log files to ``echo``, each with its
    source's prefix. Files that do not exist yet are waited for."""

    def __init__(self, folder: Path, sources: Iterable[LogSource], echo: Callable[[str], None]):
        self.tails = [LogTail(folder / s.name, _prefixed(s, echo)) for s in sources]

    def poll(self) -> None:
        for tail in self.tails:
            tail.poll()

    def drain(self) -> None:
        for tail in self.tails:
            tail.drain()


def _prefixed(source: LogSource, echo: Callable[[str], None]) -> Callable[[str], None]:
    def emit(line: str) -> None:
        echo(source.prefix(line))

    return emit
