"""Real sweeps end to end on local compute: trials are child runs under detached
supervisors, driven by the controller in this process (or a detached one)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from sweep_helpers import SweepWriter, controller_pid, runyard_cli, wait_for

from runyard.errors import InvalidTransition, UserError
from runyard.records import Run, RunStatus
from runyard.supervisor import reap_lost
from runyard.sweep import (
    best_trial,
    cancel_sweep,
    create_sweep,
    get_sweep,
    resume_sweep,
    run_sweep,
    sweep_trials,
    trial_job,
    trial_params,
)
from runyard.sweep.results import INDEX_TAG, Trial, sweep_spec_of
from runyard.workspace import Resources

pytestmark = pytest.mark.slow


def indexes(ws: Resources, sweep_id: str) -> list[int]:
    return sorted(int(r.tags[INDEX_TAG]) for r in ws.store.search_runs(parent_id=sweep_id))


def test_random_sweep_completes_and_records_the_best_on_the_parent(
    ws: Resources, sweep_file: SweepWriter
) -> None:
    path = sweep_file(
        {
            "x": {"type": "uniform", "min_value": 0.1, "max_value": 1.0},
            "steps": {"type": "choice", "values": [3, 4]},
        },
        command="python curve.py --steps ${{search_space.steps}}",
    )
    updates: list[int] = []
    parent = run_sweep(ws, path, on_update=lambda s: updates.append(len(s.trials)))

    assert parent.status is RunStatus.COMPLETED
    assert parent.compute == "sweep"  # holds no local slot
    assert parent.tags["runyard.type"] == "sweep"
    assert [s.status for s in ws.store.status_history(parent.id)][-3:] == [
        RunStatus.RUNNING,
        RunStatus.FINALIZING,
        RunStatus.COMPLETED,
    ]
    trials = sweep_trials(ws, parent.id)
    assert sorted(t.index for t in trials) == [0, 1, 2, 3]
    assert all(t.status is RunStatus.COMPLETED and t.run.parent_id == parent.id for t in trials)
    values = [t.value for t in trials]
    assert values == sorted(values, reverse=True)  # best first
    # The values reached the trial: one by placeholder, the other appended as --x VALUE.
    for t in trials:
        assert t.run.spec["command"].startswith(f"python curve.py --steps {t.params['steps']} --x ")
        assert t.run.snapshot_id == parent.snapshot_id is not None
    # Reproducible: trial i has what the seeded sampler proposes for i.
    spec = sweep_spec_of(parent)
    sampler = spec.sampler()
    for t in trials:
        assert t.params == trial_params(sampler.ask(t.index) or {})
        assert t.run.spec["command"] == trial_job(spec, sampler.ask(t.index) or {}).command
    best = best_trial(ws, parent.id)
    assert best is not None and best.id == trials[0].id
    assert parent.tags["best_trial"] == best.id
    assert parent.tags["best.x"] == best.params["x"]
    assert parent.metrics["best_value"] == best.value
    assert parent.metrics["trial_count"] == 4
    assert updates and updates[-1] == 4


def test_grid_runs_every_point_exactly_once(ws: Resources, sweep_file: SweepWriter) -> None:
    path = sweep_file(
        {
            "x": {"type": "choice", "values": [0.2, 0.4, 0.8]},
            "steps": {"type": "choice", "values": [2, 3]},
        },
        sampling_algorithm="grid",
        limits={"max_concurrent_trials": 3},
    )
    parent = run_sweep(ws, path)
    assert parent.status is RunStatus.COMPLETED
    trials = sweep_trials(ws, parent.id)
    points = sorted((t.params["x"], t.params["steps"]) for t in trials)
    assert points == sorted((x, s) for x in ("0.2", "0.4", "0.8") for s in ("2", "3"))
    assert indexes(ws, parent.id) == list(range(6))
    assert parent.tags["best.x"] == "0.8"


def test_bandit_stops_the_loser_which_sees_should_stop(
    ws: Resources, sweep_file: SweepWriter
) -> None:
    # One at a time, so the loser is judged against the winner's whole history.
    path = sweep_file(
        {"x": {"type": "choice", "values": [1.0, 0.2]}},
        command="python curve.py --steps 30 --delay 0.1",
        sampling_algorithm="grid",
        early_termination={"type": "bandit", "slack_factor": 0.1, "delay_evaluation": 3},
        limits={"max_concurrent_trials": 1},
    )
    parent = run_sweep(ws, path)
    assert parent.status is RunStatus.COMPLETED
    winner, loser = sweep_trials(ws, parent.id)
    assert winner.params["x"] == "1.0" and winner.status is RunStatus.COMPLETED
    assert loser.status is RunStatus.CANCELED
    # Judged at each step from step 3 (delay_evaluation), whenever the values arrived.
    assert loser.run.reason == "early termination: bandit at step 3"
    # The stop file came first: the script saw should_stop() and ended by itself.
    arts = {a.path for a in ws.store.list_artifacts(loser.id)}
    assert "outputs/stopped" in arts
    assert loser.run.exit_code == 0
    assert parent.tags["best_trial"] == winner.id


def test_asha_stops_losers_at_its_rungs(ws: Resources, sweep_file: SweepWriter) -> None:
    # Trials 0 and 1 run together (whether 0.9 loses a rung to 1.0 depends on timing);
    # 0.3 and 0.2 start after them and lose the first rung (step 2) to both.
    path = sweep_file(
        {"x": {"type": "choice", "values": [1.0, 0.9, 0.3, 0.2]}},
        command="python curve.py --steps 20 --delay 0.1",
        sampling_algorithm="grid",
        early_termination={
            "type": "asha",
            "grace_period": 2,
            "reduction_factor": 2,
            "max_steps": 20,
        },
        limits={"max_concurrent_trials": 2},
    )
    parent = run_sweep(ws, path)
    trials = {t.params["x"]: t for t in sweep_trials(ws, parent.id)}
    assert trials["1.0"].status is RunStatus.COMPLETED
    for x in ("0.3", "0.2"):
        assert trials[x].status is RunStatus.CANCELED
        assert trials[x].run.reason == "early termination: asha at step 2"
    assert best_trial(ws, parent.id).id == trials["1.0"].id  # type: ignore[union-attr]


def test_trials_that_never_log_the_metric_are_reported_not_ranked(
    ws: Resources, sweep_file: SweepWriter
) -> None:
    path = sweep_file(
        {"silent": {"type": "choice", "values": [True, False]}},
        sampling_algorithm="grid",
    )
    parent = run_sweep(ws, path)
    assert parent.status is RunStatus.COMPLETED
    logged, silent = sweep_trials(ws, parent.id)
    assert silent.params["silent"] == "true"
    assert silent.value is None and silent.note == "no acc logged"
    assert silent.status is RunStatus.COMPLETED
    assert parent.tags["best_trial"] == logged.id

    all_silent = sweep_file(
        {"silent": {"type": "choice", "values": [True]}}, sampling_algorithm="grid"
    )
    parent = run_sweep(ws, all_silent)
    assert parent.status is RunStatus.FAILED
    assert parent.reason == "no trial logged acc"
    assert best_trial(ws, parent.id) is None


def test_a_sweep_whose_trials_all_fail_fails(ws: Resources, sweep_file: SweepWriter) -> None:
    path = sweep_file(
        {"fail": {"type": "choice", "values": [True]}}, limits={"max_total_trials": 2}
    )
    parent = run_sweep(ws, path)
    assert parent.status is RunStatus.FAILED
    assert parent.reason == "every trial failed (2 of 2)"
    assert [t.status for t in sweep_trials(ws, parent.id)] == [RunStatus.FAILED] * 2


def test_timeouts_cancel_the_sweep_and_bound_each_trial(
    ws: Resources, sweep_file: SweepWriter
) -> None:
    trial_limited = sweep_file(
        {"x": {"type": "choice", "values": [0.5]}},
        command="python curve.py --steps 100 --delay 0.1",
        limits={"max_total_trials": 1, "trial_timeout": 1},
    )
    parent = run_sweep(ws, trial_limited)
    (trial,) = sweep_trials(ws, parent.id)
    assert trial.status is RunStatus.CANCELED and trial.run.reason == "timeout after 1s"
    assert parent.status is RunStatus.COMPLETED  # the trial logged acc before it was stopped

    sweep_limited = sweep_file(
        {"x": {"type": "choice", "values": [0.5]}},
        command="python curve.py --steps 100 --delay 0.1",
        limits={"max_total_trials": 4, "max_concurrent_trials": 2, "timeout": 2},
    )
    started = time.monotonic()
    parent = run_sweep(ws, sweep_limited)
    assert time.monotonic() - started < 10
    assert parent.status is RunStatus.CANCELED
    assert parent.reason == "sweep timeout after 2s"
    trials = sweep_trials(ws, parent.id)
    assert all(t.status is RunStatus.CANCELED and t.run.reason == "sweep timeout" for t in trials)
    # Two ran; the one recorded ahead, waiting for a slot, never started.
    assert [t.run.started_at is not None for t in trials] == [True, True, False]


def ended_trials(ws: Resources, sweep_id: str) -> list[Trial] | None:
    trials = sweep_trials(ws, sweep_id)
    return trials if all(t.status.is_terminal for t in trials) else None


def _detached(ws: Resources, path: Path) -> Run:
    done = runyard_cli(ws, "sweep", str(path), "--detach")
    assert done.returncode == 0, done.stderr
    sweep_id = done.stdout.strip()
    return get_sweep(ws, sweep_id)


def test_resume_after_kill_9_repeats_and_loses_no_trial(
    ws: Resources, sweep_file: SweepWriter
) -> None:
    path = sweep_file(
        {"x": {"type": "uniform", "min_value": 0.1, "max_value": 1.0}},
        command="python curve.py --steps 10 --delay 0.1",
        limits={"max_total_trials": 6, "max_concurrent_trials": 2},
    )
    parent = _detached(ws, path)
    pid = wait_for(lambda: controller_pid(ws.store.get_run(parent.id)), what="the controller")
    wait_for(lambda: len(indexes(ws, parent.id)) >= 3, what="three trials")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: controller_pid(ws.store.get_run(parent.id)) is None, what="its death")
    before = indexes(ws, parent.id)

    # Dead, it is not reaped into a state resume cannot handle, even with a stale heartbeat.
    time.sleep(ws.settings.heartbeat_timeout + 0.5)
    reap_lost(ws)
    dead = ws.store.get_run(parent.id)
    assert dead.status is RunStatus.RUNNING
    shown = runyard_cli(ws, "sweep", "show", parent.id)
    assert f"not running; continue with: runyard sweep resume {parent.id}" in shown.stdout

    final = resume_sweep(ws, parent.id)
    assert final.status is RunStatus.COMPLETED
    after = indexes(ws, parent.id)
    assert after == list(range(6))  # no index twice, none lost, none reused
    assert after[: len(before)] == before
    assert all(t.status is RunStatus.COMPLETED for t in sweep_trials(ws, parent.id))
    assert final.metrics["trial_count"] == 6


def test_resume_submits_a_trial_recorded_but_never_submitted(
    ws: Resources, sweep_file: SweepWriter
) -> None:
    path = sweep_file(
        {"x": {"type": "uniform", "min_value": 0.1, "max_value": 1.0}},
        limits={"max_total_trials": 3, "max_concurrent_trials": 2},
    )
    parent = create_sweep(ws, path)
    # What a controller that died between recording trial 0 and submitting it leaves.
    spec = sweep_spec_of(parent)
    params = spec.sampler().ask(0)
    assert params is not None
    job = trial_job(spec, params)
    orphan = ws.store.create_run(
        experiment=job.experiment,
        spec=job.to_dict(),
        tags={INDEX_TAG: "0"},
        params=trial_params(params),
        snapshot_id=parent.snapshot_id,
        parent_id=parent.id,
    )
    final = resume_sweep(ws, parent.id)
    assert final.status is RunStatus.COMPLETED
    assert ws.store.get_run(orphan.id).status is RunStatus.COMPLETED
    assert indexes(ws, parent.id) == [0, 1, 2]


def test_resume_is_refused_while_a_controller_runs_and_after_the_end(
    ws: Resources, sweep_file: SweepWriter
) -> None:
    path = sweep_file(
        {"x": {"type": "choice", "values": [0.5]}},
        command="python curve.py --steps 200 --delay 0.1",
        limits={"max_total_trials": 1},
    )
    parent = _detached(ws, path)
    wait_for(lambda: controller_pid(ws.store.get_run(parent.id)), what="the controller")
    with pytest.raises(UserError, match="already has a running controller"):
        resume_sweep(ws, parent.id)
    cancel_sweep(ws, parent.id)
    final = wait_for(
        lambda: (r := ws.store.get_run(parent.id)).status.is_terminal and r, what="the end"
    )
    with pytest.raises(InvalidTransition, match="already Canceled"):
        resume_sweep(ws, parent.id)
    assert final.status is RunStatus.CANCELED


@pytest.mark.parametrize("controller", ["alive", "dead"])
def test_cancel_ends_the_sweep_and_all_its_trials(
    ws: Resources, sweep_file: SweepWriter, controller: str
) -> None:
    path = sweep_file(
        {"x": {"type": "uniform", "min_value": 0.1, "max_value": 1.0}},
        command="python curve.py --steps 300 --delay 0.1",
        limits={"max_total_trials": 5, "max_concurrent_trials": 2},
    )
    parent = _detached(ws, path)
    pid = wait_for(lambda: controller_pid(ws.store.get_run(parent.id)), what="the controller")
    wait_for(
        lambda: sum(t.status is RunStatus.RUNNING for t in sweep_trials(ws, parent.id)) == 2,
        what="two running trials",
    )
    if controller == "dead":
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: controller_pid(ws.store.get_run(parent.id)) is None, what="its death")
    done = runyard_cli(ws, "sweep", "cancel", parent.id)
    assert done.returncode == 0, done.stderr
    final = wait_for(
        lambda: (r := ws.store.get_run(parent.id)).status.is_terminal and r, what="the end"
    )
    assert final.status is RunStatus.CANCELED
    assert final.reason == "canceled by user"
    trials = wait_for(lambda: ended_trials(ws, parent.id), what="the trials to end")
    assert all(t.status is RunStatus.CANCELED for t in trials)
    # No trial started after the cancel: two ran, and the one recorded ahead never started.
    assert [t.run.started_at is not None for t in trials] == [True, True, False]
    for t in trials:
        assert t.status is RunStatus.CANCELED
        assert t.run.reason == "sweep canceled: canceled by user"
