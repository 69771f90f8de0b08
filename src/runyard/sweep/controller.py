"""The sweep controller: drives one sweep's trials to the end, keeping all its state in the
store so that another controller can pick the sweep up after this one died.

What the store holds, and nothing else:

* the parent run: the sweep spec (with its seed fixed), the code snapshot every trial uses,
  its status, the controller's pid and host (tags), and the best trial so far;
* each trial: a child run of the parent tagged ``runyard.trial_index``, with its sampled
  values as params and everything a run has (status, metrics, reason).

The loop, every :data:`POLL` seconds:

1. read the state of the parent and of the trials that are not over yet (one query), and the
   primary metric's last value of a trial that ended — and, for ``on_update``, the whole
   record of every running trial, and of those that ended, every :data:`DISPLAY_POLL`
   seconds;
2. if the sweep was canceled, or its ``timeout`` (counted from when the sweep first started)
   has passed, cancel every trial that is not over ("sweep canceled: ...", "sweep
   timeout") and end once they all are;
3. submit trials recorded but never submitted (a controller died between the two);
4. judge running trials by the early-termination policy from the primary metric's history
   (rank 0); a losing trial gets its stop file (holding the reason, so ``should_stop()``
   turns true and its supervisor gives it ``kill_grace`` to exit on its own), then a cancel
   request with the reason ("early termination: bandit at step 7");
5. while fewer than ``max_concurrent_trials`` trials are active and fewer than
   ``max_total_trials`` exist, ask the sampler for trial ``max index + 1`` (indexes are never
   reused), record it and submit it to its compute target (for local compute, to a
   :class:`~runyard.supervisor.pool.SupervisorPool`, whose workers supervise trial after
   trial without a new interpreter each; a trial's end wakes the loop at once). On local
   compute one trial more is recorded, unless the sampler learns from results: it waits in
   the pool, whose limit is ``max_concurrent_trials``, and starts as soon as a trial ends;
6. record the best trial and the trial count on the parent when they changed (at most every
   :data:`PUBLISH_EVERY` seconds while trials run, and when the sweep ends).

The sweep ends when no trial is active and no more will start: Completed when at least one
trial is eligible as the best (see :mod:`runyard.sweep.results`), Failed when none is ("every
trial failed", "no trial logged val_acc"), Canceled when canceled or timed out.

A dead controller: trials keep running under their own supervisors; the parent stays Running
(the store never marks a ``runyard.type=sweep`` run lost) with a stale heartbeat and a dead
``runyard.controller_pid``; ``runyard sweep resume`` starts a new controller. Two controllers
never drive one sweep: each holds an exclusive lock on ``runs/<sweep>/controller.lock``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from runyard.errors import BackendError, InvalidTransition, UserError
from runyard.records import MetricPoint, Run, RunStatus
from runyard.supervisor.pool import SupervisorPool
from runyard.sweep.results import (
    BEST_TRIAL_TAG,
    BEST_VALUE_METRIC,
    CONTROLLER_ERROR_TAG,
    CONTROLLER_HOST_TAG,
    CONTROLLER_PID_TAG,
    INDEX_TAG,
    TRIAL_COUNT_METRIC,
    Trial,
    best_of,
    best_tags,
    sweep_spec_of,
    trial_of,
)
from runyard.sweep.samplers import Sampler, TrialResult
from runyard.sweep.spec import SweepSpec
from runyard.sweep.trial import trial_job, trial_params
from runyard.workspace import Resources

if TYPE_CHECKING:
    from runyard.backends import Backend

#: Seconds between looks at the trials.
POLL = 0.1
#: Seconds between early-termination judgments.
JUDGE_POLL = 0.25
#: Seconds between reapings of trials whose supervisor vanished.
REAP_EVERY = 2.0
#: Seconds a trial handed to a pool worker may stay unclaimed before the controller records
#: that worker as its supervisor itself.
HAND_GRACE = 1.0
#: Seconds the controller waits, woken by a trial's end, before it looks (see _loop).
HANDOVER_YIELD = 0.003
#: Seconds between full reads of the running trials (their latest metrics) for ``on_update``.
DISPLAY_POLL = 0.5
#: Seconds between updates of the parent's best trial and trial count while trials run.
PUBLISH_EVERY = 0.5
LOCK_FILE, LOG_FILE = "controller.lock", "controller.log"


@dataclass(frozen=True)
class SweepState:
    """What ``on_update`` receives: the parent and every trial (by index) as last read."""

    parent: Run
    spec: SweepSpec
    trials: list[Trial]
    best: Trial | None


def stop_file(resources: Resources, run_id: str) -> Path:
    """The run's stop file (``RUNYARD_STOP_FILE``)."""
    return resources.layout.run_dir(run_id) / "stop"


