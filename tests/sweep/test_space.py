"""Search-space distributions: validation errors name the parameter; values keep their type."""

from __future__ import annotations

import math

import pytest

from runyard.errors import SpecError
from runyard.sweep.space import (
    DISTRIBUTIONS,
    Choice,
    Distribution,
    LogNormal,
    LogUniform,
    Normal,
    ParamValue,
    QLogNormal,
    QLogUniform,
    QNormal,
    QUniform,
    RandInt,
    Uniform,
    format_value,
    parse_search_space,
)


def error(spec: object, name: str = "lr") -> str:
    with pytest.raises(SpecError) as exc:
        parse_search_space({name: spec}, source="sweep.yaml")
    assert exc.value.field == f"search_space.{name}"
    return str(exc.value)


def test_log_distribution_with_non_positive_bound_is_refused() -> None:
    assert error({"type": "loguniform", "min_value": 0, "max_value": 0.1}) == (
        "sweep.yaml: search_space.lr: loguniform needs min_value > 0 (got 0)"
    )
    msg = error({"type": "qloguniform", "min_value": 1, "max_value": -2, "q": 1})
    assert "qloguniform needs max_value > 0 (got -2)" in msg


def test_azure_exponent_bounds_get_a_hint() -> None:
    msg = error({"type": "loguniform", "min_value": -9.21, "max_value": -2.3})
    assert "not Azure ML's exponents" in msg and "0.000100" in msg


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        (
            {"type": "uniform", "min_value": 1, "max_value": 1},
            "uniform needs min_value < max_value",
        ),
        ({"type": "quniform", "min_value": 0, "max_value": 1, "q": 0}, "quniform needs q > 0"),
        ({"type": "quniform", "min_value": 0, "max_value": 1}, "quniform needs q"),
        ({"type": "normal", "mu": 0, "sigma": 0}, "normal needs sigma > 0 (got 0)"),
        ({"type": "lognormal", "mu": 0, "sigma": -1}, "lognormal needs sigma > 0"),
        ({"type": "randint", "upper": 0}, "randint needs an integer upper >= 1"),
        ({"type": "randint", "upper": 2.5}, "randint needs an integer upper >= 1"),
        ({"type": "choice", "values": []}, "choice needs at least one value"),
        ({"type": "choice", "values": [1, 1]}, "choice lists 1 twice"),
        ({"type": "choice", "values": [[1]]}, "strings, numbers or booleans"),
        ({"type": "choice", "values": 3}, "choice needs values to be a list"),
        ({"type": "uniform", "min_value": "a", "max_value": 1}, "min_value to be a finite number"),
        ({"type": "uniform", "min_value": True, "max_value": 1}, "finite number"),
        ({"type": "uniform", "min_value": 0, "max_value": 1, "q": 1}, "uniform does not take 'q'"),
        ({"type": "uniform", "min_value": 0}, "uniform needs max_value"),
        ({"type": "gauss"}, "unknown type 'gauss'"),
        ({"min_value": 0}, "needs a type"),
        ("uniform", "expected a mapping"),
    ],
)
def test_bad_distributions_are_refused_naming_the_parameter(spec: object, problem: str) -> None:
    assert problem in error(spec)


def test_bad_parameter_names_and_empty_space() -> None:
    assert "parameter names start with" in error({"type": "randint", "upper": 3}, name="1x")
    with pytest.raises(SpecError, match="search_space: expected a mapping"):
        parse_search_space({})


def test_type_is_case_insensitive_and_round_trips() -> None:
    space = parse_search_space(
        {
            "a": {"type": "Choice", "values": [32, "relu", True, 0.5]},
            "b": {"type": "randint", "upper": 30},
            "c": {"type": "uniform", "min_value": 0, "max_value": 1},
            "d": {"type": "quniform", "min_value": 0, "max_value": 1, "q": 0.1},
            "e": {"type": "loguniform", "min_value": 1e-4, "max_value": 1e-1},
            "f": {"type": "qloguniform", "min_value": 1, "max_value": 1000, "q": 8},
            "g": {"type": "normal", "mu": 0, "sigma": 1},
            "h": {"type": "qnormal", "mu": 10, "sigma": 3, "q": 2},
            "i": {"type": "lognormal", "mu": 0, "sigma": 1},
            "j": {"type": "qlognormal", "mu": 0, "sigma": 1, "q": 0.5},
        }
    )
    assert [type(d) for d in space.values()] == [
        Choice, RandInt, Uniform, QUniform, LogUniform, QLogUniform, Normal, QNormal, LogNormal,
        QLogNormal,
    ]  # fmt: skip
    assert set(DISTRIBUTIONS) == {d.type for d in space.values()}
    assert parse_search_space({k: d.to_dict() for k, d in space.items()}) == space


def test_unit_mapping_of_each_distribution() -> None:
    assert Choice((32, "relu", True)).from_unit(0.0) == 32
    assert Choice((32, "relu", True)).from_unit(0.5) == "relu"
    assert Choice((32, "relu", True)).from_unit(1.0) is True
    assert RandInt(30).from_unit(0.0) == 0 and RandInt(30).from_unit(1.0) == 29
    assert Uniform(2, 4).from_unit(0.5) == 3
    lu = LogUniform(1e-4, 1e-1)
    assert math.isclose(lu.from_unit(0.0), 1e-4) and math.isclose(lu.from_unit(1.0), 1e-1)
    assert math.isclose(lu.from_unit(1 / 3), 1e-3)
    assert Normal(10, 2).from_unit(0.5) == 10
    assert math.isclose(LogNormal(0, 1).from_unit(0.5), 1.0)
    cases: list[tuple[Distribution, ParamValue]] = [
        (Choice((32, "relu", True)), "relu"),
        (RandInt(30), 7),
        (Uniform(2, 4), 3.5),
        (LogUniform(1e-4, 1e-1), 3e-3),
        (Normal(10, 2), 11.0),
        (LogNormal(0, 1), 2.0),
    ]
    for dist, value in cases:
        assert dist.from_unit(dist.to_unit(value)) == pytest.approx(value)


def test_quantized_values_are_multiples_of_q_and_ints_for_whole_q() -> None:
    assert QUniform(0, 1, 0.1).from_unit(0.31) == 0.3  # no 0.30000000000000004
    v = QUniform(16, 128, 16).from_unit(0.3)
    assert v == 48 and type(v) is int
    assert QLogUniform(1, 1000, 8).from_unit(1.0) == 1000
    assert QNormal(10, 3, 2).from_unit(0.5) == 10
    assert QLogNormal(0, 1, 0.5).from_unit(0.5) == 1.0


def test_recorded_text_maps_back_to_choices() -> None:
    c = Choice((32, "relu", True, 0.5))
    assert c.to_unit("true") == c.to_unit(True)
    assert c.to_unit("32") == c.to_unit(32)
    with pytest.raises(ValueError, match="not one of the choices"):
        c.to_unit("tanh")


def test_format_value() -> None:
    assert [format_value(v) for v in (True, False, 3, 0.001, 1e-5, "relu")] == [
        "true", "false", "3", "0.001", "1e-05", "relu",
    ]  # fmt: skip
