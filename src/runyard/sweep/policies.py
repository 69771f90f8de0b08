"""Early termination: stop trials that are clearly losing, judged from the primary metric.

A trial's *step* is how many times it has logged the primary metric (Azure ML: "each time the
training script logs the primary metric counts as one interval"). A policy is judged from the
values each trial logged, in order — never from wall-clock time — so the same history always
gives the same decisions.

Bandit, median stopping and truncation selection follow Azure ML's HyperDrive policies
(``azureml.train.hyperdrive`` BanditPolicy / MedianStoppingPolicy / TruncationSelectionPolicy
reference pages, and Azure ML's "Hyperparameter tuning a model (v2)" article):

* a policy acts at every step that is a multiple of ``evaluation_interval`` and is at least
  ``delay_evaluation`` (``delay_evaluation: 200`` first acts at step 200);
* when a trial is judged at step N, every trial is seen as it was up to step N (its first N
  values), so young trials are not compared with what older trials reached later;
* a trial's standing at step N is the best value it logged up to step N.

ASHA follows Ray Tune's ``AsyncHyperBandScheduler`` with one bracket (Li et al., "A System
for Massively Parallel Hyperparameter Tuning", 2018).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from statistics import median
from typing import Any, ClassVar, Literal

Goal = Literal["maximize", "minimize"]
#: Each trial's primary-metric values in logging order, by trial id.
History = Mapping[str, Sequence[float]]


@dataclass(frozen=True)
class Decision:
    """Stop ``trial_id``: it lost at ``step`` under ``policy``."""

    trial_id: str
    step: int
    policy: str

    @property
    def reason(self) -> str:
        """What the trial's run records, e.g. ``early termination: bandit at step 7``."""
        return f"early termination: {self.policy} at step {self.step}"


def _best(values: Sequence[float], goal: Goal) -> float:
    return max(values) if goal == "maximize" else min(values)


def _better(a: float, b: float, goal: Goal) -> bool:
    return a > b if goal == "maximize" else a < b


class EarlyTerminationPolicy(abc.ABC):
    """Decides, from the metric history of all trials of a sweep, whether one trial stops.

    Contract: pure and deterministic — no I/O, no state between calls; the controller may
    rebuild the policy from the sweep spec at any time (after a crash, say) and get the same
    decisions from the same history. ``history`` holds every trial of the sweep that logged
    the primary metric (running and ended ones); ``finished`` names those that ended on their
    own (completed), which some policies treat differently.
    """

    #: The YAML ``type``.
    type: ClassVar[str]
    #: How the policy is named in reasons.
    title: ClassVar[str]

    def decide(
        self,
        trial_id: str,
        history: History,
        goal: Goal,
        finished: Collection[str] = frozenset(),
        *,
        since: int | None = None,
    ) -> Decision | None:
        """Judge ``trial_id`` at each of its steps after ``since`` (by default only its latest
        step) and return the first losing one, or ``None`` to let it run on.

        The controller passes ``since`` = the step count it had judged before, so that values
        that arrived in one batch are each judged, as if they had been seen one by one.
        A NaN counts as the worst possible value."""
        worst = -math.inf if goal == "maximize" else math.inf
        history = {t: [worst if math.isnan(x) else x for x in v] for t, v in history.items()}
        values = history.get(trial_id, ())
        first = max(len(values) if since is None else since + 1, 1)
        for step in range(first, len(values) + 1):
            if self._due(step) and self._loses(trial_id, step, history, goal, finished):
                return Decision(trial_id=trial_id, step=step, policy=self.title)
        return None

    def to_dict(self) -> dict[str, Any]:
        """The YAML form, e.g. ``{"type": "bandit", "slack_factor": 0.1, ...}``."""
        d = {"type": self.type, **asdict(self)}  # type: ignore[call-overload]
        return {k: v for k, v in d.items() if v is not None}

    @abc.abstractmethod
    def _due(self, step: int) -> bool:
        """Whether the policy acts at ``step``."""

    @abc.abstractmethod
    def _loses(
        self, trial_id: str, step: int, history: History, goal: Goal, finished: Collection[str]
    ) -> bool:
        """Whether ``trial_id`` (which has at least ``step`` values) loses at ``step``."""


@dataclass(frozen=True)
class _Interval(EarlyTerminationPolicy):
    evaluation_interval: int = 1
    delay_evaluation: int = 0

    def __post_init__(self) -> None:
        if self.evaluation_interval < 1:
            raise ValueError(
                f"evaluation_interval must be at least 1 (got {self.evaluation_interval})"
            )
        if self.delay_evaluation < 0:
            raise ValueError(f"delay_evaluation must not be negative (got {self.delay_evaluation})")

    def _due(self, step: int) -> bool:
        return step >= self.delay_evaluation and step % self.evaluation_interval == 0


