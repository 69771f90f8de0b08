"""Executing a launch plan: every process of a run started together, watched as one gang,
ended together.

A run is a :class:`~runyard.launch.LaunchPlan`; one that is a single process is a gang of
one, executed exactly as before (output to ``logs/std_log.txt``, its own exit code and
reason). For a distributed plan:

- the plan's files (the MPI hostfile) are written under the working folder, then every
  process starts at once, each in its own process group (``spawn``), with the run's
  environment plus the variables the plan gives it, output to ``logs/<its log name>``;
- the gang is over when every worker and launcher exited 0 (parameter servers are then
  stopped), or as soon as any process exits non-zero: that one is *the failure*, named in
  the run's reason (``rank 1 exited with code 3``) with the tail of its log as the error,
  and the supervisor ends the others (SIGTERM, ``kill_grace``, SIGKILL). Under ``mpirun``,
  which ends the other ranks itself and exits with the failing rank's code, the failing
  rank is read from mpirun's message;
- cancel and timeout signal every process group of the gang;
- runyard's own notes (what failed, what was stopped) go to ``logs/std_log.txt``, and at the
  end ``logs/ranks.json`` records every process: role, rank, node, pid, log, exit code,
  signal and whether runyard had already begun stopping the gang when it ended. Under MPI
  the ranks are mpirun's children, so the file holds mpirun's status and the failing rank.

Exits are watched without reaping (a pidfd per process, else ``waitid(WNOWAIT)``): a
process that ended stays a zombie, keeping its process group id reserved, until
:meth:`Gang.end` has ended the rest of its group.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from runyard.launch import SINGLE_LOG, LaunchPlan, ProcessPlan
from runyard.supervisor.process import (
    describe_exit,
    is_alive,
    reap_orphans,
    run_processes,
    signal_all,
    signal_name,
    spawn,
    wait_gone,
)
from runyard.supervisor.ranklogs import MergedTail, log_sources

#: Where a gang's processes are recorded at the end, in the run's ``logs/``.
RANKS_FILE = "ranks.json"

# How mpirun (Open MPI 4) names the first failing rank: "Process name: [[job,1],RANK]" (a
# non-zero exit), "process rank RANK with PID ... exited on signal", "MPI_ABORT was invoked
# on rank RANK".
_MPI_FAILED_RANK = re.compile(
    r"Process name:\s*\[\[\d+,\d+\],(\d+)\]|process rank (\d+) with PID"
    r"|MPI_ABORT was invoked on rank (\d+)",
    re.IGNORECASE,
)


@dataclass
class Member:
    """One process of the gang. ``returncode`` is known once it exited (``-N``: signal N),
    before it is reaped; ``stopped`` says it ended after runyard began stopping the gang."""

    plan: ProcessPlan
    proc: subprocess.Popen[bytes]
    log: Path
    returncode: int | None = None
    stopped: bool = False

    @property
    def who(self) -> str:
        """``rank 1``, ``node 0``, ``mpirun``, ``worker 1 (rank 1)``."""
        p = self.plan
        if p.rank is None or p.name == f"rank {p.rank}":
            return p.name
        return f"{p.name} (rank {p.rank})"


@dataclass(frozen=True)
class Outcome:
    """How the gang ended. ``returncode`` is Popen's (0: success, ``-N``: signal N) of the
    process that decides it; ``log`` is the file whose tail explains a failure."""

    returncode: int
    exit_code: int
    reason: str
    log: Path
    failed: str | None = None
    failed_rank: int | None = None


class Gang:
    """The processes of one run, started by :meth:`start` from its launch plan."""

    def __init__(self, plan: LaunchPlan, members: list[Member], run_id: str, logs: Path):
        self.plan = plan
        self.members = members
        self.run_id = run_id
        self.logs = logs
        self.failed: Member | None = None
        self._stopping = False
        self._captured: list[psutil.Process] = []
        #: When the first process started (seconds since the epoch).
        self.started_at = time.time()

    @classmethod
    def start(
        cls, plan: LaunchPlan, run_id: str, *, cwd: Path, env: dict[str, str], logs: Path
    ) -> Gang:
        """Write the plan's files, then start every process. If one cannot start (OSError,
        re-raised), those already started are ended first."""
        for rel, text in plan.files.items():
            path = cwd / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        gang = cls(plan, [], run_id, logs)
        try:
            for p in plan.processes:
                log = logs / p.log_name
                proc = spawn(p.argv, cwd=cwd, env={**env, **p.env}, log_path=log)
                gang.members.append(Member(p, proc, log))
        except OSError as e:
            if not gang.single:  # a single process's caller says it in its own words
                gang.note(f"cannot start {gang._next_name()}: {e}")
            gang.end(0.0)
            raise
        if not gang.single:
            nodes = "node" if plan.nnodes == 1 else "nodes"
            gang.note(
                f"{plan.kind}: world size {plan.world_size}, {plan.nnodes} {nodes}; started "
                + ", ".join(f"{m.plan.name} (pid {m.proc.pid})" for m in gang.members)
            )
        return gang

    @property
    def single(self) -> bool:
        return self.plan.kind == "single"

    @property
    def pid(self) -> int:
        """The first process's pid (its process group id too)."""
        return self.members[0].proc.pid

    @property
    def pids(self) -> list[int]:
        return [m.proc.pid for m in self.members]

    # -- watching ----------------------------------------------------------------------
    def watch(self) -> GangWatch:
        return GangWatch(self)

    def poll(self) -> bool:
        """Record the processes that exited; whether the gang is over (a failure, or every
        worker and launcher exited 0)."""
        for m in self.members:
            if m.returncode is None and (code := _exit_status(m.proc)) is not None:
                m.returncode, m.stopped = code, self._stopping
                if code != 0 and not m.stopped and self.failed is None:
                    self.failed = m
                    if not self.single:
                        who, _, _ = self._blame(m)
                        self.note(f"{who} {_ended(code)}: stopping the other processes")
        if self.failed is not None:
            return True
        return all(m.returncode is not None for m in self.members if m.plan.role != "ps")

    # -- stopping ----------------------------------------------------------------------
    def tree(self) -> list[psutil.Process]:
        """Every live process of the run: each member's descendants and process group (while
        unreaped, its pid and group id are the run's), and whatever carries the run's id."""
        roots = [m.proc.pid for m in self.members if m.proc.returncode is None]
        found = {
            p.pid: p for p in run_processes(roots, self.run_id, pgids=roots, since=self.started_at)
        }
        for p in self._captured:
            found.setdefault(p.pid, p)
        return list(found.values())

    def send(self, sig: signal.Signals) -> None:
        """Signal every process of the gang now (remembering who they were)."""
        self._stopping = True
        self._captured = procs = self.tree()
        self._signal(procs, sig)

    def end(self, grace: float, found: list[psutil.Process] | None = None) -> list[psutil.Process]:
        """End what is left (SIGTERM, ``grace`` seconds, SIGKILL) and reap every member.
        ``found``: what :meth:`tree` returned a moment ago, if the caller looked. Returns the
        processes that had to be killed."""
        self._stopping = True
        procs = self.tree() if found is None else found
        self._signal(procs, signal.SIGTERM)
        wait_gone(procs, grace)
        alive = [p for p in procs if is_alive(p)]
        self._signal(alive, signal.SIGKILL)  # the groups too: a child forked meanwhile
        wait_gone(alive, 2.0)
        for m in self.members:
            with contextlib.suppress(subprocess.TimeoutExpired):
                m.proc.wait(timeout=5)
        # What was re-parented to a subreaper supervisor (a member still running is not).
        reap_orphans(keep={m.proc.pid for m in self.members if m.proc.returncode is None})
        return alive

    def _signal(self, procs: list[psutil.Process], sig: signal.Signals) -> None:
        """``sig`` to each member's process group, then to the processes of ``procs`` outside
        those groups: once to each process (a second SIGTERM is often read as "hurry")."""
        groups = {m.proc.pid for m in self.members if m.proc.returncode is None}
        for pgid in groups:
            signal_all([], pgid, sig)
        signal_all([p for p in procs if _pgid(p.pid) not in groups], None, sig)

    # -- the end -------------------------------------------------------------------------
    def finish(self) -> Outcome:
        """After :meth:`end`: how the gang ended; for a distributed plan, also writes
        ``logs/ranks.json``."""
        for m in self.members:
            if m.returncode is None:
                m.returncode, m.stopped = m.proc.wait(), True
        outcome = self._outcome()
        if not self.single:
            self._write_ranks(outcome)
        return outcome

    def _outcome(self) -> Outcome:
        decisive = self.failed
        if decisive is None:  # e.g. stopped by a cancel: the first worker that did not exit 0
            decisive = next((m for m in self.members if m.plan.role != "ps" and m.returncode), None)
        if decisive is None:
            return Outcome(0, 0, "exit code 0", self.logs / SINGLE_LOG)
        code = decisive.returncode or 0
        shell = decisive.plan.argv[:1] == ("/bin/sh",)
        exit_code, reason = describe_exit(code, shell=shell)
        if self.single:
            return Outcome(code, exit_code, reason, decisive.log)
        who, rank, log = self._blame(decisive)
        hint = reason[len(f"exit code {code}") :] if code >= 0 else ""
        return Outcome(code, exit_code, f"{who} {_ended(code)}{hint}", log, who, rank)

    def _blame(self, m: Member) -> tuple[str, int | None, Path]:
        """Who failed, their rank and their log: the rank mpirun names when it is mpirun.
        When mpirun names none, the failure stays mpirun's, explained by the rank log that
        was written last (the rank that spoke last before the gang died)."""
        if m.plan.role == "launcher" and self.plan.rank_logs:
            rank = _mpi_failed_rank(m.log)
            if rank is not None and rank in self.plan.rank_logs:
                return f"rank {rank}", rank, self.logs / self.plan.rank_logs[rank]
            return (
                m.who,
                None,
                _last_written([self.logs / n for n in self.plan.rank_logs.values()], m.log),
            )
        return m.who, m.plan.rank, m.log

    def _write_ranks(self, outcome: Outcome) -> None:
        processes: list[dict[str, Any]] = []
        for m in self.members:
            code = m.returncode if m.returncode is not None else None
            exit_code, sig = None, None
            if code is not None:
                exit_code = describe_exit(code)[0]
                sig = signal_name(-code) if code < 0 else None
            p = m.plan
            processes.append(
                {
                    "name": p.name,
                    "role": p.role,
                    "rank": p.rank,
                    "node_rank": p.node_rank,
                    "local_rank": p.local_rank,
                    "host": p.host,
                    "pid": m.proc.pid,
                    "log": f"{self.logs.name}/{p.log_name}",
                    "exit_code": exit_code,
                    "signal": sig,
                    "stopped": m.stopped,
                }
            )
        failed = None
        if self.failed is not None:
            failed = {
                "name": outcome.failed,
                "rank": outcome.failed_rank,
                "exit_code": outcome.exit_code,
            }
        summary = {
            "kind": self.plan.kind,
            "world_size": self.plan.world_size,
            "nnodes": self.plan.nnodes,
            "failed": failed,
            "processes": processes,
            "rank_logs": {
                str(r): f"{self.logs.name}/{n}" for r, n in sorted(self.plan.rank_logs.items())
            },
        }
        text = json.dumps(summary, indent=2) + "\n"
        (self.logs / RANKS_FILE).write_text(text, encoding="utf-8")

    # -- logs --------------------------------------------------------------------------
    def tail(self, echo: Callable[[str], None]) -> MergedTail:
        """The live stream of every log of the gang (prefixed by rank when there are
        several), for a terminal."""
        names = [SINGLE_LOG]
        if not self.single:
            names += [p.log_name for p in self.plan.processes]
            names += list(self.plan.rank_logs.values())
        return MergedTail(self.logs, log_sources(names), echo)

    def note(self, text: str) -> None:
        """A line from runyard in ``logs/std_log.txt``."""
        with (self.logs / SINGLE_LOG).open("a", encoding="utf-8") as f:
            f.write(f"[runyard] {text}\n")

    def describe(self) -> str:
        return ", ".join(f"{m.plan.name} pid {m.proc.pid}" for m in self.members)

    def _next_name(self) -> str:
        return self.plan.processes[len(self.members)].name