def controller_alive(resources: Resources, parent: Run) -> bool:
    """Whether a controller drives the sweep now: its lock is held (this host), or its
    heartbeat is fresh (another host)."""
    host = parent.tags.get(CONTROLLER_HOST_TAG)
    if parent.status.is_terminal or host is None:
        return False
    if host == socket.gethostname():
        path = resources.layout.run_dir(parent.id) / LOCK_FILE
        try:
            with path.open("a") as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(f, fcntl.LOCK_UN)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False
    beat = parent.heartbeat_at
    return beat is not None and time.time() - beat < resources.settings.heartbeat_timeout


@contextlib.contextmanager
def _controller_lock(resources: Resources, sweep_id: str) -> Iterator[IO[str]]:
    path = resources.layout.run_dir(sweep_id) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"sweep {sweep_id} already has a running controller") from None
        try:
            yield f
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class SweepController:
    """Drives the sweep ``sweep_id`` (a recorded parent run) in this process until it ends.

    ``on_update`` receives a :class:`SweepState` whenever a trial or the parent changed.
    :meth:`interrupt` (from a signal handler or another thread) cancels the sweep."""

    def __init__(
        self,
        resources: Resources,
        sweep_id: str,
        *,
        on_update: Callable[[SweepState], None] | None = None,
        poll: float = POLL,
    ):
        self.resources = resources
        self.store = resources.store
        parent = self.store.get_run(sweep_id)
        self.sweep_id = parent.id
        self.spec = sweep_spec_of(parent)
        self.metric = self.spec.objective.primary_metric
        self.on_update = on_update
        self.poll = poll
        self._interrupted: str | None = None
        self._wake = threading.Event()
        self._sampler: Sampler | None = None
        self._exhausted = False
        #: Every trial as last read, by run id; ended ones are not read again. Changed
        #: through :meth:`_keep` only.
        self._runs: dict[str, Run] = {}
        #: Each trial's :class:`Trial` view, by run id (made again when its record changes).
        self._trial_views: dict[str, Trial] = {}
        #: The trials by index and the best of them; None once a trial changed.
        self._view: tuple[list[Trial], Trial | None] | None = None
        #: The index the next trial gets (indexes are never reused).
        self._next_index = 0
        #: Trials that ended since the last whole reads for ``on_update`` (see _refresh).
        self._unread: set[str] = set()
        #: Primary-metric values by trial id (ended trials: final, read once).
        self._values: dict[str, list[float]] = {}
        #: How many steps of each running trial were judged (from step 1 after a resume too:
        #: a decision depends only on the histories, as if each value were judged on arrival).
        self._judged: dict[str, int] = {}
        self._submitted: set[str] = set()
        self._backends: dict[str, Backend] = {}
        #: Trials handed to a pool worker (filled from the pool's reader thread too), with
        #: the worker's pid: the worker records itself with its claim, and _refresh records
        #: it for a trial still Queued without one after HAND_GRACE (so that a worker that
        #: died before claiming is reaped).
        self._handed: queue.SimpleQueue[tuple[str, int]] = queue.SimpleQueue()
        self._unclaimed: dict[str, tuple[int, float]] = {}  # by run id: (pid, handed at)
        #: Whether a trial is recorded ahead of the free slots (see _propose).
        self._ahead = False
        #: Supervises the local trials; a trial's end wakes the loop at once.
        self._pool = SupervisorPool(
            resources.layout.root,
            on_end=lambda _id: self._wake.set(),
            on_start=lambda run_id, pid: self._handed.put((run_id, pid)),
            limit=self.spec.limits.max_concurrent_trials,
        )
        self._published: tuple[object, ...] | None = None
        self._next_publish = 0.0
        self._shown: tuple[object, ...] | None = None
        self._seen: object = None

    # -- public --------------------------------------------------------------------------
    def interrupt(self, reason: str = "canceled by user (interrupt)") -> None:
        """Cancel the sweep (its trials are canceled, then it ends Canceled)."""
        self._interrupted = reason
        self._wake.set()

    def run(self) -> Run:
        """Drive the sweep to its end and return the final parent record.

        Returns at once for a sweep that already ended. Raises
        :class:`~runyard.errors.UserError` when another controller drives it."""
        if self.store.get_run(self.sweep_id).status.is_terminal:
            return self.store.get_run(self.sweep_id)
        with _controller_lock(self.resources, self.sweep_id), self._pool:
            parent = self._enter()
            if parent.status.is_terminal:
                return parent
            try:
                return self._loop(parent)
            except BaseException as e:
                with contextlib.suppress(Exception):
                    message = f"{type(e).__name__}: {e}"
                    self.store.set_tags(self.sweep_id, {CONTROLLER_ERROR_TAG: message[:500]})
                raise

    # -- the loop --------------------------------------------------------------------------
    def _enter(self) -> Run:
        """Record this controller on the parent and move the parent to Running."""
        parent = self.store.get_run(self.sweep_id)
        for status in (RunStatus.PREPARING, RunStatus.STARTING, RunStatus.RUNNING):
            if parent.status.is_terminal or parent.status is RunStatus.FINALIZING:
                break
            order = [RunStatus.QUEUED, RunStatus.PREPARING, RunStatus.STARTING, RunStatus.RUNNING]
            if order.index(parent.status) < order.index(status):
                parent = parent.with_state(self.store.transition(self.sweep_id, status))
        if parent.status.is_terminal:
            return parent
        self.store.set_tags(
            self.sweep_id,
            {CONTROLLER_PID_TAG: str(os.getpid()), CONTROLLER_HOST_TAG: socket.gethostname()},
        )
        self.store.delete_tag(self.sweep_id, CONTROLLER_ERROR_TAG)
        self.store.heartbeat(self.sweep_id)
        for run in self.store.search_runs(parent_id=self.sweep_id):
            if INDEX_TAG in run.tags:
                self._keep(run)
                self._next_index = max(self._next_index, int(run.tags[INDEX_TAG]) + 1)
                if self.spec.early_termination is not None:
                    self._values[run.id] = self._history(run.id)
        return self.store.get_run(self.sweep_id)

    def _loop(self, parent: Run) -> Run:
        limits = self.spec.limits
        beat_every = self.resources.settings.heartbeat_interval
        next_beat = next_reap = next_judge = next_display = 0.0
        ending: tuple[str, str] | None = None  # (parent's reason, trials' reason)
        while True:
            now = time.monotonic()
            if self._interrupted is not None and not parent.cancel_requested:
                with contextlib.suppress(InvalidTransition):
                    self.store.request_cancel(self.sweep_id, self._interrupted)
            display = self.on_update is not None and now >= next_display
            if display:
                next_display = now + DISPLAY_POLL
            parent = self._refresh(parent, display=display)
            if parent.status.is_terminal:  # ended by someone else (a cancel seeing no controller)
                return self.store.get_run(self.sweep_id)
            if ending is None:
                ending = self._why_end(parent)
                if ending is not None:
                    self._cancel_trials(ending[1])
            if ending is None:
                self._pool.revive()  # trials waiting in a pool helper that died
                self._submit_pending()
                if now >= next_judge:
                    next_judge = now + JUDGE_POLL
                    self._judge()
                self._propose(parent)
            self._publish(parent)
            active = [r for r in self._runs.values() if not r.status.is_terminal]
            if not active and (ending is not None or self._done_proposing(limits.max_total_trials)):
                return self._finish(ending)
            if now >= next_beat:
                next_beat = now + beat_every
                self.store.heartbeat(self.sweep_id)
            if now >= next_reap and active:
                next_reap = now + REAP_EVERY
                self._reap()
            if self._wake.wait(self.poll) and self._ahead:
                # A trial ended and the one recorded ahead is being handed to its worker
                # now: let that start first, as both compete for the same cores.
                time.sleep(HANDOVER_YIELD)
            self._wake.clear()

    def _why_end(self, parent: Run) -> tuple[str, str] | None:
        if parent.cancel_requested:
            reason = parent.cancel_reason or "canceled by user"
            return reason, f"sweep canceled: {reason}"
        timeout = self.spec.limits.timeout
        started = parent.started_at or parent.created_at
        if timeout is not None and time.time() >= started + timeout:
            return f"sweep timeout after {timeout:g}s", "sweep timeout"
        return None

    def _done_proposing(self, max_total: int) -> bool:
        return self._exhausted or len(self._runs) >= max_total

    def _refresh(self, parent: Run, *, display: bool) -> Run:
        """Read the state of the parent and of every trial that had not ended (one query).
        A trial that ended gets its primary metric's last value read (its history too, under
        an early-termination policy); with ``display``, every trial that had not ended, and
        those that ended since the last display, is read whole. Returns the parent as it is
        now."""
        while not self._handed.empty():
            run_id, pid = self._handed.get()
            self._unclaimed[run_id] = (pid, time.monotonic())
        active = [run_id for run_id, r in self._runs.items() if not r.status.is_terminal]
        states = self.store.run_states([self.sweep_id, *active])
        parent = parent.with_state(states[self.sweep_id])
        for run_id, (pid, handed_at) in list(self._unclaimed.items()):
            state = states.get(run_id)
            if state and state.status is RunStatus.QUEUED and state.supervisor_pid is None:
                if time.monotonic() - handed_at < HAND_GRACE:
                    continue  # its worker claims it any moment
                self.store.attach_supervisor(run_id, host=socket.gethostname(), pid=pid)
            del self._unclaimed[run_id]
        ended = [i for i in active if i in states and states[i].status.is_terminal]
        if ended:
            values = self.store.latest_metrics(ended, key=self.metric)
            for run_id in ended:
                run = self._runs[run_id].with_state(states[run_id])
                metrics = {**run.metrics, **values.get(run_id, {})}
                self._keep(dataclasses.replace(run, metrics=metrics))
                self._judged.pop(run_id, None)
                if self.spec.early_termination is not None:
                    self._values[run_id] = self._history(run_id)
            if self.on_update is not None:
                self._unread.update(ended)  # for the display, whole, with its next reads
        for run_id in active:
            state = states.get(run_id)
            if state is not None and run_id not in ended and state != self._runs[run_id].state:
                self._keep(self._runs[run_id].with_state(state))
        if display:
            self._read_whole([i for i in active if i in states and i not in ended])
        return parent

    def _read_whole(self, running: list[str]) -> None:
        """Read whole the trials ``running`` and those that ended since the last call."""
        ids = [*running, *self._unread]
        self._unread.clear()
        for run in self.store.search_runs(ids=ids) if ids else ():
            self._keep(run)

    def _history(self, run_id: str) -> list[float]:
        return [p.value for p in self.store.metric_history(run_id, self.metric, rank=0)]

    # -- starting trials -----------------------------------------------------------------
    def _propose(self, parent: Run) -> None:
        limits = self.spec.limits
        active = [run_id for run_id, r in self._runs.items() if not r.status.is_terminal]
        room = limits.max_concurrent_trials - len(active)
        # One trial ahead: recorded and waiting in the pool, it starts the moment a slot
        # frees (no round trip through this loop). Not when the sampler learns from results,
        # nor while trials another controller started still run (the pool does not count
        # them).
        self._ahead = (
            self.spec.trial.compute == "local"
            and not self._sampler_().uses_history
            and self._submitted.issuperset(active)
        )
        room += 1 if self._ahead else 0
        while (
            room > 0 and not self._done_proposing(limits.max_total_trials) and not self._interrupted
        ):
            index = self._next_index
            sampler = self._sampler_()
            params = sampler.ask(index, self._results() if sampler.uses_history else ())
            if params is None:
                self._exhausted = True
                return
            job = trial_job(self.spec, params)
            base = self.spec.name or self.spec.trial.name or "trial"
            run = self.store.create_run(
                experiment=job.experiment,
                spec=job.to_dict(),
                compute=job.compute,
                name=f"{base}-{index}",
                tags={**job.tags, INDEX_TAG: str(index)},
                params=trial_params(params),
                snapshot_id=parent.snapshot_id,
                parent_id=self.sweep_id,
                git=parent.git,
            )
            self._keep(run)
            self._next_index = index + 1
            self._submit(run, created=True)
            room -= 1

    def _sampler_(self) -> Sampler:
        if self._sampler is None:
            self._sampler = self.spec.sampler()
        return self._sampler

    def _results(self) -> list[TrialResult]:
        return [
            TrialResult(
                index=t.index,
                params=t.params,
                value=t.value if t.status.is_terminal else None,
                finished=t.status.is_terminal,
            )
            for t in self._trials()[0]
        ]

    def _submit_pending(self) -> None:
        """Submit trials recorded but never submitted (the last controller died between)."""
        for run in list(self._runs.values()):
            if (
                run.status is RunStatus.QUEUED
                and run.supervisor_pid is None
                and run.id not in self._submitted
            ):
                self._submit(run)

    def _submit(self, run: Run, *, created: bool = False) -> None:
        """Start the trial's supervisor (``created``: ``run`` is the record just created)."""
        from runyard.backends import get_backend

        self._submitted.add(run.id)
        try:
            if run.compute == "local":  # Queued with no supervisor: nothing to check
                pid = self._pool.start(run.id, record=run if created else None)
                if pid is not None:  # else it waits in the pool (on_start)
                    self._handed.put((run.id, pid))
                return
            backend = self._backends.get(run.compute)
            if backend is None:
                backend = self._backends[run.compute] = get_backend(run.compute, self.resources)
            backend.submit(run.id)
            return  # the record is read again at the next refresh
        except InvalidTransition:
            pass  # already submitted, or canceled meanwhile
        except (BackendError, UserError) as e:
            with contextlib.suppress(InvalidTransition):
                self.store.transition(run.id, RunStatus.FAILED, reason=f"could not start: {e}")
        self._keep(self.store.get_run(run.id))

    # -- stopping trials -----------------------------------------------------------------
    def _judge(self) -> None:
        policy = self.spec.early_termination
        if policy is None:
            return
        running = [
            r
            for r in self._runs.values()
            if r.status is RunStatus.RUNNING and not r.cancel_requested
        ]
        for run in running:
            self._values[run.id] = self._history(run.id)
        history = {k: v for k, v in self._values.items() if v}
        finished = {k for k, r in self._runs.items() if r.status is RunStatus.COMPLETED}
        goal = self.spec.objective.goal
        for run in running:
            values = history.get(run.id)
            if not values:
                continue
            since = self._judged.get(run.id, 0)
            decision = policy.decide(run.id, history, goal, finished, since=since)
            self._judged[run.id] = len(values)
            if decision is not None:
                self._stop(run, decision.reason)

    def _stop(self, run: Run, reason: str) -> None:
        """Ask a trial to stop: its stop file first (``should_stop()``), then the cancel."""
        path = stop_file(self.resources, run.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(reason + "\n", encoding="utf-8")
        with contextlib.suppress(InvalidTransition):
            self._keep(self.store.request_cancel(run.id, reason))

    def _cancel_trials(self, reason: str) -> None:
        for run in list(self._runs.values()):
            if not run.status.is_terminal and not run.cancel_requested:
                with contextlib.suppress(InvalidTransition):
                    self._keep(self.store.request_cancel(run.id, reason))

    def _reap(self) -> None:
        from runyard.supervisor import reap_lost

        reap_lost(self.resources)

    # -- recording results -----------------------------------------------------------------
    def _publish(self, parent: Run, *, now: bool = False) -> None:
        """Record the best trial and the trial count on the parent when they changed (at
        most every :data:`PUBLISH_EVERY` seconds, unless ``now``), and tell ``on_update``
        when anything changed."""
        fresh = self._view is None
        trials, best = self._trials()
        ended = sum(1 for r in self._runs.values() if r.status.is_terminal)
        key = (ended, len(trials), best.id if best else None, best.value if best else None)
        if self._published is None:  # as the parent has it: a resumed sweep logs no repeat
            recorded = parent.metrics.get(TRIAL_COUNT_METRIC)
            if recorded == len(trials) and parent.tags.get(BEST_TRIAL_TAG) == key[2]:
                self._published = key
        if key != self._published and (now or time.monotonic() >= self._next_publish):
            self._published = key
            self._next_publish = time.monotonic() + PUBLISH_EVERY
            stamp = time.time()
            points = [MetricPoint(TRIAL_COUNT_METRIC, float(len(trials)), ended, stamp)]
            if best is not None and best.value is not None:
                points.append(MetricPoint(BEST_VALUE_METRIC, best.value, ended, stamp))
                self.store.set_tags(self.sweep_id, best_tags(best))
            self.store.log_metrics(self.sweep_id, points)
        if self.on_update is not None:
            if fresh or self._shown is None:  # what on_update shows of the trials
                self._shown = tuple(
                    (r.id, r.status, r.cancel_requested, tuple(r.metrics.items()))
                    for r in self._runs.values()
                )
            seen = (parent.status, parent.cancel_requested, self._shown)
            if seen != self._seen:
                self._seen = seen
                self.on_update(SweepState(parent, self.spec, trials, best))

    def _keep(self, run: Run) -> None:
        """Hold ``run`` as the trial's latest record."""
        self._runs[run.id] = run
        self._trial_views[run.id] = trial_of(run, self.spec)
        self._view = None

    def _trials(self) -> tuple[list[Trial], Trial | None]:
        """The trials by index, and the best of them (computed again after a change)."""
        if self._view is None:
            trials = sorted(self._trial_views.values(), key=lambda t: t.index)
            self._view = trials, best_of(trials, self.spec.objective.goal)
        return self._view

    def _finish(self, ending: tuple[str, str] | None) -> Run:
        if self.on_update is not None:
            self._read_whole([])  # its last view has every trial whole
        parent = self.store.get_run(self.sweep_id)
        self._publish(parent, now=True)
        trials, best = self._trials()
        try:
            if ending is not None:
                self.store.transition(self.sweep_id, RunStatus.CANCELED, reason=ending[0])
            elif best is None:
                failed = sum(1 for t in trials if t.status is RunStatus.FAILED)
                if trials and failed == len(trials):
                    why = f"every trial failed ({failed} of {failed})"
                else:
                    why = f"no trial logged {self.metric}" if trials else "no trial ran"
                self.store.transition(self.sweep_id, RunStatus.FAILED, reason=why)
            else:
                if parent.status is not RunStatus.FINALIZING:
                    self.store.transition(self.sweep_id, RunStatus.FINALIZING)
                self.store.transition(self.sweep_id, RunStatus.COMPLETED)
        except InvalidTransition:
            if not self.store.run_state(self.sweep_id).status.is_terminal:
                raise
        final = self.store.get_run(self.sweep_id)
        if self.on_update is not None:
            self.on_update(SweepState(final, self.spec, trials, best))
        return final
