"""The supervisor's parts, each on its own: process trees, log tailing and syncing, the
periodic thread, system metrics."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest
from sv_helpers import Waiter, alive

from runyard.artifacts import LocalArtifactStore
from runyard.launch import LaunchPlan, Placement, ProcessPlan, plan_launch
from runyard.spec import JobSpec
from runyard.supervisor import process
from runyard.supervisor.background import Periodic
from runyard.supervisor.gang import Gang
from runyard.supervisor.logsync import FolderSync, LogTail, tail_text
from runyard.supervisor.process import (
    describe_exit,
    find_tree,
    run_processes,
    spawn,
    terminate_tree,
)
from runyard.supervisor.sysmetrics import SystemSampler


@pytest.mark.parametrize(
    ("returncode", "shell", "expected"),
    [
        (0, False, (0, "exit code 0")),
        (3, False, (3, "exit code 3")),
        (-9, False, (137, "killed by signal SIGKILL")),
        (-15, True, (143, "killed by signal SIGTERM")),
        (137, False, (137, "exit code 137")),
        (137, True, (137, "exit code 137 (the shell's child was killed by signal SIGKILL?)")),
    ],
)
def test_describe_exit(returncode: int, shell: bool, expected: tuple[int, str]) -> None:
    assert describe_exit(returncode, shell=shell) == expected


def test_spawn_starts_a_new_session_with_output_in_the_log(tmp_path: Path) -> None:
    log = tmp_path / "std_log.txt"
    log.write_text("before\n")
    proc = spawn(
        [
            sys.executable,
            "-c",
            "import os, sys; print(os.getsid(0)); print('err', file=sys.stderr)",
        ],
        cwd=tmp_path,
        env={**os.environ, "X": "1"},
        log_path=log,
    )
    assert proc.wait(timeout=10) == 0
    lines = log.read_text().splitlines()
    assert lines[0] == "before"
    assert int(lines[1]) == proc.pid  # its own session and process group
    assert lines[2] == "err"


def test_terminate_tree_ends_children_that_ignore_sigterm(tmp_path: Path, wait: Waiter) -> None:
    pid_file = tmp_path / "grandchild"
    (tmp_path / "grandchild.py").write_text(
        "import os, pathlib, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))\n"
        "time.sleep(60)\n"
    )
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "subprocess.Popen([sys.executable, 'grandchild.py'], start_new_session=True)\n"
        "time.sleep(60)\n"
    )
    proc = spawn(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=dict(os.environ),
        log_path=tmp_path / "log",
    )
    try:
        wait(pid_file.exists, what="the grandchild")
        grandchild = int(pid_file.read_text())
        tree = find_tree(root_pid=proc.pid, pgid=proc.pid)
        assert {p.pid for p in tree} >= {proc.pid, grandchild}
        started = time.monotonic()
        killed = terminate_tree(tree, grace=0.5, pgid=proc.pid)
        assert 0.5 <= time.monotonic() - started < 3
        assert {p.pid for p in killed} >= {proc.pid, grandchild}
        assert proc.wait(timeout=5) == -signal.SIGKILL
        assert not alive(grandchild)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_find_tree_finds_processes_by_the_run_variable(tmp_path: Path) -> None:
    env = {**os.environ, "RUNYARD_RUN_ID": "run-under-test"}
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        # A group id that is not the run's (the other process's) is ignored when confirming.
        found = find_tree(run_id="run-under-test", pgid=os.getpgid(other.pid), confirm_group=True)
        pids = {p.pid for p in found}
        assert proc.pid in pids and other.pid not in pids
    finally:
        for p in (proc, other):
            p.kill()
            p.wait()


ORPHANS = """
import os, pathlib, signal, subprocess, sys, time
pids = pathlib.Path(sys.argv[1])
def note(name):
    (pids / f"{name}.tmp").write_text(str(os.getpid()))
    (pids / f"{name}.tmp").rename(pids / name)
# In a session of its own, ignoring SIGTERM; its parent exits: only the variable finds it.
subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                  "signal.SIG_IGN); time.sleep(60)"], start_new_session=True)
if os.fork() == 0:  # a daemon (double fork) in the run's group, with a child of its own
    if os.fork() == 0:
        if os.fork() == 0:
            note("daemon-child")
            time.sleep(60)
        note("daemon")
        time.sleep(60)
    os._exit(0)