class GangWatch:
    """Waits for the gang to be over (see :meth:`Gang.poll`), woken by any process's exit:
    a pidfd per process where the kernel has them, else polling."""

    def __init__(self, gang: Gang):
        self.gang = gang
        self._fds: dict[int, int] = {}
        for m in gang.members:
            with contextlib.suppress(AttributeError, OSError):
                self._fds[m.proc.pid] = os.pidfd_open(m.proc.pid)

    def wait(self, timeout: float) -> bool:
        if self.gang.poll():
            return True
        running = [m.proc.pid for m in self.gang.members if m.returncode is None]
        fds = [self._fds[pid] for pid in running if pid in self._fds]
        if fds and len(fds) == len(running):
            select.select(fds, [], [], timeout)
            return self.gang.poll()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(min(0.02, timeout))
            if self.gang.poll():
                return True
        return self.gang.poll()

    def close(self) -> None:
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)


def _exit_status(proc: subprocess.Popen[bytes]) -> int | None:
    """The child's Popen-style return code if it exited, without reaping it."""
    if proc.returncode is not None:
        return proc.returncode
    waitid = getattr(os, "waitid", None)
    if waitid is None:  # no waitid (some BSDs): poll, which reaps
        return proc.poll()
    try:
        info = waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # reaped elsewhere
        return proc.poll()
    if info is None:
        return None
    if info.si_code == os.CLD_EXITED:
        return int(info.si_status)
    return -int(info.si_status)


def _ended(returncode: int) -> str:
    if returncode < 0:
        return f"was killed by signal {signal_name(-returncode)}"
    return f"exited with code {returncode}"


def _last_written(logs: list[Path], default: Path) -> Path:
    """The non-empty log among ``logs`` modified last, else ``default``."""
    best, best_mtime = default, -1.0
    for log in logs:
        try:
            st = log.stat()
        except OSError:
            continue
        if st.st_size and st.st_mtime > best_mtime:
            best, best_mtime = log, st.st_mtime
    return best


def _mpi_failed_rank(log: Path) -> int | None:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")[-64 * 1024 :]
    except OSError:
        return None
    m = _MPI_FAILED_RANK.search(text)
    if m is None:
        return None
    return int(next(g for g in m.groups() if g is not None))


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None