@dataclass(frozen=True)
class BanditPolicy(_Interval):
    """Stop a trial whose best value is not within the slack of the best value any trial
    logged (both up to the same step).

    ``slack_amount``: stop when the trial's best is more than ``slack_amount`` worse than the
    overall best. ``slack_factor`` (Azure's example: best 0.8, factor 0.2 → a trial whose best
    ``y`` has ``y * 1.2 < 0.8`` stops): for maximize a trial stops when
    ``y < best / (1 + slack_factor)``, for minimize when ``y > best * (1 + slack_factor)``.
    For metrics below zero the same distances are taken from ``|best|``, so a factor keeps
    meaning "this much worse" whatever the sign.
    """

    slack_factor: float | None = None
    slack_amount: float | None = None
    type: ClassVar[str] = "bandit"
    title: ClassVar[str] = "bandit"

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.slack_factor is None) == (self.slack_amount is None):
            raise ValueError("bandit needs exactly one of slack_factor and slack_amount")
        for name in ("slack_factor", "slack_amount"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a number >= 0 (got {v})")

    def _loses(
        self, trial_id: str, step: int, history: History, goal: Goal, finished: Collection[str]
    ) -> bool:
        mine = _best(history[trial_id][:step], goal)
        best = _best([_best(v[:step], goal) for v in history.values() if v], goal)
        factor = self.slack_factor or 0.0
        if self.slack_amount is not None:
            slack = self.slack_amount
        elif goal == "maximize":
            slack = abs(best) * factor / (1 + factor)
        else:
            slack = abs(best) * factor
        return mine < best - slack if goal == "maximize" else mine > best + slack


@dataclass(frozen=True)
class MedianStoppingPolicy(_Interval):
    """Stop a trial whose best value up to step N is worse than the median, over all trials,
    of their running averages over steps 1..N (Azure ML's definition, after Google Vizier)."""

    type: ClassVar[str] = "median_stopping"
    title: ClassVar[str] = "median stopping"

    def _loses(
        self, trial_id: str, step: int, history: History, goal: Goal, finished: Collection[str]
    ) -> bool:
        mine = _best(history[trial_id][:step], goal)
        averages = [sum(v[:step]) / len(v[:step]) for v in history.values() if v]
        return _better(median(averages), mine, goal)


@dataclass(frozen=True, kw_only=True)
class TruncationSelectionPolicy(_Interval):
    """At step N, rank the trials that reached step N by their best value up to N and stop
    this one if it is among the worst ``truncation_percentage`` percent.

    The number cut is ``floor(truncation_percentage * n / 100)`` of the ``n`` trials ranked,
    so with 20% nothing is cut until five trials reached the step; ties are resolved in the
    trial's favour. With ``exclude_finished_jobs`` trials that completed are left out of the
    ranking (only trials still running compete)."""

    truncation_percentage: int
    exclude_finished_jobs: bool = False
    type: ClassVar[str] = "truncation_selection"
    title: ClassVar[str] = "truncation selection"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.truncation_percentage <= 99:
            raise ValueError(
                f"truncation_percentage must be between 1 and 99 (got {self.truncation_percentage})"
            )

    def _loses(
        self, trial_id: str, step: int, history: History, goal: Goal, finished: Collection[str]
    ) -> bool:
        mine = _best(history[trial_id][:step], goal)
        others = [
            _best(v[:step], goal)
            for t, v in history.items()
            if t != trial_id
            and len(v) >= step
            and not (self.exclude_finished_jobs and t in finished)
        ]
        ranked = len(others) + 1
        cut = self.truncation_percentage * ranked // 100
        better = sum(1 for o in others if _better(o, mine, goal))
        return cut > 0 and better >= ranked - cut


def _quantile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated quantile (numpy's default ``percentile`` method), ``p`` in [0, 1]."""
    xs = sorted(values)
    pos = p * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass(frozen=True)
class AshaPolicy(EarlyTerminationPolicy):
    """Asynchronous successive halving, as Ray Tune's ``AsyncHyperBandScheduler`` (one bracket).

    Rungs sit at steps ``grace_period * reduction_factor**k`` (rounded up) below ``max_steps``.
    A trial reaching a rung continues only if its value *at that step* is in the top
    ``1 / reduction_factor`` of the values the other trials logged at that rung: it stops when
    worse than their ``1 - 1/reduction_factor`` quantile. The first trial at a rung always
    continues. ``max_steps`` only bounds the rungs; runyard does not stop a trial for reaching
    it (Ray does) — the trial's own script decides how long it trains.
    """

    grace_period: int = 1
    reduction_factor: float = 4
    max_steps: int = 100
    type: ClassVar[str] = "asha"
    title: ClassVar[str] = "asha"

    def __post_init__(self) -> None:
        if self.grace_period < 1:
            raise ValueError(f"grace_period must be at least 1 (got {self.grace_period})")
        if not self.reduction_factor > 1:
            raise ValueError(
                f"reduction_factor must be greater than 1 (got {self.reduction_factor})"
            )
        if self.max_steps < self.grace_period:
            raise ValueError(
                f"max_steps must be at least grace_period "
                f"(got {self.max_steps} < {self.grace_period})"
            )

    @property
    def rungs(self) -> tuple[int, ...]:
        """The steps at which trials are compared."""
        out: list[int] = []
        k = 0
        while (step := math.ceil(self.grace_period * self.reduction_factor**k)) < self.max_steps:
            if not out or step > out[-1]:
                out.append(step)
            k += 1
        return tuple(out)

    def _due(self, step: int) -> bool:
        return step in self.rungs

    def _loses(
        self, trial_id: str, step: int, history: History, goal: Goal, finished: Collection[str]
    ) -> bool:
        sign = 1.0 if goal == "maximize" else -1.0
        mine = sign * history[trial_id][step - 1]
        others = [
            sign * v[step - 1] for t, v in history.items() if t != trial_id and len(v) >= step
        ]
        if not others:
            return False
        return mine < _quantile(others, 1 - 1 / self.reduction_factor)


#: Policy classes by their YAML ``type``.
POLICIES: dict[str, type[EarlyTerminationPolicy]] = {
    cls.type: cls
    for cls in (BanditPolicy, MedianStoppingPolicy, TruncationSelectionPolicy, AshaPolicy)
}
