"""The ``Store`` contract, part two: status changes, slots, cancel requests and lost runs.

See :mod:`.contract` for how an implementation runs the suite.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from runyard.errors import InvalidTransition, RunNotFound
from runyard.records import ArtifactInfo, RunState, RunStatus
from runyard.store.base import Store

from .contract import PATH, S, advance, new_run

# -- status changes ---------------------------------------------------------------------------


def test_lifecycle_records_history_and_times(store: Store) -> None:
    run_id = new_run(store)
    for status in PATH[:-1]:
        store.transition(run_id, status)
    running = next(c for c in store.status_history(run_id) if c.status is S.RUNNING)
    done = store.transition(run_id, S.COMPLETED, reason="exit code 0", exit_code=0)
    assert done.status is S.COMPLETED and done.exit_code == 0 and done.reason == "exit code 0"
    assert done.started_at == running.time
    assert done.ended_at is not None and done.ended_at >= done.started_at
    history = store.status_history(run_id)
    assert [c.status for c in history] == [S.QUEUED, *PATH]
    assert [c.time for c in history] == sorted(c.time for c in history)
    assert history[-1].reason == "exit code 0" and history[-1].time == done.ended_at


def test_failed_run_keeps_exit_code_and_error(store: Store) -> None:
    run_id = new_run(store)
    advance(store, run_id, S.RUNNING)
    run = store.transition(
        run_id, S.FAILED, reason="exit code 3", exit_code=3, error="Traceback ...\nValueError"
    )
    assert (run.status, run.exit_code, run.reason) == (S.FAILED, 3, "exit code 3")
    assert run.error == "Traceback ...\nValueError"
    assert run.ended_at is not None


def test_disallowed_transition_changes_nothing(store: Store) -> None:
    run_id = new_run(store)
    with pytest.raises(InvalidTransition, match=f"run {run_id} is Queued; cannot move to Running"):
        store.transition(run_id, S.RUNNING)
    advance(store, run_id, S.COMPLETED)
    with pytest.raises(InvalidTransition, match="is Completed; cannot move to Canceled"):
        store.transition(run_id, S.CANCELED)
    assert store.get_run(run_id).status is S.COMPLETED
    assert [c.status for c in store.status_history(run_id)] == [S.QUEUED, *PATH]


def test_transition_is_compare_and_set(store: Store) -> None:
    run_id = new_run(store)
    advance(store, run_id, S.RUNNING)
    with pytest.raises(InvalidTransition, match="is Running; cannot move to Canceled"):
        store.transition(run_id, S.CANCELED, expected=[S.QUEUED, S.PREPARING])
    assert store.get_run(run_id).status is S.RUNNING
    run = store.transition(run_id, S.CANCELED, expected=[S.RUNNING], reason="timeout after 60s")
    assert run.status is S.CANCELED and run.reason == "timeout after 60s"


def test_concurrent_compare_and_set_lets_one_win(store: Store) -> None:
    run_id = new_run(store)
    advance(store, run_id, S.RUNNING)
    results: list[str] = []
    barrier = threading.Barrier(6)

    def finish(status: RunStatus) -> None:
        barrier.wait()
        try:
            store.transition(run_id, status, expected=[S.RUNNING])
            results.append(status.value)
        except InvalidTransition:
            results.append("lost")

    threads = [
        threading.Thread(target=finish, args=(s,)) for s in [S.FAILED, S.CANCELED, S.FINALIZING] * 2
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("lost") == 5
    history = store.status_history(run_id)
    assert len(history) == 5 and history[-1].status.value in results


# -- slots ---------------------------------------------------------------------------------------


def test_claim_takes_only_the_oldest_queued_run_of_its_compute(store: Store) -> None:
    a, b = new_run(store, compute="gpu"), new_run(store, compute="gpu")
    other = new_run(store, compute="cpu")
    assert store.claim(b, slots=5) is False  # a is older
    assert store.claim(other, slots=5) is True  # another compute target has its own queue
    assert store.claim(a, slots=5) is True
    claimed = store.get_run(a)
    assert claimed.status is S.PREPARING
    assert claimed.heartbeat_at is not None  # a claim counts as a heartbeat
    assert store.claim(a, slots=5) is False  # no longer Queued
    assert store.claim(b, slots=5) is True
    assert [c.status for c in store.status_history(b)] == [S.QUEUED, S.PREPARING]


def test_claim_records_the_claiming_supervisor(store: Store) -> None:
    a, b = new_run(store), new_run(store)
    assert store.claim(b, slots=5, supervisor=("node-1", 4321)) is False  # a is older
    assert store.get_run(b).supervisor_pid is None  # nothing recorded by a refused claim
    assert store.claim(a, slots=5, supervisor=("node-1", 4321)) is True
    claimed = store.run_state(a)
    assert (claimed.status, claimed.host, claimed.supervisor_pid) == (S.PREPARING, "node-1", 4321)
    assert claimed.heartbeat_at is not None


def test_claim_respects_slots(store: Store) -> None:
    a, b = new_run(store, compute="gpu"), new_run(store, compute="gpu")
    assert store.claim(a, slots=1) is True
    advance_from = [S.STARTING, S.RUNNING]
    for status in advance_from:
        store.transition(a, status)
    assert store.claim(b, slots=1) is False
    assert store.get_run(b).status is S.QUEUED
    assert store.claim(b, slots=2) is True


def test_claim_after_a_slot_frees(store: Store) -> None:
    a, b = new_run(store), new_run(store)
    assert store.claim(a, slots=1)
    assert not store.claim(b, slots=1)
    store.transition(a, S.FAILED, reason="setup failed")
    assert store.claim(b, slots=1)


def test_canceled_queued_run_leaves_the_queue(store: Store) -> None:
    a, b = new_run(store), new_run(store)
    store.request_cancel(a)
    assert store.claim(a, slots=1) is False
    assert store.claim(b, slots=1) is True


def test_concurrent_claims_never_exceed_slots(store: Store) -> None:
    queued = [new_run(store, compute="pool") for _ in range(8)]
    slots, workers = 3, 6
    barrier = threading.Barrier(workers)
    won: list[str] = []
    errors: list[BaseException] = []

    def claimer() -> None:
        try:
            barrier.wait()
            for _ in range(3):
                for run_id in queued:
                    if store.claim(run_id, slots=slots):
                        won.append(run_id)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=claimer) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(won) == sorted(queued[:slots])  # each once, and the oldest ones
    active = store.search_runs(statuses=[S.PREPARING])
    assert {r.id for r in active} == set(queued[:slots])


# -- cancel and lost runs ----------------------------------------------------------------------


def test_cancel_queued_run_is_immediate(store: Store) -> None:
    run_id = new_run(store)
    run = store.request_cancel(run_id, reason="canceled by alice")
    assert run.status is S.CANCELED and run.ended_at is not None
    assert run.reason == "canceled by alice" and run.cancel_reason == "canceled by alice"
    last = store.status_history(run_id)[-1]
    assert (last.status, last.reason) == (S.CANCELED, "canceled by alice")


@pytest.mark.parametrize("status", [S.PREPARING, S.STARTING, S.RUNNING, S.FINALIZING])
def test_cancel_active_run_asks_its_supervisor(store: Store, status: RunStatus) -> None:
    run_id = new_run(store)
    advance(store, run_id, status)
    run = store.request_cancel(run_id)
    assert run.status is status
    assert run.cancel_requested and run.cancel_reason == "canceled by user"
    assert store.request_cancel(run_id, reason="again").cancel_reason == "canceled by user"
    done = store.transition(run_id, S.CANCELED, reason=run.cancel_reason)
    assert done.status is S.CANCELED


@pytest.mark.parametrize("status", [S.COMPLETED, S.FAILED, S.CANCELED])
def test_cancel_finished_run_is_invalid(store: Store, status: RunStatus) -> None:
    run_id = new_run(store)
    advance(store, run_id, status)
    with pytest.raises(InvalidTransition, match=f"is {status.value}; cannot move to Canceled"):
        store.request_cancel(run_id)
    assert not store.get_run(run_id).cancel_requested


def test_supervisor_fields(store: Store) -> None:
    run_id = new_run(store)
    advance(store, run_id, S.STARTING)
    before = time.time()
    store.attach_supervisor(run_id, host="node-1", pid=4242)
    run = store.get_run(run_id)
    assert (run.host, run.supervisor_pid) == ("node-1", 4242)
    assert run.heartbeat_at is not None and run.heartbeat_at >= before
    time.sleep(0.01)
    store.heartbeat(run_id)
    beat = store.get_run(run_id).heartbeat_at
    assert beat is not None and beat > run.heartbeat_at
    assert store.process_group(run_id) is None
    store.set_process_group(run_id, 31337)
    assert store.process_group(run_id) == 31337
    store.set_process_group(run_id, None)
    assert store.process_group(run_id) is None


def test_run_state_is_the_lifecycle_part_of_the_record(store: Store) -> None:
    run_id = new_run(store)
    advance(store, run_id, S.RUNNING)
    store.attach_supervisor(run_id, host="node-1", pid=4242)
    store.request_cancel(run_id, "enough")
    state, run = store.run_state(run_id), store.get_run(run_id)
    assert state == RunState(**{f.name: getattr(run, f.name) for f in dataclasses.fields(state)})
    assert run.state == state
    assert (state.status, state.cancel_requested, state.cancel_reason) == (
        S.RUNNING,
        True,
        "enough",
    )
    assert (state.host, state.supervisor_pid) == ("node-1", 4242)
    with pytest.raises(RunNotFound):
        store.run_state("000000000000")
    with pytest.raises(RunNotFound):
        store.run_state(run_id[:6])  # full ids only


def test_run_states_reads_many_and_leaves_out_unknown_ids(store: Store) -> None:
    queued, running, done = new_run(store), new_run(store), new_run(store)
    advance(store, running, S.RUNNING)
    advance(store, done, S.COMPLETED)
    states = store.run_states([queued, running, "000000000000", done, queued])
    assert {k: v.status for k, v in states.items()} == {
        queued: S.QUEUED,
        running: S.RUNNING,
        done: S.COMPLETED,
    }
    assert states[done] == store.run_state(done)
    assert store.run_states([running]) == {running: store.run_state(running)}
    assert store.run_states([]) == {}


def test_transition_returns_the_new_state(store: Store) -> None:
    run_id = new_run(store)
    state = store.transition(run_id, S.PREPARING)
    assert state == store.run_state(run_id) and state.status is S.PREPARING


def test_transition_via_a_short_status_records_it_with_its_time(store: Store) -> None:
    run_id = new_run(store)
    advance(store, run_id, S.PREPARING)
    starting = time.time()
    state = store.transition(run_id, S.RUNNING, via=[(S.STARTING, starting)], pgid=4321)
    assert state.status is S.RUNNING and state.started_at is not None
    assert state.started_at >= starting
    assert store.process_group(run_id) == 4321
    history = store.status_history(run_id)
    assert [c.status for c in history] == [S.QUEUED, S.PREPARING, S.STARTING, S.RUNNING]
    assert (history[2].time, history[3].time) == (starting, state.started_at)

    with pytest.raises(InvalidTransition, match="is Running; cannot move to Starting"):
        store.transition(run_id, S.COMPLETED, via=[(S.STARTING, time.time())])
    assert store.run_state(run_id).status is S.RUNNING
    assert len(store.status_history(run_id)) == len(history)  # nothing recorded

    finalizing = time.time()
    log = ArtifactInfo("logs/std_log.txt", 5)
    done = store.transition(
        run_id, S.COMPLETED, via=[(S.FINALIZING, finalizing)], exit_code=0, artifacts=[log]
    )
    assert (done.status, done.exit_code) == (S.COMPLETED, 0)
    assert [c.status for c in store.status_history(run_id)][-2:] == [S.FINALIZING, S.COMPLETED]
    assert store.list_artifacts(run_id) == [log]  # indexed in the same transaction


def test_mark_lost_fails_runs_with_stale_heartbeats(store: Store) -> None:
    stale, fresh, queued = new_run(store), new_run(store), new_run(store)
    for run_id in (stale, fresh):
        advance(store, run_id, S.RUNNING)
        store.attach_supervisor(run_id, host="node-1", pid=100)
    time.sleep(0.3)
    store.heartbeat(fresh)
    assert store.mark_lost(heartbeat_timeout=0.2) == [stale]
    run = store.get_run(stale)
    assert run.status is S.FAILED and run.ended_at is not None
    assert run.reason is not None
    assert run.reason.startswith("lost: supervisor heartbeat stale for ")
    assert store.status_history(stale)[-1].reason == run.reason
    assert store.get_run(fresh).status is S.RUNNING
    assert store.get_run(queued).status is S.QUEUED
    assert store.mark_lost(heartbeat_timeout=0.2) == []


def test_mark_lost_fails_runs_whose_supervisor_died(store: Store) -> None:
    dead, alive, elsewhere = new_run(store), new_run(store), new_run(store)
    for run_id, host, pid in ((dead, "h1", 1234), (alive, "h1", 99), (elsewhere, "h2", 1234)):
        advance(store, run_id, S.PREPARING)
        store.attach_supervisor(run_id, host=host, pid=pid)
    assert store.mark_lost(heartbeat_timeout=3600, host="h1", dead_pids=[1234, 555]) == [dead]
    run = store.get_run(dead)
    assert run.status is S.FAILED
    assert run.reason == "lost: supervisor process 1234 on host h1 is gone"
    assert store.get_run(alive).status is S.PREPARING
    assert store.get_run(elsewhere).status is S.PREPARING
