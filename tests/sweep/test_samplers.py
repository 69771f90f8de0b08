"""Grid, random and Sobol samplers: exhaustive, seeded, reproducible on resume."""

from __future__ import annotations

import itertools
import sys

import pytest

from runyard.errors import UserError
from runyard.sweep.samplers import GridSampler, Params, RandomSampler, SobolSampler, make_sampler
from runyard.sweep.space import parse_search_space

SPACE = parse_search_space(
    {
        "lr": {"type": "loguniform", "min_value": 1e-4, "max_value": 1e-1},
        "hidden": {"type": "choice", "values": [32, 64, 128]},
        "epochs": {"type": "randint", "upper": 30},
        "dropout": {"type": "quniform", "min_value": 0, "max_value": 0.5, "q": 0.05},
        "act": {"type": "choice", "values": ["relu", "tanh", True]},
        "wd": {"type": "normal", "mu": 0.0, "sigma": 1.0},
    }
)


def in_space(params: Params | None) -> bool:
    assert params is not None
    lr, epochs, dropout = float(params["lr"]), params["epochs"], float(params["dropout"])
    return (
        1e-4 <= lr <= 1e-1
        and params["hidden"] in (32, 64, 128)
        and type(epochs) is int
        and 0 <= epochs < 30
        and 0 <= dropout <= 0.5
        and round(dropout / 0.05, 9) % 1 == 0
        and params["act"] in ("relu", "tanh", True)
        and isinstance(params["wd"], float)
    )


def test_grid_visits_every_point_exactly_once_in_stable_order() -> None:
    space = parse_search_space(
        {
            "a": {"type": "choice", "values": [1, 2, 3]},
            "b": {"type": "choice", "values": ["x", "y"]},
            "c": {"type": "choice", "values": [True, False]},
        }
    )
    grid = GridSampler(space)
    assert grid.size == 12
    points = [grid.ask(i) for i in range(grid.size)]
    expected = [
        dict(zip("abc", p, strict=True)) for p in itertools.product([1, 2, 3], "xy", [True, False])
    ]
    assert points == expected == grid.points()
    assert len({tuple(p.items()) for p in points if p}) == 12
    assert grid.ask(12) is None and grid.ask(100) is None and grid.ask(-1) is None
    # Same answers from a fresh sampler, in any order (a resumed controller).
    assert GridSampler(space).ask(7) == points[7]


def test_grid_takes_only_choices() -> None:
    with pytest.raises(ValueError, match=r"grid sampling takes only choice parameters \(lr is"):
        GridSampler(SPACE)


def test_random_is_seeded_reproducible_and_resumable() -> None:
    a = RandomSampler(SPACE, seed=7)
    first = [a.ask(i) for i in range(50)]
    assert all(in_space(p) for p in first)
    assert [RandomSampler(SPACE, seed=7).ask(i) for i in range(50)] == first
    # A resumed controller asks only for trial 42 and gets what it would have got.
    assert RandomSampler(SPACE, seed=7).ask(42) == first[42]
    other = [RandomSampler(SPACE, seed=8).ask(i) for i in range(50)]
    assert other != first
    assert len({p["lr"] for p in first}) == 50  # distinct draws per trial
    # Types survive: choices come back as the values given.
    assert {type(p["act"]) for p in first} == {str, bool}


def test_random_draw_of_a_parameter_does_not_depend_on_the_others() -> None:
    fewer = {k: v for k, v in SPACE.items() if k != "hidden"}
    full = RandomSampler(SPACE, seed=3).ask(5)
    part = RandomSampler(fewer, seed=3).ask(5)
    assert {k: full[k] for k in part} == part


def test_random_covers_choices_and_range() -> None:
    draws = [RandomSampler(SPACE, seed=1).ask(i) for i in range(300)]
    assert {d["hidden"] for d in draws} == {32, 64, 128}
    assert min(d["lr"] for d in draws) < 1e-3 < max(d["lr"] for d in draws)  # type: ignore[operator]


def test_sobol_in_bounds_deterministic_and_resumable() -> None:
    s = SobolSampler(SPACE, seed=11)
    points = [s.ask(i) for i in range(64)]
    assert all(in_space(p) for p in points)
    assert SobolSampler(SPACE, seed=11).ask(37) == points[37]
    assert [SobolSampler(SPACE, seed=12).ask(i) for i in range(8)] != points[:8]
    # Low discrepancy: 64 points put about a third of the choices in each bin.
    counts = [sum(p["hidden"] == v for p in points) for v in (32, 64, 128)]
    assert all(18 <= c <= 25 for c in counts)


def test_make_sampler_needs_a_seed_except_for_grid() -> None:
    grid_space = {"hidden": SPACE["hidden"]}
    assert isinstance(make_sampler("grid", grid_space, seed=None), GridSampler)
    for kind in ("random", "sobol", "bayesian"):
        with pytest.raises(ValueError, match=f"{kind} sampling needs a seed"):
            make_sampler(kind, SPACE, seed=None)
    with pytest.raises(ValueError, match="unknown sampling algorithm 'hill'"):
        make_sampler("hill", SPACE, seed=1)


def test_missing_optional_packages_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna -> ImportError
    with pytest.raises(
        UserError, match=r"bayesian sampling needs optuna: pip install 'runyard\[sweep\]'"
    ):
        make_sampler("bayesian", SPACE, seed=1)
    monkeypatch.setitem(sys.modules, "scipy.stats", None)
    with pytest.raises(
        UserError, match=r"sobol sampling needs scipy: pip install 'runyard\[sweep\]'"
    ):
        make_sampler("sobol", SPACE, seed=1)