while len(list(pids.iterdir())) < 2:
    time.sleep(0.01)
"""


@pytest.mark.parametrize("lists_children", [True, False])
def test_run_processes_finds_what_an_exited_run_left(
    lists_children: bool, tmp_path: Path, wait: Waiter, monkeypatch: pytest.MonkeyPatch
) -> None:
    if lists_children and not process._lists_children():
        pytest.skip("this kernel does not list children in /proc")
    monkeypatch.setattr(process, "_lists_children", lambda: lists_children)
    pids = tmp_path / "pids"
    pids.mkdir()
    since = time.time()
    env = {**os.environ, "RUNYARD_RUN_ID": "run-under-test"}
    leader = subprocess.Popen(
        [sys.executable, "-c", ORPHANS, str(pids)], env=env, start_new_session=True
    )
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    left: list[int] = []
    try:
        wait(lambda: leader.poll() is not None or None, what="the leader to exit")
        left = [int((pids / n).read_text()) for n in ("daemon", "daemon-child")]
        setsid = [p.pid for p in find_tree(run_id="run-under-test") if p.pid not in left]
        assert len(setsid) == 1  # the SIGTERM-ignoring one, found by its variable
        left += setsid
        found = {
            p.pid for p in run_processes([], "run-under-test", pgids=[leader.pid], since=since)
        }
        assert set(left) <= found
        assert unrelated.pid not in found and os.getpid() not in found
    finally:
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        unrelated.kill()
        unrelated.wait()


SUBREAPER = """
import os, signal, subprocess, sys, time
from runyard.supervisor import process
assert process.become_subreaper()
pids, orphans = sys.argv[1], sys.argv[2]
env = {**os.environ, "RUNYARD_RUN_ID": "run-under-test"}
leader = subprocess.Popen([sys.executable, "-c", orphans, pids], env=env, start_new_session=True)
leader.wait()
left = {int(open(os.path.join(pids, n)).read()) for n in ("daemon", "daemon-child")}
found = process.run_processes([], "run-under-test", pgids=[leader.pid], since=0)
live = {p.pid for p in found if process.is_alive(p)}  # not the zombie of the middle fork
assert left <= live and len(live) == 3, (left, live)  # and the one in its own session
for pid in live:
    os.kill(pid, signal.SIGKILL)
deadline = time.time() + 10
while process._children(os.getpid()) and time.time() < deadline:
    process.reap_orphans()  # the orphans are this process's children: none is left a zombie
    time.sleep(0.01)
