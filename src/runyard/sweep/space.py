"""Search-space distributions: what values a sweep may give each parameter.

Names and fields follow Azure ML v2's sweep job (``choice``, ``randint``, ``uniform``,
``quniform``, ``loguniform``, ``qloguniform``, ``normal``, ``qnormal``, ``lognormal``,
``qlognormal``; ``values``, ``upper``, ``min_value``, ``max_value``, ``mu``, ``sigma``, ``q``),
with one deliberate difference:

* ``loguniform`` / ``qloguniform`` take their bounds as **values**, not exponents:
  ``{type: loguniform, min_value: 1.0e-4, max_value: 1.0e-1}`` draws learning rates between
  1e-4 and 0.1, evenly spread over the orders of magnitude. (Azure ML draws
  ``exp(uniform(min_value, max_value))``, i.e. its bounds are natural-log exponents.) A bound
  that is zero or negative is refused, with a hint for files written for Azure's convention.

``lognormal`` / ``qlognormal`` keep the usual (and Azure's) meaning: ``exp(normal(mu, sigma))``.
Quantized distributions return ``round(x / q) * q`` (as Azure documents); when ``q`` is a
whole number the value is an ``int``, so ``--batch 32`` reaches the script rather than ``32.0``.

Every distribution maps a point ``u`` of the unit interval to a value (``from_unit``, the
inverse CDF) and back (``to_unit``), which is all the samplers need: random and Sobol points
are drawn in the unit cube, and the Bayesian sampler searches it.
"""

from __future__ import annotations

import abc
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from statistics import NormalDist
from typing import Any, ClassVar

from runyard.errors import SpecError

#: A parameter's value as given to a trial and recorded as its param.
ParamValue = str | int | float | bool

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_STD = NormalDist()
_EPS = 1e-12


def _clip(u: float) -> float:
    return min(max(u, 0.0), 1.0)


def format_value(value: ParamValue) -> str:
    """How a value is written on a command line and recorded as a param: ``true``/``false``
    for booleans, ``repr`` for floats (``0.001``, ``1e-05``), ``str`` otherwise."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _quantize(x: float, q: float) -> int | float:
    k = round(x / q)
    if float(q).is_integer():
        return int(k * int(q))
    return float(f"{k * q:.12g}")  # 0.30000000000000004 -> 0.3


class Distribution(abc.ABC):
    """One parameter's distribution. Subclasses are frozen dataclasses validated on creation
    (``ValueError`` naming the problem); ``type`` is the YAML name."""

    type: ClassVar[str]

    @abc.abstractmethod
    def from_unit(self, u: float) -> ParamValue:
        """The value at quantile ``u`` in [0, 1]."""

    @abc.abstractmethod
    def to_unit(self, value: ParamValue) -> float:
        """The quantile in [0, 1] of ``value`` (inverse of :meth:`from_unit`, up to rounding)."""

    def to_dict(self) -> dict[str, Any]:
        """The YAML form: ``{"type": "uniform", "min_value": 0, "max_value": 1}``."""
        d: dict[str, Any] = {"type": self.type}
        for k, v in asdict(self).items():  # type: ignore[call-overload]
            if v is not None:
                d[k] = list(v) if isinstance(v, tuple) else v
        return d


class _Quantized:
    """Mixed into a distribution (before it in the bases): its values rounded to a multiple
    of the subclass's field ``q``."""

    q: float
    type: ClassVar[str]

    def __post_init__(self) -> None:
        super().__post_init__()  # type: ignore[misc]
        if not self.q > 0:
            raise ValueError(f"{self.type} needs q > 0 (got {self.q:g})")

    def from_unit(self, u: float) -> int | float:
        return _quantize(super().from_unit(u), self.q)  # type: ignore[misc]


