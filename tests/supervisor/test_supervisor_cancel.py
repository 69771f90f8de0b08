"""Cancel while Queued, Preparing, Starting and Running; timeouts. The runs under test run
in detached supervisors (separate processes) unless the step needs a hook."""

from __future__ import annotations

import time
from pathlib import Path

from sv_helpers import RunMaker, Waiter, WorkspaceMaker, alive

from runyard.backends.local import LocalBackend
from runyard.records import Run, RunStatus
from runyard.supervisor import Supervisor
from runyard.workspace import Resources

# Writes its pid to PID_FILE, then sleeps (optionally ignoring SIGTERM).
SLEEPER = """
    import os, pathlib, signal, time
    if {ignore_term}:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pathlib.Path({pid_file!r}).write_text(str(os.getpid()))
    time.sleep(120)
"""


def sleeper(pid_file: Path, *, ignore_term: bool = False) -> str:
    return SLEEPER.format(pid_file=str(pid_file), ignore_term=ignore_term)


def history(ws: Resources, run_id: str) -> list[RunStatus]:
    return [c.status for c in ws.store.status_history(run_id)]


def terminal(ws: Resources, run_id: str) -> Run | None:
    run = ws.store.get_run(run_id)
    return run if run.status.is_terminal else None


def test_cancel_while_queued(
    make_workspace: WorkspaceMaker, new_run: RunMaker, wait: Waiter, tmp_path: Path
) -> None:
    ws = make_workspace(local_slots=1)
    backend = LocalBackend(ws)
    blocker = new_run(ws, sleeper(tmp_path / "blocker.pid"))
    backend.submit(blocker.id)
    wait(lambda: (tmp_path / "blocker.pid").exists(), what="the blocker to run")

    queued = new_run(ws, "print('must not run')\n")
    backend.submit(queued.id)
    log = ws.layout.supervisor_log(queued.id)
    wait(lambda: log.exists() and "waiting for a slot" in log.read_text(), what="waiting")

    canceled = backend.cancel(queued.id, "not needed")
    assert canceled.status is RunStatus.CANCELED
    assert canceled.reason == "not needed"
    assert history(ws, queued.id) == [RunStatus.QUEUED, RunStatus.CANCELED]
    pid = ws.store.get_run(queued.id).supervisor_pid
    assert pid is not None
    wait(lambda: not alive(pid), timeout=5, what="the queued run's supervisor to exit")
    assert not ws.layout.work_dir(queued.id).exists()

    backend.cancel(blocker.id)
    final = wait(lambda: terminal(ws, blocker.id), what="the blocker to end")
    assert final.status is RunStatus.CANCELED


def test_cancel_while_preparing(ws: Resources, new_run: RunMaker, tmp_path: Path) -> None:
    # The request arrives through the store the moment the run enters Preparing (the
    # status callback is the hook; another process's cancel goes the same way).
    marker = tmp_path / "ran"
    run = new_run(ws, f"open({str(marker)!r}, 'w').close()\n")

    def on_status(current: Run) -> None:
        if current.status is RunStatus.PREPARING:
            ws.store.request_cancel(current.id, "canceled while preparing")

    final = Supervisor(ws, run.id, on_status=on_status).execute()
    assert final.status is RunStatus.CANCELED
    assert final.reason == "canceled while preparing"
    assert history(ws, run.id) == [RunStatus.QUEUED, RunStatus.PREPARING, RunStatus.CANCELED]
    assert not marker.exists()


