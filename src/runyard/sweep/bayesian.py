"""Bayesian sampling with Optuna's TPE, driven by ask/tell from the trials' results.

Optuna keeps no storage of its own here: each ``ask`` builds an in-memory study from the
results it is given (the store is the only record) and asks it for one trial. Choice
parameters are Optuna categoricals; every other parameter is searched on its quantile scale
(a float in [0, 1] mapped through the distribution, so ``loguniform`` is searched in log space
and ``normal`` by probability), then rounded as its distribution says. Trials still running are
added as running, so TPE (with its default "constant liar") spreads concurrent proposals.

Trial ``i`` uses a TPE seeded from ``(seed, i)``: the same results give the same proposal.
Needs the ``sweep`` extra (``pip install 'runyard[sweep]'``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from runyard.errors import UserError
from runyard.sweep.samplers import Params, Sampler, TrialResult, require_seed
from runyard.sweep.space import Choice, Distribution

if TYPE_CHECKING:
    from runyard.sweep.policies import Goal


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise UserError("bayesian sampling needs optuna: pip install 'runyard[sweep]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


class BayesianSampler(Sampler):
    """Optuna TPE over the search space; see the module docstring."""

    type = "bayesian"
    uses_history = True

    def __init__(
        self, space: Mapping[str, Distribution], *, seed: int | None = None, goal: Goal = "maximize"
    ):
        super().__init__(space, seed=require_seed(self.type, seed), goal=goal)
        self._optuna = _optuna()
        od = self._optuna.distributions
        self._dists = {
            name: od.CategoricalDistribution(list(d.values))
            if isinstance(d, Choice)
            else od.FloatDistribution(0.0, 1.0)
            for name, d in self.space.items()
        }

    def _encode(self, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """Params of an earlier trial in Optuna's terms, or None if they do not fit the space."""
        out: dict[str, Any] = {}
        for name, dist in self.space.items():
            if name not in params:
                return None
            try:
                u = dist.to_unit(params[name])
            except (TypeError, ValueError):
                return None
            out[name] = dist.from_unit(u) if isinstance(dist, Choice) else u
        return out

    def ask(self, index: int, history: Sequence[TrialResult] = ()) -> Params:
        optuna = self._optuna
        seed = random.Random(f"{self.seed}/{index}").getrandbits(32)
        study = optuna.create_study(
            direction=self.goal, sampler=optuna.samplers.TPESampler(seed=seed)
        )
        state = optuna.trial.TrialState
        for result in sorted(history, key=lambda r: r.index):
            params = self._encode(result.params)
            if params is None:
                continue
            if not result.finished:
                trial = optuna.trial.create_trial(
                    state=state.RUNNING, params=params, distributions=self._dists
                )
            elif result.value is None:
                trial = optuna.trial.create_trial(
                    state=state.FAIL, params=params, distributions=self._dists
                )
            else:
                trial = optuna.trial.create_trial(
                    value=result.value, params=params, distributions=self._dists
                )
            study.add_trial(trial)
        proposed = study.ask(self._dists).params
        return {
            name: proposed[name] if isinstance(d, Choice) else d.from_unit(proposed[name])
            for name, d in self.space.items()
        }