assert not process._children(os.getpid())
"""


def test_a_subreaper_finds_and_reaps_the_orphans_of_its_runs(tmp_path: Path) -> None:
    if not process._lists_children():
        pytest.skip("this kernel does not list children in /proc")
    pids = tmp_path / "pids"
    pids.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", SUBREAPER, str(pids), ORPHANS],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_log_tail_echoes_complete_lines_then_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "log"
    seen: list[str] = []
    tail = LogTail(path, seen.append)
    tail.poll()  # no file yet
    with path.open("ab", buffering=0) as f:
        f.write(b"one\ntw")
        tail.poll()
        assert seen == ["one"]
        f.write(b"o\r\nthree")
        tail.poll()
        assert seen == ["one", "two"]
    tail.drain()
    assert seen == ["one", "two", "three"]


def test_tail_text_keeps_the_last_lines(tmp_path: Path) -> None:
    path = tmp_path / "log"
    assert tail_text(path) is None
    path.write_text("".join(f"line {i}\n" for i in range(100)))
    assert tail_text(path, lines=3) == "line 97\nline 98\nline 99"
    assert tail_text(path, lines=3, max_bytes=20) == "line 98\nline 99"


def test_folder_sync_copies_only_what_changed(tmp_path: Path, wait: Waiter) -> None:
    local = tmp_path / "logs"
    (local / "sub").mkdir(parents=True)
    store = LocalArtifactStore(tmp_path / "artifacts")
    sync = FolderSync(store, "r1", local, "logs")
    (local / "a.txt").write_text("a")
    (local / "sub" / "b.txt").write_text("bb")
    assert sorted((i.path, i.size) for i in sync.sync()) == [
        ("logs/a.txt", 1),
        ("logs/sub/b.txt", 2),
    ]
    assert sync.sync() == []
    (local / "a.txt").write_text("aaa")
    assert [(i.path, i.size) for i in sync.sync(force=True)] == [("logs/a.txt", 3)]
    assert (tmp_path / "artifacts" / "r1" / "logs" / "a.txt").read_text() == "aaa"
    (local / "a.txt").write_text("aaaa")  # copied again once its (short) backoff is over
    copied = wait(sync.sync, timeout=5, what="the changed file to be copied")
    assert [(i.path, i.size) for i in copied] == [("logs/a.txt", 4)]
    assert sync.sync_one("../outside.txt") is None
    assert sync.sync_one("missing.txt") is None


def test_folder_sync_follows_links_to_files_not_to_folders(tmp_path: Path) -> None:
    local = tmp_path / "outputs"
    (local / "deep" / "er").mkdir(parents=True)
    (local / "deep" / "er" / "c.bin").write_bytes(b"ccc")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "big.bin").write_bytes(b"x" * 10)
    (local / "linked-folder").symlink_to(elsewhere, target_is_directory=True)
    (local / "linked-file.bin").symlink_to(elsewhere / "big.bin")
    (local / "dangling").symlink_to(tmp_path / "missing")
    sync = FolderSync(LocalArtifactStore(tmp_path / "artifacts"), "r1", local, "outputs")
    assert sync.pending() == 13
    assert [(i.path, i.size) for i in sync.sync()] == [
        ("outputs/deep/er/c.bin", 3),
        ("outputs/linked-file.bin", 10),
    ]
    assert sync.pending() == 0


def test_periodic_runs_jobs_and_survives_errors() -> None:
    warnings: list[str] = []
    calls: list[str] = []
    periodic = Periodic(warnings.append)
    done = threading.Event()

    def good() -> float | None:
        calls.append("good")
        if len(calls) >= 3:
            done.set()
        return None

    def bad() -> None:
        raise RuntimeError("nope")

    periodic.add("bad", 0.01, bad, first=0.0)
    periodic.add("good", 0.01, good, first=0.0)
    assert done.wait(5)
    periodic.stop()
    assert warnings and warnings[0] == "bad failed: RuntimeError: nope"


def test_periodic_stop_waits_for_its_running_job_and_leaves_others_running() -> None:
    calls: list[str] = []
    inside = threading.Event()

    def slow() -> None:
        calls.append("slow starts")
        inside.set()
        time.sleep(0.3)
        calls.append("slow ends")

    warnings: list[str] = []
    mine, other = Periodic(warnings.append), Periodic(warnings.append)
    others = threading.Semaphore(0)
    other.add("other", 0.01, others.release, first=0.0)
    mine.add("slow", 0.01, slow, first=0.0)
    assert inside.wait(5)
    mine.stop()
    assert calls[-1] == "slow ends"  # stop returned once the job had ended
    stopped_at = len(calls)
    mine.add("again", 0.01, lambda: calls.append("again"), first=0.0)  # ignored once stopped
    for _ in range(3):
        assert others.acquire(timeout=5)  # the other Periodic's job still runs
    other.stop()
    assert len(calls) == stopped_at
    assert warnings == []


def test_periodic_jobs_may_remove_themselves() -> None:
    warnings: list[str] = []
    periodic = Periodic(warnings.append)
    ran = threading.Semaphore(0)

    def once() -> None:
        periodic.remove("once")
        ran.release()

    periodic.add("once", 0.01, once, first=0.0)
    assert ran.acquire(timeout=5)
    assert not ran.acquire(timeout=0.2)
    periodic.stop()
    assert warnings == []


def test_periodic_works_in_a_forked_child(tmp_path: Path) -> None:
    script = """
        import os, sys, threading
        from runyard.supervisor.background import Periodic
        first = threading.Event()
        Periodic(print).add("parent", 0.01, first.set, first=0.0)
        assert first.wait(5)  # the shared thread runs in the parent
        pid = os.fork()
        if pid == 0:
            ran = threading.Event()
            Periodic(print).add("child", 0.01, ran.set, first=0.0)
            os._exit(0 if ran.wait(5) else 3)
        sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    """
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], timeout=30, check=False)
    assert done.returncode == 0


def test_system_sampler_measures_the_process_tree() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "x = bytearray(80 * 1024 * 1024)\nwhile True: pass"]
    )
    try:
        sampler = SystemSampler(proc.pid, gpus=False)
        time.sleep(0.5)
        values = sampler.sample()
        assert values["system/process_rss_mb"] > 80
        assert values["system/process_cpu_percent"] > 20
        assert 0 <= values["system/cpu_percent"] <= 100
        assert values["system/memory_used_mb"] > 0
        assert not any("gpu" in k for k in values)
        sampler.close()
    finally:
        proc.kill()
        proc.wait()


def test_system_sampler_reads_gpus_through_nvidia_smi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in nvidia-smi that answers the query the way the real one does.
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        'test "$1" = "--query-gpu=utilization.gpu,memory.used" || exit 9\n'
        'test "$2" = "--format=csv,noheader,nounits" || exit 9\n'
        "echo '87, 40536'\n"
        "echo '[N/A], 12'\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setitem(sys.modules, "pynvml", None)  # NVML unavailable: use the CLI
    sampler = SystemSampler()
    values = sampler.sample()
    sampler.close()
    assert values["system/gpu0_utilization"] == 87.0
    assert values["system/gpu0_memory_used_mb"] == 40536.0
    assert values["system/gpu1_memory_used_mb"] == 12.0
    assert values["system/gpu1_utilization"] != values["system/gpu1_utilization"]  # NaN
    assert "system/process_rss_mb" not in values


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "waitid"])
def test_the_gang_watch_sees_the_exit_without_reaping(pidfd: bool, tmp_path: Path) -> None:
    argv = (sys.executable, "-c", "import sys; sys.exit(5)")
    plan = plan_launch(JobSpec(command=argv), Placement.local(), argv=argv)
    gang = Gang.start(plan, "no-such-run", cwd=tmp_path, env=dict(os.environ), logs=tmp_path)
    (proc,) = (m.proc for m in gang.members)
    watch = gang.watch()
    if not pidfd:
        watch.close()  # without a pidfd it polls waitid(WNOWAIT)
    try:
        deadline = time.monotonic() + 10
        while not watch.wait(0.05):
            assert time.monotonic() < deadline
        assert proc.returncode is None
        assert psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE  # not reaped yet
    finally:
        watch.close()
        gang.end(0.0)
    assert proc.returncode == 5
    assert gang.finish().reason == "exit code 5"


def test_when_mpirun_names_no_rank_the_error_is_the_rank_log_written_last(
    tmp_path: Path,
) -> None:
    # An mpirun that dies without naming the failing rank (as Open MPI 4.1 sometimes does
    # under load): rank 1 spoke last, so its log explains the failure.
    fake_mpirun = (
        "import pathlib, sys, time; logs = pathlib.Path(sys.argv[1]);"
        "(logs / 'std_log_process_0.txt').write_text('rank 0 up');"
        "time.sleep(0.05);"
        "(logs / 'std_log_process_1.txt').write_text('rank 1: out of memory');"
        "print('ORTE_ERROR_LOG: Out of resource in file show_help.c'); sys.exit(1)"
    )
    launcher = ProcessPlan(
        name="mpirun", role="launcher", rank=None, node_rank=0, local_rank=None,
        host="127.0.0.1", argv=(sys.executable, "-c", fake_mpirun, str(tmp_path)), env={},
        log_name="mpi_log.txt",
    )  # fmt: skip
    plan = LaunchPlan(
        kind="mpi", world_size=2, nnodes=1, processes=(launcher,),
        rank_logs={0: "std_log_process_0.txt", 1: "std_log_process_1.txt"},
    )  # fmt: skip
    gang = Gang.start(plan, "no-such-run", cwd=tmp_path, env=dict(os.environ), logs=tmp_path)
    watch = gang.watch()
    try:
        while not watch.wait(0.05):
            pass
    finally:
        watch.close()
        gang.end(0.0)
    outcome = gang.finish()
    assert outcome.reason == "mpirun exited with code 1"
    assert outcome.log == tmp_path / "std_log_process_1.txt"
    assert json.loads((tmp_path / "ranks.json").read_text())["failed"]["rank"] is None