def test_cancel_while_running_ends_a_child_that_ignores_sigterm(
    ws: Resources, new_run: RunMaker, wait: Waiter, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child.pid"
    run = new_run(ws, sleeper(pid_file, ignore_term=True))
    backend = LocalBackend(ws)
    backend.submit(run.id)
    wait(pid_file.exists, what="the child to start")
    child = int(pid_file.read_text())

    asked = time.monotonic()
    backend.cancel(run.id)
    final = wait(lambda: terminal(ws, run.id), what="the run to end")
    latency = time.monotonic() - asked
    assert final.status is RunStatus.CANCELED
    assert final.reason == "canceled by user"
    assert final.exit_code == 128 + 9  # it took SIGKILL
    assert 1.0 <= latency < 4.0  # kill_grace is 1 s
    assert not alive(child)
    assert "SIGKILL" in ws.layout.supervisor_log(run.id).read_text()
    assert history(ws, run.id)[-3:] == [
        RunStatus.RUNNING,
        RunStatus.FINALIZING,
        RunStatus.CANCELED,
    ]


def test_cancel_ends_the_whole_tree(
    ws: Resources, new_run: RunMaker, wait: Waiter, tmp_path: Path
) -> None:
    # The child starts a grandchild in a new session that ignores SIGTERM, and a daemon
    # (double fork) that is re-parented away from the tree: all three must end.
    pids = tmp_path / "pids"
    pids.mkdir()
    run = new_run(
        ws,
        f"""
        import os, pathlib, signal, subprocess, sys, time
        pids = pathlib.Path({str(pids)!r})
        grandchild = (
            "import os, pathlib, signal, time;"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN);"
            f"pathlib.Path({{str(pids)!r}}, 'grandchild').write_text(str(os.getpid()));"
            "time.sleep(120)"
        )
        subprocess.Popen([sys.executable, "-c", grandchild], start_new_session=True)
        if os.fork() == 0:
            if os.fork() == 0:
                (pids / "daemon").write_text(str(os.getpid()))
                time.sleep(120)
            os._exit(0)
        (pids / "child").write_text(str(os.getpid()))
        time.sleep(120)
        """,
    )
    backend = LocalBackend(ws)
    backend.submit(run.id)
    names = ("child", "grandchild", "daemon")
    wait(lambda: all((pids / n).exists() for n in names), what="the tree to start")
    found = {n: int((pids / n).read_text()) for n in names}
    assert all(alive(p) for p in found.values())

    backend.cancel(run.id)
    final = wait(lambda: terminal(ws, run.id), what="the run to end")
    assert final.status is RunStatus.CANCELED
    wait(lambda: not any(alive(p) for p in found.values()), timeout=3, what="the tree to end")


def test_a_child_that_stops_gracefully_on_sigterm_keeps_what_it_logged(
    ws: Resources, new_run: RunMaker, wait: Waiter, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    run = new_run(
        ws,
        f"""
        import pathlib, signal, sys, time, runyard
        def stop(signum, frame):
            runyard.log_metric("saved", 1.0)
            pathlib.Path("outputs/checkpoint.txt").write_text("state")
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        pathlib.Path({str(started)!r}).touch()
        time.sleep(120)
        """,
    )
    backend = LocalBackend(ws)
    backend.submit(run.id)
    wait(started.exists, what="the child to start")
    asked = time.monotonic()
    backend.cancel(run.id, "stop please")
    final = wait(lambda: terminal(ws, run.id), what="the run to end")
    assert time.monotonic() - asked < 2.0  # no grace period wasted
    assert final.status is RunStatus.CANCELED
    assert final.reason == "stop please"
    assert final.metrics["saved"] == 1.0
    assert "outputs/checkpoint.txt" in {a.path for a in ws.store.list_artifacts(run.id)}


def test_a_cancel_sends_each_process_sigterm_once(
    ws: Resources, new_run: RunMaker, wait: Waiter, tmp_path: Path
) -> None:
    started, terms = tmp_path / "started", tmp_path / "terms"
    run = new_run(
        ws,
        f"""
        import pathlib, signal, sys, time
        asked = []
        def term(signum, frame):
            with open({str(terms)!r}, "a") as f:
                f.write("SIGTERM\\n")
            asked.append(time.monotonic())
        signal.signal(signal.SIGTERM, term)
        pathlib.Path({str(started)!r}).touch()
        while not asked or time.monotonic() - asked[0] < 0.5:  # any second one comes by then
            time.sleep(0.01)
        sys.exit(0)
        """,
    )
    backend = LocalBackend(ws)
    backend.submit(run.id)
    wait(started.exists, what="the child to start")
    backend.cancel(run.id, "once is enough")
    final = wait(lambda: terminal(ws, run.id), what="the run to end")
    assert final.status is RunStatus.CANCELED
    assert terms.read_text() == "SIGTERM\n"


def test_timeout_cancels_the_run_with_the_reason(
    ws: Resources, new_run: RunMaker, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child.pid"
    run = new_run(ws, sleeper(pid_file), limits={"timeout": 1.0})
    started = time.monotonic()
    final = Supervisor(ws, run.id).execute()
    assert 1.0 <= time.monotonic() - started < 4.0
    assert final.status is RunStatus.CANCELED
    assert final.reason == "timeout after 1s"
    assert not alive(int(pid_file.read_text()))
