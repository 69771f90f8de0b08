"""The supervisor pool: long-lived workers that supervise run after run (what a sweep's
controller uses), with the guarantees of a detached supervisor each."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sv_helpers import RunMaker, Waiter, WorkspaceMaker, alive

from runyard.backends.local import LocalBackend
from runyard.errors import BackendError
from runyard.records import MetricPoint, RunStatus
from runyard.supervisor import Supervisor, reap_lost
from runyard.supervisor import pool as pool_module
from runyard.supervisor.pool import SupervisorPool
from runyard.workspace import Resources

SLEEP = "import sys, time; print('started', flush=True); time.sleep(float(sys.argv[1]))"


def ended_log() -> tuple[list[str], threading.Event, Callable[[str], None]]:
    ended: list[str] = []
    event = threading.Event()

    def on_end(run_id: str) -> None:
        ended.append(run_id)
        event.set()

    return ended, event, on_end


def test_workers_supervise_run_after_run_and_report_each_end(
    ws: Resources, new_run: RunMaker, wait: Waiter
) -> None:
    ended, _, on_end = ended_log()
    runs = [new_run(ws, command=[sys.executable, "-c", f"print('run {i}')"]) for i in range(3)]
    with SupervisorPool(ws.layout.root, on_end=on_end) as pool:
        backend = LocalBackend(ws, starter=pool.start)
        pids = []
        for run in runs:  # one after the other: the idle worker takes the next
            backend.submit(run.id)
            wait(lambda r=run: r.id in ended, what=f"the end of {run.id}")
            pids.append(ws.store.get_run(run.id).supervisor_pid)
    (pid,) = set(pids)  # one worker did all three
    assert pid is not None and pid != os.getpid()
    for i, run in enumerate(runs):
        done = ws.store.get_run(run.id)
        assert done.status is RunStatus.COMPLETED, done.reason
        log = (ws.layout.work_dir(run.id) / "logs" / "std_log.txt").read_text()
        assert log == f"run {i}\n"
        assert f"supervisor starts for run {run.id}" in ws.layout.supervisor_log(run.id).read_text()
    wait(lambda: not alive(pid), what="the idle worker to exit once the pool closed")


def test_a_run_handed_over_with_its_record_needs_no_read_and_a_stale_record_no_harm(
    ws: Resources, new_run: RunMaker, wait: Waiter
) -> None:
    ended, _, on_end = ended_log()
    fresh = new_run(ws, files={"train.py": "print('from its snapshot')"})
    canceled = new_run(ws, command=[sys.executable, "-c", "print('must not run')"])
    ws.store.request_cancel(canceled.id, "changed my mind")  # after its record was taken
    with SupervisorPool(ws.layout.root, on_end=on_end) as pool:
        pool.start(fresh.id, record=fresh)
        pool.start(canceled.id, record=canceled)  # the record still says Queued
        wait(lambda: {fresh.id, canceled.id} <= set(ended), what="both ends")
    done = ws.store.get_run(fresh.id)
    assert done.status is RunStatus.COMPLETED, done.reason
    assert done.supervisor_pid is not None and done.supervisor_pid != os.getpid()
    log = (ws.layout.work_dir(fresh.id) / "logs" / "std_log.txt").read_text()
    assert log == "from its snapshot\n"
    left = ws.store.get_run(canceled.id)
    assert (left.status, left.reason) == (RunStatus.CANCELED, "changed my mind")
    assert not (ws.layout.work_dir(canceled.id) / "logs" / "std_log.txt").exists()
    assert "ended while queued" in ws.layout.supervisor_log(canceled.id).read_text()


def test_records_cross_to_the_worker_whole(ws: Resources, new_run: RunMaker) -> None:
    run = new_run(ws, files={"train.py": "pass"})
    ws.store.set_tags(run.id, {"a\tb": "c\nd"})
    ws.store.log_params(run.id, {"lr": "0.1"})
    ws.store.log_metrics(run.id, [MetricPoint("loss", 0.25, 0, 1.5)])
    whole = ws.store.get_run(run.id)
    request = f"{run.id}\t{pool_module._encode(whole)}"
    assert "\n" not in request
    assert pool_module._decode(request) == (run.id, whole)
    assert pool_module._decode(run.id) == (run.id, None)
    other = new_run(ws, files={"train.py": "pass"})
    with pytest.raises(ValueError, match=f"run {other.id}'s, not run {run.id}'s"):
        Supervisor(ws, run.id, record=other)


def test_runs_at_once_get_a_worker_each(ws: Resources, new_run: RunMaker, wait: Waiter) -> None:
    runs = [new_run(ws, command=[sys.executable, "-c", SLEEP, "1"]) for _ in range(2)]
    with SupervisorPool(ws.layout.root) as pool:
        pids = {pool.start(run.id) for run in runs}
        assert len(pids) == 2
        wait(lambda: all(ws.store.get_run(r.id).status.is_terminal for r in runs), timeout=20)
    assert {ws.store.get_run(r.id).status for r in runs} == {RunStatus.COMPLETED}
    wait(lambda: not any(alive(pid) for pid in pids), what="both workers to exit")


def test_a_run_waiting_for_a_slot_is_woken_when_another_pool_run_ends(
    make_workspace: WorkspaceMaker, new_run: RunMaker, wait: Waiter
) -> None:
    ws = make_workspace(local_slots=1)
    first = new_run(ws, command=[sys.executable, "-c", SLEEP, "1"])
    second = new_run(ws, command=[sys.executable, "-c", "pass"])
    with SupervisorPool(ws.layout.root) as pool:
        pool.start(first.id)
        wait(lambda: ws.store.run_state(first.id).status is RunStatus.RUNNING)
        pool.start(second.id)
        wait(lambda: ws.store.run_state(second.id).status.is_terminal, timeout=30)
    ended = {c.status: c.time for c in ws.store.status_history(first.id)}[RunStatus.COMPLETED]
    claimed = {c.status: c.time for c in ws.store.status_history(second.id)}
    assert ended <= claimed[RunStatus.PREPARING]
    assert ws.store.get_run(second.id).status is RunStatus.COMPLETED
    log = ws.layout.supervisor_log(second.id).read_text()
    assert "waiting for a slot" in log
    assert "a run on this machine ended: claiming again" in log


def test_beyond_its_limit_a_pool_hands_a_run_to_the_first_worker_done(
    ws: Resources, new_run: RunMaker, wait: Waiter
) -> None:
    ended, _, on_end = ended_log()
    assigned: list[tuple[str, int]] = []
    first = new_run(ws, command=[sys.executable, "-c", SLEEP, "0.5"])
    second = new_run(ws, command=[sys.executable, "-c", "print('second')"])
    with SupervisorPool(
        ws.layout.root, on_end=on_end, on_start=lambda *a: assigned.append(a), limit=1
    ) as pool:
        pid = pool.start(first.id)
        assert pid is not None
        assert pool.start(second.id, record=second) is None  # waits in the pool
        assert assigned == []
        wait(lambda: second.id in ended, what="the second run's end")
    assert ended == [first.id, second.id]
    assert assigned == [(second.id, pid)]  # the worker that was done with the first
    runs = [ws.store.get_run(r.id) for r in (first, second)]
    assert [r.status for r in runs] == [RunStatus.COMPLETED] * 2
    assert runs[0].ended_at is not None and runs[1].started_at is not None
    assert runs[0].ended_at <= runs[1].started_at  # never both at once
    assert runs[1].supervisor_pid == pid


def test_runs_waiting_in_a_helper_that_died_go_to_the_next(
    ws: Resources, new_run: RunMaker, wait: Waiter
) -> None:
    assigned: list[tuple[str, int]] = []
    first = new_run(ws, command=[sys.executable, "-c", SLEEP, "1"])
    second = new_run(ws, command=[sys.executable, "-c", "pass"])
    with SupervisorPool(ws.layout.root, on_start=lambda *a: assigned.append(a), limit=1) as pool:
        assert pool.start(first.id) is not None
        assert pool.start(second.id) is None
        helper = pool._proc
        assert helper is not None
        os.kill(helper.pid, signal.SIGKILL)
        wait(lambda: helper.poll() is not None, what="the helper's death")
        pool.revive()
        wait(lambda: ws.store.run_state(second.id).status.is_terminal, what="the second's end")
    assert ws.store.run_state(second.id).status is RunStatus.COMPLETED
    assert [run_id for run_id, _ in assigned] == [second.id]
    wait(lambda: ws.store.run_state(first.id).status.is_terminal, what="the first's end")
    assert ws.store.run_state(first.id).status is RunStatus.COMPLETED  # its worker lived on


def test_runs_still_waiting_when_the_pool_closes_stay_queued(
    ws: Resources, new_run: RunMaker, wait: Waiter
) -> None:
    first = new_run(ws, command=[sys.executable, "-c", SLEEP, "0.5"])
    second = new_run(ws, command=[sys.executable, "-c", "pass"])
    with SupervisorPool(ws.layout.root, limit=1) as pool:
        assert pool.start(first.id) is not None
        assert pool.start(second.id) is None
    wait(lambda: ws.store.run_state(first.id).status.is_terminal, what="the first run's end")
    time.sleep(0.3)
    assert ws.store.run_state(first.id).status is RunStatus.COMPLETED
    left = ws.store.run_state(second.id)
    assert (left.status, left.supervisor_pid) == (RunStatus.QUEUED, None)  # as recorded


def test_a_run_outlives_the_pool_that_started_it(
    ws: Resources, new_run: RunMaker, wait: Waiter
) -> None:
    run = new_run(ws, command=[sys.executable, "-c", SLEEP, "2"])
    pool = SupervisorPool(ws.layout.root)
    pid = pool.start(run.id)
    wait(lambda: ws.store.get_run(run.id).status is RunStatus.RUNNING, what="Running")
    pool.close()  # as when the controller goes away
    assert alive(pid)
    done = wait(lambda: (r := ws.store.get_run(run.id)).status.is_terminal and r, timeout=20)
    assert done.status is RunStatus.COMPLETED
    wait(lambda: not alive(pid), what="the worker to exit after its run")


def test_sigterm_to_a_worker_cancels_its_run(
    ws: Resources, new_run: RunMaker, wait: Waiter
) -> None:
    ended, event, on_end = ended_log()
    run = new_run(ws, command=[sys.executable, "-c", SLEEP, "60"])
    with SupervisorPool(ws.layout.root, on_end=on_end) as pool:
        pid = pool.start(run.id)
        wait(lambda: ws.store.get_run(run.id).status is RunStatus.RUNNING, what="Running")
        os.kill(pid, signal.SIGTERM)
        assert event.wait(20)
    done = ws.store.get_run(run.id)
    assert done.status is RunStatus.CANCELED
    assert done.reason == "canceled: supervisor received SIGTERM"
    assert ended == [run.id]


def test_a_killed_worker_leaves_its_run_to_the_reaper(
    ws: Resources, new_run: RunMaker, wait: Waiter
) -> None:
    ended, event, on_end = ended_log()
    run = new_run(ws, command=[sys.executable, "-c", SLEEP, "60"])
    with SupervisorPool(ws.layout.root, on_end=on_end) as pool:
        pid = pool.start(run.id)
        wait(lambda: ws.store.get_run(run.id).status is RunStatus.RUNNING, what="Running")
        os.kill(pid, signal.SIGKILL)
        assert event.wait(20)  # the pool reports it over
        assert ended == [run.id]
        assert reap_lost(ws) == [run.id]
        # the next run gets a new worker
        other = new_run(ws, command=[sys.executable, "-c", "pass"])
        assert pool.start(other.id) != pid
        wait(lambda: ws.store.get_run(other.id).status.is_terminal, timeout=20)
    lost = ws.store.get_run(run.id)
    assert lost.status is RunStatus.FAILED and lost.reason is not None
    assert lost.reason.startswith("lost:")
    assert ws.store.get_run(other.id).status is RunStatus.COMPLETED


FORKED = """
import sys, threading
from runyard.spec import JobSpec
from runyard.supervisor import pool as pool_module
from runyard.workspace import Resources
ws = Resources.open(sys.argv[1])
assert pool_module._can_fork(), "an interpreter of one thread can fork the helper"
job = JobSpec(command=(sys.executable, "-c", "print('hello')"), experiment="t")
run = ws.store.create_run(experiment="t", spec=job.to_dict(), compute=job.compute)
ended = threading.Event()
with pool_module.SupervisorPool(ws.layout.root, on_end=lambda _id: ended.set()) as pool:
    pool.start(run.id)
    assert isinstance(pool._proc, pool_module._ForkedHelper)
    assert ended.wait(30), "the run did not end"