@dataclass(frozen=True)
class Choice(Distribution):
    """One of ``values``, each equally likely; the only kind grid sampling takes."""

    values: tuple[ParamValue, ...]
    type: ClassVar[str] = "choice"

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("choice needs at least one value")
        seen = set()
        for v in self.values:
            if not isinstance(v, str | int | float):
                raise ValueError(f"choice values must be strings, numbers or booleans, got {v!r}")
            key = (type(v), v)
            if key in seen:
                raise ValueError(f"choice lists {v!r} twice")
            seen.add(key)

    def from_unit(self, u: float) -> ParamValue:
        return self.values[min(int(_clip(u) * len(self.values)), len(self.values) - 1)]

    def to_unit(self, value: ParamValue) -> float:
        """Also accepts a value as recorded (its :func:`format_value` text)."""
        for i, v in enumerate(self.values):
            if type(v) is type(value) and v == value:
                return (i + 0.5) / len(self.values)
        if isinstance(value, str):
            for i, v in enumerate(self.values):
                if format_value(v) == value:
                    return (i + 0.5) / len(self.values)
        raise ValueError(f"{value!r} is not one of the choices")


@dataclass(frozen=True)
class RandInt(Distribution):
    """An integer in ``[0, upper)`` (Azure's ``randint(upper)``)."""

    upper: int
    type: ClassVar[str] = "randint"

    def __post_init__(self) -> None:
        if isinstance(self.upper, bool) or not isinstance(self.upper, int) or self.upper < 1:
            raise ValueError(f"randint needs an integer upper >= 1 (got {self.upper!r})")

    def from_unit(self, u: float) -> int:
        return min(int(_clip(u) * self.upper), self.upper - 1)

    def to_unit(self, value: ParamValue) -> float:
        return _clip((float(value) + 0.5) / self.upper)


@dataclass(frozen=True)
class Uniform(Distribution):
    """Evenly between ``min_value`` and ``max_value``."""

    min_value: float
    max_value: float
    type: ClassVar[str] = "uniform"

    def __post_init__(self) -> None:
        if not self.min_value < self.max_value:
            raise ValueError(
                f"{self.type} needs min_value < max_value "
                f"(got {self.min_value:g} and {self.max_value:g})"
            )

    def from_unit(self, u: float) -> float:
        return self.min_value + _clip(u) * (self.max_value - self.min_value)

    def to_unit(self, value: ParamValue) -> float:
        return _clip((float(value) - self.min_value) / (self.max_value - self.min_value))


@dataclass(frozen=True)
class QUniform(_Quantized, Uniform):
    """``round(uniform(min_value, max_value) / q) * q``."""

    q: float
    type: ClassVar[str] = "quniform"


@dataclass(frozen=True)
class LogUniform(Distribution):
    """Between ``min_value`` and ``max_value`` (both > 0, as values, not exponents), with
    ``log(value)`` evenly spread."""

    min_value: float
    max_value: float
    type: ClassVar[str] = "loguniform"

    def __post_init__(self) -> None:
        for name in ("min_value", "max_value"):
            bound = getattr(self, name)
            if not bound > 0:
                hint = ""
                if bound < 0:
                    hint = (
                        f"; runyard takes the bounds themselves, not Azure ML's exponents "
                        f"(exponent {bound:g} is {math.exp(bound):.6g})"
                    )
                raise ValueError(f"{self.type} needs {name} > 0 (got {bound:g}){hint}")
        if not self.min_value < self.max_value:
            raise ValueError(
                f"{self.type} needs min_value < max_value "
                f"(got {self.min_value:g} and {self.max_value:g})"
            )

    def from_unit(self, u: float) -> float:
        lo, hi = math.log(self.min_value), math.log(self.max_value)
        return math.exp(lo + _clip(u) * (hi - lo))

    def to_unit(self, value: ParamValue) -> float:
        v = float(value)
        if v <= self.min_value:
            return 0.0
        lo, hi = math.log(self.min_value), math.log(self.max_value)
        return _clip((math.log(v) - lo) / (hi - lo))


@dataclass(frozen=True)
class QLogUniform(_Quantized, LogUniform):
    """``round(loguniform(min_value, max_value) / q) * q``."""

    q: float
    type: ClassVar[str] = "qloguniform"


