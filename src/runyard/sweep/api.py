"""Sweeps from Python: start, resume, cancel and read them.

Each function takes an open workspace (:class:`runyard.client.Workspace`, or the
:class:`~runyard.workspace.Resources` inner layers hold)::

    from runyard import Workspace
    from runyard.sweep import best_trial, run_sweep

    with Workspace.open() as ws:
        sweep = run_sweep(ws, "sweep.yaml")          # returns when the sweep has ended
        print(sweep.status, best_trial(ws, sweep.id))

A sweep is a parent run on the pseudo compute target ``sweep`` (it takes no slot; its trials
run on their own target). In the foreground, SIGINT and SIGTERM cancel the sweep (a second one
stops at once, leaving the cancel to finish on ``resume``). Detached, the controller is
``python -m runyard.sweep SWEEP_ID --workspace ROOT``, its output in
``runs/<sweep>/controller.log``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from runyard.detach import start_detached
from runyard.errors import InvalidTransition, UserError
from runyard.interrupts import on_interrupt
from runyard.records import Run, RunStatus
from runyard.sweep.controller import LOG_FILE, SweepController, SweepState, controller_alive
from runyard.sweep.results import (
    CONTROLLER_PID_TAG,
    SPEC_KEY,
    SWEEP_TYPE,
    TYPE_TAG,
    Trial,
    best_of,
    is_sweep,
    ranked,
    sweep_spec_of,
    trials_of,
)
from runyard.sweep.spec import SweepSpec
from runyard.workspace import Resources

#: The compute target recorded on sweep parent runs: they are driven by a controller and
#: hold no slot on any target.
SWEEP_COMPUTE = "sweep"
#: Starts ``"$@"`` in the background with its output appended to ``$0`` and prints its pid
#: (as the local backend starts supervisors: the shell exits at once, nothing is tied to the
#: caller's lifetime).


class _HasResources(Protocol):
    @property
    def resources(self) -> Resources: ...


WorkspaceLike = Resources | _HasResources
UpdateHook = Callable[[SweepState], None]


def _res(ws: WorkspaceLike) -> Resources:
    return ws if isinstance(ws, Resources) else ws.resources


def create_sweep(ws: WorkspaceLike, spec: SweepSpec | str | Path) -> Run:
    """Validate ``spec`` (a :class:`SweepSpec` or a sweep YAML path), fix its seed, snapshot
    its trial's code once for every trial, and record the sweep's parent run (Queued)."""
    from runyard.backends import get_backend
    from runyard.sweep.load import load_sweep

    resources = _res(ws)
    sweep = spec if isinstance(spec, SweepSpec) else load_sweep(spec)
    sweep = sweep.with_seed()
    try:
        sweep.sampler()  # an uninstalled extra or a bad space fails before anything is recorded
    except ValueError as e:
        raise UserError(f"{sweep.source}: {e}") from None
    get_backend(sweep.trial.compute, resources)
    snapshot_id = git = None
    if sweep.trial.code is not None:
        from runyard.snapshot import git_info, take_snapshot

        code = Path(sweep.trial.code).expanduser().resolve()
        sweep = dataclasses.replace(sweep, trial=sweep.trial.replace(code=str(code)))
        s = resources.settings
        snapshot_id = take_snapshot(
            code,
            resources.layout.snapshots,
            max_files=s.snapshot_max_files,
            max_bytes=s.snapshot_max_bytes,
        ).id
        info = git_info(code)
        git = info.to_record() if info is not None else None
    name = sweep.name or (f"{sweep.trial.name}-sweep" if sweep.trial.name else None)
    run: Run = resources.store.create_run(
        experiment=sweep.experiment,
        spec={"type": SWEEP_TYPE, SPEC_KEY: sweep.to_dict()},
        compute=SWEEP_COMPUTE,
        name=name,
        tags={**sweep.tags, TYPE_TAG: SWEEP_TYPE},
        snapshot_id=snapshot_id,
        git=git,
    )
    return run


def run_sweep(
    ws: WorkspaceLike,
    spec: SweepSpec | str | Path,
    *,
    detach: bool = False,
    on_update: UpdateHook | None = None,
) -> Run:
    """Record the sweep and drive it: here until it ends (returning the ended parent run),
    or with ``detach`` in a background controller (returning the parent run at once)."""
    resources = _res(ws)
    parent = create_sweep(resources, spec)
    if detach:
        start_controller(resources, parent.id)
        return parent
    return _drive(resources, parent.id, on_update)


def resume_sweep(
    ws: WorkspaceLike,
    sweep_id: str,
    *,
    detach: bool = False,
    on_update: UpdateHook | None = None,
) -> Run:
    """Continue a sweep whose controller stopped (killed, crashed, machine restarted):
    trials still running are followed, trials recorded but never submitted are submitted,
    new trials take the next indexes. Refused for an ended sweep or one with a live
    controller."""
    resources = _res(ws)
    parent = get_sweep(resources, sweep_id)
    if parent.status.is_terminal:
        raise InvalidTransition(f"sweep {parent.id} is already {parent.status}")
    if controller_alive(resources, parent):
        pid = parent.tags.get(CONTROLLER_PID_TAG)
        raise UserError(f"sweep {parent.id} already has a running controller (pid {pid})")
    if detach:
        start_controller(resources, parent.id)
        return parent
    return _drive(resources, parent.id, on_update)


def cancel_sweep(ws: WorkspaceLike, sweep_id: str, reason: str = "canceled by user") -> Run:
    """Cancel a sweep and its trials. With a live controller this asks it (it cancels the
    trials, waits for them, then records the sweep Canceled); without one, the trials are
    asked to stop here and the sweep is recorded Canceled at once."""
    resources = _res(ws)
    store = resources.store
    parent = get_sweep(resources, sweep_id)
    if parent.status.is_terminal:
        raise InvalidTransition(f"sweep {parent.id} is already {parent.status}")
    parent = store.request_cancel(parent.id, reason)
    if controller_alive(resources, parent):
        return parent
    for trial in store.search_runs(parent_id=parent.id):
        if not trial.status.is_terminal:
            with contextlib.suppress(InvalidTransition):
                store.request_cancel(trial.id, f"sweep canceled: {reason}")
    with contextlib.suppress(InvalidTransition):
        store.transition(parent.id, RunStatus.CANCELED, reason=reason)
    final: Run = store.get_run(parent.id)
    return final


def get_sweep(ws: WorkspaceLike, sweep_id: str) -> Run:
    """The sweep's parent run (by id or unique prefix); a UserError if it is not a sweep."""
    run: Run = _res(ws).store.get_run(sweep_id)
    if not is_sweep(run):
        raise UserError(f"run {run.id} is not a sweep")
    return run


