"""The sweep spec: a trial job, a search space, an objective, a sampler, limits and an early
termination policy. Loaded from YAML shaped like Azure ML v2's sweep job::

    type: sweep
    trial: job.yaml                        # or an inline command job mapping
    search_space:
      lr:     {type: loguniform, min_value: 1.0e-4, max_value: 1.0e-1}
      hidden: {type: choice, values: [32, 64, 128]}
    objective: {primary_metric: val_acc, goal: maximize}
    sampling_algorithm: random             # or {type: random, seed: 1}; grid | sobol | bayesian
    early_termination: {type: bandit, slack_factor: 0.1, evaluation_interval: 1}
    limits: {max_total_trials: 40, max_concurrent_trials: 2, timeout: 2h, trial_timeout: 10m}

:mod:`runyard.sweep.load` validates such files into the frozen data here, which
:meth:`SweepSpec.to_dict` / :meth:`SweepSpec.from_dict` carry through the store.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from typing import Any

from runyard.spec import JobSpec
from runyard.sweep.policies import POLICIES, EarlyTerminationPolicy, Goal
from runyard.sweep.samplers import Sampler, make_sampler
from runyard.sweep.space import Distribution, parse_search_space


@dataclass(frozen=True)
class Objective:
    primary_metric: str
    goal: Goal = "maximize"


@dataclass(frozen=True)
class SamplingAlgorithm:
    """``type`` is ``grid``, ``random``, ``sobol`` or ``bayesian``. ``seed`` fixes the draws."""

    type: str = "random"
    seed: int | None = None


@dataclass(frozen=True)
class SweepLimits:
    """``timeout`` ends the whole sweep, ``trial_timeout`` each trial (seconds)."""

    max_total_trials: int
    max_concurrent_trials: int = 1
    timeout: float | None = None
    trial_timeout: float | None = None


@dataclass(frozen=True)
class SweepSpec:
    trial: JobSpec
    search_space: dict[str, Distribution]
    objective: Objective
    limits: SweepLimits
    sampling_algorithm: SamplingAlgorithm = field(default_factory=SamplingAlgorithm)
    early_termination: EarlyTerminationPolicy | None = None
    name: str | None = None
    experiment: str = "Default"
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    source: str = "<python>"

    def sampler(self) -> Sampler:
        """The sampler this sweep proposes trials with (needs a seed unless grid)."""
        return make_sampler(
            self.sampling_algorithm.type,
            self.search_space,
            seed=self.sampling_algorithm.seed,
            goal=self.objective.goal,
        )

    def with_seed(self, seed: int | None = None) -> SweepSpec:
        """This spec with its seed fixed: the one it has, else ``seed``, else a fresh one.
        A controller calls this once, before recording the sweep."""
        if self.sampling_algorithm.seed is not None:
            return self
        seed = secrets.randbelow(2**31) if seed is None else seed
        return dataclasses.replace(
            self, sampling_algorithm=dataclasses.replace(self.sampling_algorithm, seed=seed)
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict from which :meth:`from_dict` rebuilds the same spec."""
        return {
            "trial": self.trial.to_dict(),
            "search_space": {k: d.to_dict() for k, d in self.search_space.items()},
            "objective": dataclasses.asdict(self.objective),
            "limits": dataclasses.asdict(self.limits),
            "sampling_algorithm": dataclasses.asdict(self.sampling_algorithm),
            "early_termination": self.early_termination.to_dict()
            if self.early_termination
            else None,
            "name": self.name,
            "experiment": self.experiment,
            "description": self.description,
            "tags": dict(self.tags),
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepSpec:
        source = data.get("source", "<python>")
        et = data.get("early_termination")
        return cls(
            trial=JobSpec.from_dict(data["trial"]),
            search_space=parse_search_space(data["search_space"], source=source),
            objective=Objective(**data["objective"]),
            limits=SweepLimits(**data["limits"]),
            sampling_algorithm=SamplingAlgorithm(**data["sampling_algorithm"]),
            early_termination=None
            if et is None
            else POLICIES[et["type"]](**{k: v for k, v in et.items() if k != "type"}),
            name=data.get("name"),
            experiment=data.get("experiment", "Default"),
            description=data.get("description"),
            tags=dict(data.get("tags") or {}),
            source=source,
        )