@dataclass(frozen=True)
class Normal(Distribution):
    """Normally distributed with mean ``mu`` and standard deviation ``sigma``."""

    mu: float
    sigma: float
    type: ClassVar[str] = "normal"

    def __post_init__(self) -> None:
        if not self.sigma > 0:
            raise ValueError(f"{self.type} needs sigma > 0 (got {self.sigma:g})")

    def _x(self, u: float) -> float:
        return self.mu + self.sigma * _STD.inv_cdf(min(max(u, _EPS), 1 - _EPS))

    def _u(self, x: float) -> float:
        return _STD.cdf((x - self.mu) / self.sigma)

    def from_unit(self, u: float) -> int | float:
        return self._x(u)

    def to_unit(self, value: ParamValue) -> float:
        return self._u(float(value))


@dataclass(frozen=True)
class QNormal(_Quantized, Normal):
    """``round(normal(mu, sigma) / q) * q``."""

    q: float
    type: ClassVar[str] = "qnormal"


@dataclass(frozen=True)
class LogNormal(Normal):
    """``exp(normal(mu, sigma))``: ``mu`` and ``sigma`` are those of the logarithm."""

    type: ClassVar[str] = "lognormal"

    def from_unit(self, u: float) -> int | float:
        return math.exp(self._x(u))

    def to_unit(self, value: ParamValue) -> float:
        v = float(value)
        return self._u(math.log(v)) if v > 0 else 0.0


@dataclass(frozen=True)
class QLogNormal(_Quantized, LogNormal):
    """``round(exp(normal(mu, sigma)) / q) * q``."""

    q: float
    type: ClassVar[str] = "qlognormal"


#: Distribution classes by their YAML ``type``.
DISTRIBUTIONS: dict[str, type[Distribution]] = {
    cls.type: cls
    for cls in (
        Choice,
        RandInt,
        Uniform,
        QUniform,
        LogUniform,
        QLogUniform,
        Normal,
        QNormal,
        LogNormal,
        QLogNormal,
    )
}


def _number(kind: str, name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValueError(f"{kind} needs {name} to be a finite number (got {v!r})")
    return float(v)


def distribution_from_dict(data: Any) -> Distribution:
    """Validate one ``{type: ..., ...}`` mapping; ``ValueError`` says what is wrong."""
    if not isinstance(data, Mapping):
        raise ValueError("expected a mapping such as {type: uniform, min_value: 0, max_value: 1}")
    kind = data.get("type")
    if kind is None:
        raise ValueError("needs a type (one of " + ", ".join(DISTRIBUTIONS) + ")")
    cls = DISTRIBUTIONS.get(str(kind).lower())
    if cls is None:
        raise ValueError(f"unknown type {kind!r} (expected one of {', '.join(DISTRIBUTIONS)})")
    kind = cls.type
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(data) - {"type", *names})
    if unknown:
        raise ValueError(f"{kind} does not take {unknown[0]!r} (it takes {', '.join(names)})")
    missing = [n for n in names if n not in data]
    if missing:
        raise ValueError(f"{kind} needs {', '.join(missing)}")
    args: dict[str, Any] = {}
    for n in names:
        v = data[n]
        if n == "values":
            if not isinstance(v, list | tuple):
                raise ValueError(f"choice needs values to be a list (got {v!r})")
            args[n] = tuple(v)
        elif n == "upper":
            args[n] = v
        else:
            args[n] = _number(kind, n, v)
    return cls(**args)


def parse_search_space(data: Any, *, source: str = "<python>") -> dict[str, Distribution]:
    """Validate a ``search_space`` mapping of parameter names to distributions. Errors are
    :class:`SpecError` with field ``search_space.NAME``."""
    if not isinstance(data, Mapping) or not data:
        raise SpecError(
            "expected a mapping of parameter names to distributions",
            source=source,
            field="search_space",
        )
    space: dict[str, Distribution] = {}
    for name, spec in data.items():
        field = f"search_space.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise SpecError(
                "parameter names start with a letter or '_' and hold only letters, digits, "
                "'_', '.', '-'",
                source=source,
                field=field,
            )
        try:
            space[name] = spec if isinstance(spec, Distribution) else distribution_from_dict(spec)
        except ValueError as exc:
            raise SpecError(str(exc), source=source, field=field) from None
    return space
