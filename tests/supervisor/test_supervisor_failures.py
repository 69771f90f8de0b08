"""Failures of the training process and of the supervisor itself, with real kill -9."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from sv_helpers import RunMaker, Waiter, WorkspaceMaker, alive

from runyard.backends.local import LocalBackend
from runyard.records import Run, RunStatus
from runyard.supervisor import reap_lost
from runyard.workspace import Resources

POINTS = 300

LOG_THEN_SLEEP = """
    import os, pathlib, time, runyard
    for step in range({points}):
        runyard.log_metric("loss", 1.0 / (step + 1), step)
    runyard.log_params({{"points": {points}}})
    pathlib.Path({pid_file!r}).write_text(str(os.getpid()))
    time.sleep(120)
"""


def log_then_sleep(pid_file: Path) -> str:
    return LOG_THEN_SLEEP.format(points=POINTS, pid_file=str(pid_file))


def terminal(ws: Resources, run_id: str) -> Run | None:
    run = ws.store.get_run(run_id)
    return run if run.status.is_terminal else None


def test_kill_9_of_the_training_process_keeps_every_metric(
    ws: Resources, new_run: RunMaker, wait: Waiter, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child.pid"
    run = new_run(ws, log_then_sleep(pid_file))
    LocalBackend(ws).submit(run.id)
    wait(pid_file.exists, what="the child to log and start sleeping")
    child = int(pid_file.read_text())
    assert ws.store.process_group(run.id) == child  # a list command: python leads the group

    os.kill(child, signal.SIGKILL)
    final = wait(lambda: terminal(ws, run.id), what="the run to end")
    assert final.status is RunStatus.FAILED
    assert final.reason == "killed by signal SIGKILL"
    assert final.exit_code == 137
    history = ws.store.metric_history(run.id, "loss")
    assert [p.step for p in history] == list(range(POINTS))
    assert history[-1].value == 1.0 / POINTS
    assert final.params == {"points": str(POINTS)}
    assert "logs/std_log.txt" in {a.path for a in ws.store.list_artifacts(run.id)}


def test_kill_9_of_the_supervisor_marks_the_run_lost_and_ends_its_processes(
    ws: Resources, new_run: RunMaker, wait: Waiter, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child.pid"
    run = new_run(ws, log_then_sleep(pid_file))
    LocalBackend(ws).submit(run.id)
    wait(pid_file.exists, what="the child to start")
    child = int(pid_file.read_text())
    supervisor = ws.store.get_run(run.id).supervisor_pid
    assert supervisor is not None and supervisor != os.getpid()

    os.kill(supervisor, signal.SIGKILL)
    wait(lambda: not alive(supervisor), timeout=5, what="the supervisor to die")
    assert alive(child)  # the user process outlives its supervisor ...
    killed_at = time.monotonic()
    assert reap_lost(ws) == [run.id]  # ... until a reaper notices (the CLI reaps first)
    final = ws.store.get_run(run.id)
    assert final.status is RunStatus.FAILED
    assert final.reason is not None and final.reason.startswith("lost: supervisor process")
    wait(lambda: not alive(child), timeout=3, what="the orphaned child to be ended")
    assert time.monotonic() - killed_at < ws.settings.heartbeat_timeout
    assert reap_lost(ws) == []


def test_a_frozen_supervisor_is_lost_once_its_heartbeat_is_stale(
    ws: Resources, new_run: RunMaker, wait: Waiter, tmp_path: Path
) -> None:
    # SIGSTOP: the process exists but beats no more, as after a machine suspend, or as a
    # run on another host looks after a restart.
    pid_file = tmp_path / "child.pid"
    run = new_run(ws, log_then_sleep(pid_file))
    LocalBackend(ws).submit(run.id)
    wait(pid_file.exists, what="the child to start")
    child = int(pid_file.read_text())
    supervisor = ws.store.get_run(run.id).supervisor_pid
    assert supervisor is not None

    os.kill(supervisor, signal.SIGSTOP)
    try:
        frozen_at = time.monotonic()
        lost = wait(lambda: reap_lost(ws), timeout=10, what="the run to be reaped")
        assert lost == [run.id]
        elapsed = time.monotonic() - frozen_at
        timeout = ws.settings.heartbeat_timeout
        assert timeout - 0.5 <= elapsed <= timeout + 2
        final = ws.store.get_run(run.id)
        assert final.status is RunStatus.FAILED
        assert final.reason is not None and final.reason.startswith("lost: supervisor heartbeat")
        wait(lambda: not alive(child), timeout=3, what="the child to be ended")
    finally:
        os.kill(supervisor, signal.SIGCONT)
    # Thawed, the supervisor finds its run ended elsewhere and leaves without changing it.
    wait(lambda: not alive(supervisor), timeout=10, what="the thawed supervisor to exit")
    assert ws.store.get_run(run.id).reason == final.reason
    assert "run was ended elsewhere" in ws.layout.supervisor_log(run.id).read_text()


def test_a_queued_run_whose_supervisor_died_does_not_block_the_queue(
    make_workspace: WorkspaceMaker, new_run: RunMaker, wait: Waiter, tmp_path: Path
) -> None:
    ws = make_workspace(local_slots=1)
    backend = LocalBackend(ws)
    blocker = new_run(ws, log_then_sleep(tmp_path / "blocker.pid"))
    backend.submit(blocker.id)
    wait((tmp_path / "blocker.pid").exists, what="the blocker to run")
    orphan = new_run(ws, "print('never')\n")
    backend.submit(orphan.id)
    behind = new_run(ws, "print('ran')\n")
    backend.submit(behind.id)
    orphan_pid = ws.store.get_run(orphan.id).supervisor_pid
    assert orphan_pid is not None

    os.kill(orphan_pid, signal.SIGKILL)
    wait(lambda: not alive(orphan_pid), timeout=5, what="the supervisor to die")
    # The supervisor waiting behind it reaps it while it waits.
    final = wait(lambda: terminal(ws, orphan.id), what="the orphan to be reaped")
    assert final.status is RunStatus.FAILED
    assert final.reason == f"lost: supervisor (pid {orphan_pid}) died while queued"

    backend.cancel(blocker.id)
    done = wait(lambda: terminal(ws, behind.id), timeout=15, what="the last run to run")
    assert done.status is RunStatus.COMPLETED, done.error


def test_sigterm_to_a_detached_supervisor_cancels_its_run(
    ws: Resources, new_run: RunMaker, wait: Waiter, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child.pid"
    run = new_run(ws, log_then_sleep(pid_file))
    LocalBackend(ws).submit(run.id)
    wait(pid_file.exists, what="the child to start")
    supervisor = ws.store.get_run(run.id).supervisor_pid
    assert supervisor is not None

    os.kill(supervisor, signal.SIGTERM)  # e.g. the machine shutting down
    final = wait(lambda: terminal(ws, run.id), what="the run to end")
    assert final.status is RunStatus.CANCELED
    assert final.reason == "canceled: supervisor received SIGTERM"
    assert len(ws.store.metric_history(run.id, "loss")) == POINTS
    assert not alive(int(pid_file.read_text()))
    wait(lambda: not alive(supervisor), timeout=5, what="the supervisor to exit")


def test_a_param_logged_twice_with_another_value_is_reported_not_fatal(
    ws: Resources, new_run: RunMaker, wait: Waiter, tmp_path: Path
) -> None:
    from runyard.supervisor import Supervisor

    go = tmp_path / "go"
    run = new_run(
        ws,
        f"""
        import pathlib, time, runyard
        runyard.log_param("lr", 0.1)
        deadline = time.time() + 20
        while not pathlib.Path({str(go)!r}).exists() and time.time() < deadline:
            time.sleep(0.02)
        runyard.log_params({{"lr": 0.2, "epochs": 3}})
        runyard.log_metric("loss", 1.0)
        """,
    )

    def release_once_recorded() -> None:  # the second value then arrives in its own batch
        wait(lambda: ws.store.get_run(run.id).params.get("lr") == "0.1", what="the first lr")
        go.touch()

    helper = threading.Thread(target=release_once_recorded)
    helper.start()
    final = Supervisor(ws, run.id).execute()
    helper.join()
    assert final.status is RunStatus.COMPLETED, final.error
    assert final.params == {"lr": "0.1", "epochs": "3"}
    assert final.metrics == {"loss": 1.0}
    log = ws.layout.supervisor_log(run.id).read_text()
    assert "warning: param 'lr' not recorded" in log