assert ws.store.get_run(run.id).status.value == "Completed"
ws.close()
"""


def test_the_helper_is_forked_from_a_process_of_one_thread(tmp_path: Path) -> None:
    # In a fresh interpreter: this test process may be too big, or run other threads.
    if not Path("/proc/self/status").exists():
        pytest.skip("forking the helper needs Linux's /proc")
    root = tmp_path / "ws"
    root.mkdir()
    (root / "config.yaml").write_text("local_slots: 2\nsystem_metrics_interval: 0\n")
    done = subprocess.run(
        [sys.executable, "-c", FORKED, str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_beside_other_threads_the_helper_is_a_fresh_interpreter(
    ws: Resources, new_run: RunMaker, wait: Waiter
) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()  # another thread might hold a lock that a forked child never sees freed
    try:
        assert not pool_module._can_fork()
        ended, _, on_end = ended_log()
        run = new_run(ws, command=[sys.executable, "-c", "print('hello')"])
        with SupervisorPool(ws.layout.root, on_end=on_end) as pool:
            pool.start(run.id)
            assert isinstance(pool._proc, subprocess.Popen)
            wait(lambda: run.id in ended, what="the run's end")
        assert ws.store.get_run(run.id).status is RunStatus.COMPLETED
    finally:
        stop.set()
        thread.join()


def test_a_pool_refuses_runs_of_another_workspace(tmp_path: Path) -> None:
    with SupervisorPool(tmp_path / "a") as pool, pytest.raises(BackendError, match="not in"):
        pool.start("abc", tmp_path / "b")
