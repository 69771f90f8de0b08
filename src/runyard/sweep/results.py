"""What a sweep is in the store, and what its trials achieved. Pure functions of run records.

A sweep is a parent run: its spec is ``{"type": "sweep", "sweep": SweepSpec.to_dict()}``, its
tags hold ``runyard.type=sweep`` and, while it runs, the best trial so far. Each trial is a
child run (``parent_id``) tagged with its index ``runyard.trial_index`` and holding its
sampled values as params.

A trial's objective is the **last** value of the primary metric it logged (rank 0), as Ray
Tune's default ``scope="last"``: the value of the model the trial ended with. A trial that
never logged the primary metric has no objective; it is reported as such and never ranked.
A Failed trial keeps its last value for display but is never the sweep's best.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from runyard.errors import UserError
from runyard.records import Run, RunStatus
from runyard.sweep.spec import SweepSpec

#: Tag marking a sweep's parent run (and value).
TYPE_TAG, SWEEP_TYPE = "runyard.type", "sweep"
#: Tag holding a trial's index (0, 1, ... in the order trials were created; never reused).
INDEX_TAG = "runyard.trial_index"
#: Tags on the parent naming the controller process that drives it (for ``sweep show``).
CONTROLLER_PID_TAG, CONTROLLER_HOST_TAG = "runyard.controller_pid", "runyard.controller_host"
#: Tag on the parent: the last error that stopped a controller (cleared by the next one).
CONTROLLER_ERROR_TAG = "runyard.controller_error"
#: Tags on the parent: the best trial's run id, and ``best.NAME`` for each of its params.
BEST_TRIAL_TAG, BEST_PARAM_PREFIX = "best_trial", "best."
#: Metrics on the parent (step = how many trials had ended when it was logged).
BEST_VALUE_METRIC, TRIAL_COUNT_METRIC = "best_value", "trial_count"
#: Key of the sweep spec in the parent run's spec dict.
SPEC_KEY = "sweep"


def is_sweep(run: Run) -> bool:
    return run.tags.get(TYPE_TAG) == SWEEP_TYPE


def sweep_spec_of(run: Run) -> SweepSpec:
    """The sweep spec recorded on a sweep's parent run."""
    if not is_sweep(run):
        raise UserError(f"run {run.id} is not a sweep")
    return SweepSpec.from_dict(run.spec[SPEC_KEY])


@dataclass(frozen=True)
class Trial:
    """One trial of a sweep as the store has it."""

    index: int
    run: Run
    #: Its sampled values as recorded (the search space's names only; the run's own params
    #: may hold more, logged by the script).
    params: dict[str, str]
    #: The last value of the primary metric (rank 0); None when it never logged it.
    value: float | None
    #: Why the trial is not ranked, in plain words ("no val_acc logged"), or None.
    note: str | None

    @property
    def id(self) -> str:
        return self.run.id

    @property
    def status(self) -> RunStatus:
        return self.run.status

    @property
    def eligible(self) -> bool:
        """Whether it may be the sweep's best: ended, not Failed, with a finite value."""
        return (
            self.run.status.is_terminal
            and self.run.status is not RunStatus.FAILED
            and self.value is not None
            and not math.isnan(self.value)
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (non-finite values as the strings NaN, Infinity, -Infinity)."""
        return {
            "index": self.index,
            "id": self.run.id,
            "status": self.run.status.value,
            "reason": self.run.reason,
            "params": dict(self.params),
            "value": None if self.value is None else _json_number(self.value),
            "note": self.note,
            "duration": self.run.duration,
        }


def _json_number(v: float) -> float | str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def trial_of(run: Run, spec: SweepSpec) -> Trial:
    """The trial view of a child run of the sweep ``spec``."""
    metric = spec.objective.primary_metric
    value = run.metrics.get(metric)
    note = None
    if value is None:
        note = f"no {metric} logged"
    elif math.isnan(value):
        note = f"{metric} is NaN"
    if run.status is RunStatus.FAILED and note is None:
        note = "failed"
    params = {k: run.params[k] for k in spec.search_space if k in run.params}
    index = int(run.tags.get(INDEX_TAG, "-1"))
    return Trial(index=index, run=run, params=params, value=value, note=note)


def trials_of(runs: Iterable[Run], spec: SweepSpec) -> list[Trial]:
    """Trial views of the child runs of the sweep ``spec``, by index."""
    return sorted((trial_of(r, spec) for r in runs if INDEX_TAG in r.tags), key=_by_index)


def _by_index(t: Trial) -> int:
    return t.index


def ranked(trials: Iterable[Trial], goal: str) -> list[Trial]:
    """Best first: trials with a finite value by it (ties: lower index first), then the
    others by index."""
    sign = -1.0 if goal == "maximize" else 1.0
    valued = [t for t in trials if t.value is not None and not math.isnan(t.value)]
    rest = [t for t in trials if t.value is None or math.isnan(t.value)]
    valued.sort(key=lambda t: (sign * (t.value or 0.0), t.index))
    rest.sort(key=_by_index)
    return valued + rest


def best_of(trials: Iterable[Trial], goal: str) -> Trial | None:
    """The best eligible trial (see :attr:`Trial.eligible`), or None."""
    eligible = [t for t in trials if t.eligible]
    return ranked(eligible, goal)[0] if eligible else None


def best_tags(best: Trial) -> dict[str, str]:
    """The parent's tags naming ``best``: its run id and ``best.NAME`` per param."""
    return {
        BEST_TRIAL_TAG: best.id,
        **{f"{BEST_PARAM_PREFIX}{k}": v for k, v in best.params.items()},
    }


def counts(trials: Iterable[Trial]) -> Mapping[str, int]:
    """How many trials are in each status (for progress lines)."""
    out: dict[str, int] = {}
    for t in trials:
        out[t.status.value] = out.get(t.status.value, 0) + 1
    return out
