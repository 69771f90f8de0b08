"""The run's user processes: spawn them in their own process group, describe how they
ended, and end the whole tree (TERM, grace period, KILL). :mod:`runyard.supervisor.gang`
watches and ends a run's processes with these.

A run's processes are found three ways, because each alone can miss some: the descendants
of the process we started (psutil follows parent links, including children that moved to
another session), the members of its process group, and any process whose environment
carries ``RUNYARD_RUN_ID=<run id>`` (which also finds daemonized grandchildren re-parented
to init, and is how a reaper finds them after the supervisor itself died).

Looking at every process's environment costs a read per process on the machine, at the end
of every run. The supervisor of a run does not need it (:func:`run_processes`): a process
of the run whose parent died is re-parented to the nearest "child subreaper" among its
ancestors, or to init, and its ancestors are the run's processes, then the supervisor and
the supervisor's own ancestors. So the run's processes are the descendants of its live
processes and of those children of the supervisor's ancestors (and of itself) that belong
to the run (its process group, or its variable). A process that only supervises (a detached
supervisor, a pool worker) becomes a subreaper itself (:func:`become_subreaper`): then the
run's orphans are its own children, and it reaps them (:func:`reap_orphans`). Linux lists a
process's children in ``/proc/PID/task/TID/children``; where it does not, the full search is
used.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path

import psutil

#: The variable every user process of a run inherits; it names the run.
RUN_ID_VAR = "RUNYARD_RUN_ID"


def spawn(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session (its own process group, no controlling terminal),
    with stdout and stderr appended straight to ``log_path`` (a file, not a pipe, so the
    child never blocks on, or dies of, a reader that went away)."""
    with open(log_path, "ab", buffering=0) as log:  # noqa: PTH123 - a raw fd for the child
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )


def describe_exit(returncode: int, *, shell: bool = False) -> tuple[int, str]:
    """(exit code to record, reason) for a child's ``Popen.returncode``.

    A negative return code is death by a signal: recorded as ``128 + signum`` (what a shell
    would report) with the signal named. Under ``/bin/sh -c`` a child killed by a signal
    makes the shell exit with ``128 + signum``; the reason then says so as a hint."""
    if returncode < 0:
        return 128 - returncode, f"killed by signal {signal_name(-returncode)}"
    reason = f"exit code {returncode}"
    if shell and 128 < returncode < 128 + 65:
        reason += f" (the shell's child was killed by signal {signal_name(returncode - 128)}?)"
    return returncode, reason


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def find_tree(
    *,
    root_pid: int | None = None,
    pgid: int | None = None,
    run_id: str | None = None,
    confirm_group: bool = False,
) -> list[psutil.Process]:
    """The live processes of a run: descendants of ``root_pid`` (and itself), members of
    process group ``pgid`` and processes whose environment names ``run_id``.

    With ``confirm_group``, members of ``pgid`` count only if at least one of them carries
    the run's variable: a reaper uses it, because a process group id recorded long ago may
    have been reused by an unrelated program."""
    me = os.getpid()
    found: dict[int, psutil.Process] = {}
    if root_pid is not None:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(root_pid)
            found[root.pid] = root
            for child in root.children(recursive=True):
                found[child.pid] = child
    if pgid is None and run_id is None:
        return [p for pid, p in found.items() if pid != me]
    group: list[psutil.Process] = []
    confirmed = not confirm_group
    for proc in psutil.process_iter():
        if proc.pid == me or proc.pid in found:
            continue
        try:
            in_group = pgid is not None and os.getpgid(proc.pid) == pgid
            if in_group or run_id is not None:
                marked = run_id is not None and _carries(proc, run_id)
                if marked:
                    found[proc.pid] = proc
                    confirmed = confirmed or in_group
                elif in_group:
                    group.append(proc)
        except (OSError, psutil.Error):
            continue
    if confirmed:
        found.update((p.pid, p) for p in group)
    return list(found.values())


def run_processes(
    roots: Iterable[int], run_id: str, *, pgids: Collection[int], since: float
) -> list[psutil.Process]:
    """The live processes of a run supervised by this process: ``roots`` (its processes
    not yet reaped), their descendants, and the run's processes that were re-parented
    (those in one of ``pgids`` or carrying ``run_id``; the latter only when started after
    ``since``, seconds since the epoch). See the module's docs."""
    roots = list(roots)
    if not _lists_children():
        found: dict[int, psutil.Process] = {}
        for pid in roots:
            found.update((p.pid, p) for p in find_tree(root_pid=pid, pgid=pid))
        found.update((p.pid, p) for p in find_tree(run_id=run_id))
        return list(found.values())
    me = os.getpid()
    adopters = [me] if _This.subreaper else [me, *_ancestors(me)]
    seeds = set(roots)
    for adopter in adopters:
        for pid in _children(adopter):
            if pid not in seeds and pid not in adopters and _belongs(pid, run_id, pgids, since):
                seeds.add(pid)
    pending, seen = list(seeds), set(seeds)
    while pending:
        for child in _children(pending.pop()):
            if child not in seen:
                seen.add(child)
                pending.append(child)
    procs = []
    for pid in seen - {me}:
        with contextlib.suppress(psutil.Error):
            procs.append(psutil.Process(pid))
    return procs


