"""Samplers: which parameters trial number ``i`` of a sweep gets.

One small interface, :class:`Sampler`, with one method, ``ask(index, history)``. Samplers keep
no state between calls: what trial ``i`` gets depends only on the sweep spec (space, seed),
``i`` and — for the Bayesian sampler — the results passed in. A controller that crashed and
resumed therefore asks again only for trials it had not yet started, and gets for them what
it would have got before.

* ``grid``: every combination of the choice values exactly once, in a stable order (the
  cartesian product, last parameter varying fastest); ``ask`` returns ``None`` when done.
* ``random``: each parameter of trial ``i`` is drawn from a generator seeded with
  ``(seed, i, name)`` alone.
* ``sobol``: point ``i`` of a scrambled Sobol sequence (SciPy's ``qmc.Sobol``, seeded).
* ``bayesian``: Optuna's TPE, rebuilt from the results at each ask (see :mod:`.bayesian`).
"""

from __future__ import annotations

import abc
import itertools
import math
import random
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from runyard.errors import UserError
from runyard.sweep.space import Choice, Distribution, ParamValue

if TYPE_CHECKING:
    from runyard.sweep.policies import Goal

Params = dict[str, ParamValue]


@dataclass(frozen=True)
class TrialResult:
    """What a sampler may learn from one earlier trial.

    ``value`` is the trial's objective (``None`` when it never logged the primary metric);
    ``finished`` is false while it still runs. ``params`` may hold typed values or the text
    they were recorded as."""

    index: int
    params: Mapping[str, ParamValue]
    value: float | None = None
    finished: bool = True


class Sampler(abc.ABC):
    """Proposes trial parameters. Contract: ``ask`` is deterministic in ``(index, history)``
    and has no side effects; ``index`` counts trials from 0 in the order they were created;
    ``history`` lists the sweep's earlier trials (any order). ``None`` means the space is
    exhausted and no further trial should start."""

    #: The YAML name of the sampling algorithm.
    type: ClassVar[str]
    #: Whether ``ask`` looks at ``history`` (else callers need not gather it).
    uses_history: ClassVar[bool] = False

    def __init__(
        self, space: Mapping[str, Distribution], *, seed: int | None = None, goal: Goal = "maximize"
    ):
        self.space = dict(space)
        self.seed = seed
        self.goal = goal

    @abc.abstractmethod
    def ask(self, index: int, history: Sequence[TrialResult] = ()) -> Params | None:
        """The parameters of trial ``index``, or ``None`` when no trial remains."""

    @property
    def size(self) -> int | None:
        """How many distinct trials the sampler can propose, or ``None`` when unbounded."""
        return None


class GridSampler(Sampler):
    """The cartesian product of the choice values; trial ``i`` is its ``i``-th point."""

    type = "grid"

    def __init__(
        self, space: Mapping[str, Distribution], *, seed: int | None = None, goal: Goal = "maximize"
    ):
        super().__init__(space, seed=seed, goal=goal)
        for name, dist in self.space.items():
            if not isinstance(dist, Choice):
                raise ValueError(
                    f"grid sampling takes only choice parameters ({name} is {dist.type})"
                )
        self._choices = [d.values for d in self.space.values() if isinstance(d, Choice)]

    @property
    def size(self) -> int:
        return math.prod(len(c) for c in self._choices)

    def ask(self, index: int, history: Sequence[TrialResult] = ()) -> Params | None:
        if not 0 <= index < self.size:
            return None
        picks: list[ParamValue] = []
        for values in reversed(self._choices):  # mixed-radix digits, last parameter fastest
            index, digit = divmod(index, len(values))
            picks.append(values[digit])
        return dict(zip(self.space, reversed(picks), strict=True))

    def points(self) -> list[Params]:
        """Every point in order (for display and tests)."""
        return [dict(zip(self.space, p, strict=True)) for p in itertools.product(*self._choices)]


class RandomSampler(Sampler):
    """Independent draws; trial ``i``'s value for ``name`` depends only on ``(seed, i, name)``,
    so adding a parameter to a space leaves the others' draws as they were."""

    type = "random"

    def __init__(
        self, space: Mapping[str, Distribution], *, seed: int | None = None, goal: Goal = "maximize"
    ):
        super().__init__(space, seed=require_seed(self.type, seed), goal=goal)

    def ask(self, index: int, history: Sequence[TrialResult] = ()) -> Params:
        return {
            name: dist.from_unit(random.Random(f"{self.seed}/{index}/{name}").random())
            for name, dist in self.space.items()
        }


class SobolSampler(Sampler):
    """Point ``index`` of a scrambled Sobol sequence over the unit cube, one dimension per
    parameter (in the space's order), mapped through each distribution's quantile function."""

    type = "sobol"

    def __init__(
        self, space: Mapping[str, Distribution], *, seed: int | None = None, goal: Goal = "maximize"
    ):
        super().__init__(space, seed=require_seed(self.type, seed), goal=goal)
        try:
            from scipy.stats import qmc
        except ImportError:
            raise _missing("scipy", "sobol sampling") from None
        self._qmc = qmc

    def ask(self, index: int, history: Sequence[TrialResult] = ()) -> Params:
        engine = self._qmc.Sobol(d=len(self.space), scramble=True, seed=self.seed)
        if index:  # SciPy refuses to skip 0 points
            engine.fast_forward(index)
        with warnings.catch_warnings():
            # "balance properties require n to be a power of 2": we want one point at a time.
            warnings.simplefilter("ignore", UserWarning)
            point = engine.random(1)[0]
        return {
            name: dist.from_unit(float(u))
            for (name, dist), u in zip(self.space.items(), point, strict=True)
        }


def _missing(package: str, what: str) -> UserError:
    return UserError(f"{what} needs {package}: pip install 'runyard[sweep]'")


def require_seed(kind: str, seed: int | None) -> int:
    if seed is None:
        raise ValueError(f"{kind} sampling needs a seed; fix one before the sweep starts")
    return seed


def _bayesian(
    space: Mapping[str, Distribution], *, seed: int | None = None, goal: Goal = "maximize"
) -> Sampler:
    from runyard.sweep.bayesian import BayesianSampler  # imports optuna

    return BayesianSampler(space, seed=seed, goal=goal)


#: Sampler constructors by sampling algorithm name; each takes ``(space, *, seed, goal)``.
SAMPLERS: dict[str, Callable[..., Sampler]] = {
    "grid": GridSampler,
    "random": RandomSampler,
    "sobol": SobolSampler,
    "bayesian": _bayesian,
}


def make_sampler(
    kind: str, space: Mapping[str, Distribution], *, seed: int | None, goal: Goal = "maximize"
) -> Sampler:
    """The sampler named ``kind`` (``grid``, ``random``, ``sobol``, ``bayesian``).

    Random, Sobol and Bayesian sampling need a fixed ``seed``: the controller draws one when
    the spec has none (:meth:`SweepSpec.with_seed`) and records it with the sweep, so that a
    resumed sweep proposes the same trials."""
    try:
        factory = SAMPLERS[kind]
    except KeyError:
        raise ValueError(f"unknown sampling algorithm {kind!r}") from None
    return factory(space, seed=seed, goal=goal)
