"""Slots on the local target, claimed across processes; many runs logging at once."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from sv_helpers import RunMaker, Waiter, WorkspaceMaker

from runyard.backends.local import LocalBackend
from runyard.records import RunStatus


def test_runs_beyond_the_slots_wait_and_run_in_submission_order(
    make_workspace: WorkspaceMaker, new_run: RunMaker, wait: Waiter
) -> None:
    ws = make_workspace(local_slots=1)
    backend = LocalBackend(ws)
    runs = [new_run(ws, "import time; time.sleep(0.3)\n") for _ in range(3)]
    for run in runs:  # each submit starts its own detached supervisor process
        backend.submit(run.id)

    wait(
        lambda: all(ws.store.get_run(r.id).status.is_terminal for r in runs),
        timeout=30,
        what="all runs to end",
    )
    spans = []
    for run in runs:
        final = ws.store.get_run(run.id)
        assert final.status is RunStatus.COMPLETED, final.error
        changes = {c.status: c.time for c in ws.store.status_history(run.id)}
        spans.append((changes[RunStatus.PREPARING], changes[RunStatus.COMPLETED]))
    for (_, ended), (next_claimed, _) in itertools.pairwise(spans):
        assert ended <= next_claimed  # one at a time, in order
    assert [s[0] for s in spans] == sorted(s[0] for s in spans)


@pytest.mark.slow
def test_twenty_concurrent_runs_log_into_one_sqlite_workspace(
    make_workspace: WorkspaceMaker, new_run: RunMaker, wait: Waiter, tmp_path: Path
) -> None:
    ws = make_workspace(local_slots=20, heartbeat_timeout=60.0, heartbeat_interval=0.5)
    backend = LocalBackend(ws)
    gate = tmp_path / "gate"
    gate.mkdir()
    # Every run waits until all 20 have started, so that they really log at the same time.
    script = f"""
        import os, pathlib, time, runyard
        gate = pathlib.Path({str(gate)!r})
        (gate / os.environ["RUNYARD_RUN_ID"]).touch()
        deadline = time.time() + 120
        while len(list(gate.iterdir())) < 20 and time.time() < deadline:
            time.sleep(0.05)
        for step in range(500):
            runyard.log_metric("loss", step / 500, step)
    """
    runs = [new_run(ws, script) for _ in range(20)]
    for run in runs:
        backend.submit(run.id)
    wait(
        lambda: all(ws.store.get_run(r.id).status.is_terminal for r in runs),
        timeout=240,
        what="all 20 runs to end",
    )
    total = 0
    for run in runs:
        final = ws.store.get_run(run.id)
        assert final.status is RunStatus.COMPLETED, (final.reason, final.error)
        points = ws.store.metric_history(run.id, "loss")
        assert [p.step for p in points] == list(range(500))
        total += len(points)
        log = ws.layout.supervisor_log(run.id).read_text()
        assert "database is locked" not in log
        assert "warning" not in log, log
    assert total == 10_000
    assert len(list(gate.iterdir())) == 20