class _This:
    """This process: whether it is its descendants' child subreaper (:func:`become_subreaper`)."""

    subreaper = False


#: ``prctl`` option (linux/prctl.h).
_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make this process the child subreaper of its descendants (Linux): a descendant whose
    parent dies is re-parented here rather than to init. Only for a process that does
    nothing but supervise: it must reap what comes to it (:func:`reap_orphans`). Returns
    whether it is one now."""
    if not _This.subreaper and _lists_children():
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            _This.subreaper = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    return _This.subreaper


def reap_orphans(keep: Collection[int] = ()) -> int:
    """Collect the exit status of this subreaper's children that have ended, but those in
    ``keep`` (children whose ``Popen`` collects it); how many. Call when no other code of
    this process waits for a child."""
    reaped = 0
    if not _This.subreaper:
        return reaped
    for pid in _children(os.getpid()):
        if pid not in keep:
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    reaped += 1
    return reaped


@functools.cache
def _lists_children() -> bool:
    """Whether the kernel lists children in /proc (``CONFIG_PROC_CHILDREN``)."""
    return Path(f"/proc/self/task/{threading.get_native_id()}/children").exists()


def _children(pid: int) -> list[int]:
    """The pids of ``pid``'s children (none once it is gone)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")  # noqa: PTH208 - names only, many calls
    except OSError:
        return found
    for tid in tasks:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/children", "rb") as f:  # noqa: PTH123
            found.extend(int(child) for child in f.read().split())
    return found


def _ancestors(pid: int) -> list[int]:
    """The parent of ``pid``, its parent, ... up to init."""
    chain: list[int] = []
    while pid > 1:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:  # noqa: PTH123
                stat = f.read()
        except OSError:
            break
        pid = int(stat[stat.rindex(b")") + 2 :].split()[1])  # after "pid (comm) state"
        if pid <= 0:
            break
        chain.append(pid)
    return chain


def _belongs(pid: int, run_id: str, pgids: Collection[int], since: float) -> bool:
    try:
        if os.getpgid(pid) in pgids:
            return True
        proc = psutil.Process(pid)
        return proc.create_time() >= since - 1.0 and _carries(proc, run_id)
    except (OSError, psutil.Error):
        return False


def _carries(proc: psutil.Process, run_id: str) -> bool:
    try:
        return proc.environ().get(RUN_ID_VAR) == run_id
    except (psutil.Error, OSError):
        return False


def terminate_tree(
    procs: Iterable[psutil.Process],
    *,
    grace: float,
    pgid: int | None = None,
    kill_now: bool = False,
) -> list[psutil.Process]:
    """SIGTERM ``procs`` and the process group ``pgid``, wait up to ``grace`` seconds for
    them to end, then SIGKILL the group and whatever is left. Returns the processes that
    had to be killed.

    The caller captures ``procs`` *before* calling; a child forked while the tree is being
    stopped is in the process group, which gets both signals. Nothing here reaps: the
    caller's own child stays a zombie for its ``Popen.wait`` to collect the status."""
    procs = list(procs)
    if not kill_now:
        signal_all(procs, pgid, signal.SIGTERM)
        if wait_gone(procs, grace) and pgid is None:
            return []
    alive = [p for p in procs if is_alive(p)]
    signal_all(alive, pgid, signal.SIGKILL)
    wait_gone(alive, 2.0)
    return alive


def signal_all(procs: list[psutil.Process], pgid: int | None, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group ``pgid`` and to each of ``procs`` still alive."""
    if pgid is not None:
        with contextlib.suppress(OSError):
            os.killpg(pgid, sig)
    for proc in procs:
        with contextlib.suppress(psutil.Error, OSError):
            proc.send_signal(sig)  # psutil checks the pid still is this process


def wait_gone(procs: Iterable[psutil.Process], timeout: float) -> bool:
    """Whether every process in ``procs`` has ended (zombies count as ended) in time."""
    deadline = time.monotonic() + timeout
    procs = list(procs)
    while True:
        alive = [p for p in procs if is_alive(p)]
        if not alive:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def is_alive(proc: psutil.Process) -> bool:
    """Whether ``proc`` is still running (a zombie is not)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