def sweep_trials(ws: WorkspaceLike, sweep_id: str) -> list[Trial]:
    """The sweep's trials, best first by the objective; trials without it last, by index."""
    resources = _res(ws)
    parent = get_sweep(resources, sweep_id)
    spec = sweep_spec_of(parent)
    runs = resources.store.search_runs(parent_id=parent.id)
    return ranked(trials_of(runs, spec), spec.objective.goal)


def best_trial(ws: WorkspaceLike, sweep_id: str) -> Trial | None:
    """The best trial that ended (not Failed) with the objective logged, or None."""
    resources = _res(ws)
    spec = sweep_spec_of(get_sweep(resources, sweep_id))
    return best_of(sweep_trials(resources, sweep_id), spec.objective.goal)


def start_controller(resources: Resources, sweep_id: str) -> int:
    """Start ``python -m runyard.sweep SWEEP_ID`` detached; returns its pid."""
    log = resources.layout.run_dir(sweep_id) / LOG_FILE
    argv = [sys.executable, "-m", "runyard.sweep", sweep_id]
    argv += ["--workspace", str(resources.layout.root)]
    return start_detached(argv, log, what=f"a controller for sweep {sweep_id}")


def _drive(resources: Resources, sweep_id: str, on_update: UpdateHook | None) -> Run:
    controller = SweepController(resources, sweep_id, on_update=on_update)
    with interrupts_cancel(controller):
        return controller.run()


def interrupts_cancel(controller: SweepController) -> AbstractContextManager[None]:
    """While driving a sweep from the main thread: the first SIGINT or SIGTERM cancels the
    sweep, a second raises KeyboardInterrupt (the cancel then finishes on resume)."""

    def cancel(count: int) -> None:
        if count > 1:
            raise KeyboardInterrupt
        controller.interrupt("canceled by user (interrupt)")

    return on_interrupt(cancel)
