"""What sweeps need from the store and the supervisor: a sweep's parent run is never marked
lost, and a run asked to stop through its stop file gets the chance to stop itself."""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sweep_helpers import wait_for

from runyard.backends.local import LocalBackend
from runyard.records import Run, RunStatus
from runyard.spec import JobSpec
from runyard.store.sql import SqlStore
from runyard.sweep.controller import stop_file
from runyard.workspace import Resources


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'runyard.db'}"
    else:
        url = str(request.getfixturevalue("postgres_url"))
    opened = SqlStore.open(url)
    yield opened
    opened.close()


def test_mark_lost_leaves_sweep_parents_alone(store: SqlStore) -> None:
    sweep = store.create_run(experiment="e", spec={}, tags={"runyard.type": "sweep"})
    plain = store.create_run(experiment="e", spec={})
    for run_id in (sweep.id, plain.id):
        for status in (RunStatus.PREPARING, RunStatus.STARTING, RunStatus.RUNNING):
            store.transition(run_id, status)
        store.attach_supervisor(run_id, host="h1", pid=4242)
    time.sleep(0.3)
    assert store.mark_lost(heartbeat_timeout=0.2, host="h1", dead_pids=[4242]) == [plain.id]
    assert store.get_run(sweep.id).status is RunStatus.RUNNING


def _start(ws: Resources, code: str) -> Run:
    job = JobSpec(command=(sys.executable, "-c", textwrap.dedent(code)))
    run = ws.store.create_run(experiment="e", spec=job.to_dict())
    LocalBackend(ws).submit(run.id)
    return run


def _ended(ws: Resources, run_id: str) -> Run | None:
    run = ws.store.get_run(run_id)
    return run if run.status.is_terminal else None


def _ask_to_stop(ws: Resources, run_id: str, reason: str, *, cancel: bool = True) -> None:
    """What the sweep controller does: the stop file with the reason, then the cancel."""
    path = stop_file(ws, run_id)
    path.write_text(reason + "\n")
    if cancel:
        ws.store.request_cancel(run_id, reason)


STOPS_ITSELF = """
    import pathlib, time, runyard
    pathlib.Path({started!r}).touch()
    while not runyard.should_stop():
        time.sleep(0.05)
    runyard.log_metric("stopped_cleanly", 1)
"""


@pytest.mark.slow
def test_a_run_asked_through_its_stop_file_stops_itself(ws: Resources, tmp_path: Path) -> None:
    started = tmp_path / "started"
    run = _start(ws, STOPS_ITSELF.format(started=str(started)))
    wait_for(started.exists, what="the script to start")
    _ask_to_stop(ws, run.id, "early termination: bandit at step 7")
    final = wait_for(lambda: _ended(ws, run.id), what="the run to end")
    assert final.status is RunStatus.CANCELED
    assert final.reason == "early termination: bandit at step 7"
    assert final.exit_code == 0  # no signal was needed
    assert final.metrics["stopped_cleanly"] == 1


@pytest.mark.slow
def test_the_stop_file_alone_ends_the_run_canceled(ws: Resources, tmp_path: Path) -> None:
    # The script may exit before the supervisor sees the cancel request: still Canceled.
    started = tmp_path / "started"
    run = _start(ws, STOPS_ITSELF.format(started=str(started)))
    wait_for(started.exists, what="the script to start")
    _ask_to_stop(ws, run.id, "early termination: asha at step 4", cancel=False)
    final = wait_for(lambda: _ended(ws, run.id), what="the run to end")
    assert final.status is RunStatus.CANCELED
    assert final.reason == "early termination: asha at step 4"


@pytest.mark.slow
def test_a_run_that_ignores_its_stop_file_gets_sigterm_after_the_grace(
    ws: Resources, tmp_path: Path
) -> None:
    started, termed = tmp_path / "started", tmp_path / "termed"
    run = _start(
        ws,
        f"""
        import pathlib, signal, sys, time
        def on_term(signum, frame):
            pathlib.Path({str(termed)!r}).write_text(repr(time.time()))
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
        pathlib.Path({str(started)!r}).touch()
        time.sleep(120)
        """,
    )
    wait_for(started.exists, what="the script to start")
    asked = time.time()
    _ask_to_stop(ws, run.id, "early termination: bandit at step 2")
    final = wait_for(lambda: _ended(ws, run.id), what="the run to end")
    assert final.status is RunStatus.CANCELED
    assert final.reason == "early termination: bandit at step 2"
    assert float(termed.read_text()) - asked >= ws.settings.kill_grace  # it had its chance
