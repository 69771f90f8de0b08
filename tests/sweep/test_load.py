"""Sweep YAML: the issue's example loads; every bad input is one error naming file and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from runyard.errors import SpecError
from runyard.sweep import (
    AshaPolicy,
    BanditPolicy,
    LogUniform,
    SweepSpec,
    load_sweep,
    sweep_from_dict,
)

JOB = """
command: python train.py --lr ${{search_space.lr}}
code: src
experiment_name: digits
limits: {timeout: 30m}
"""

SWEEP = """
type: sweep
trial: job.yaml
search_space:
  lr:     {type: loguniform, min_value: 1.0e-4, max_value: 1.0e-1}
  hidden: {type: choice, values: [32, 64, 128]}
  epochs: {type: randint, upper: 30}
objective: {primary_metric: val_acc, goal: maximize}
sampling_algorithm: random
early_termination: {type: bandit, slack_factor: 0.1, evaluation_interval: 1, delay_evaluation: 5}
limits: {max_total_trials: 40, max_concurrent_trials: 2, timeout: 7200, trial_timeout: 600}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "job.yaml").write_text(JOB)
    return tmp_path


def load(folder: Path, text: str = SWEEP, **changes: Any) -> SweepSpec:
    data = yaml.safe_load(text)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_sweep(path)


def error(folder: Path, **changes: Any) -> SpecError:
    with pytest.raises(SpecError) as exc:
        load(folder, **changes)
    assert str(exc.value.source).endswith(".yaml")
    return exc.value


def test_issue_example_loads(folder: Path) -> None:
    spec = load(folder)
    assert spec.trial.command == "python train.py --lr ${{search_space.lr}}"
    assert spec.trial.code == str((folder / "src").resolve())
    assert spec.experiment == "digits"
    assert spec.search_space["lr"] == LogUniform(1e-4, 1e-1)
    assert list(spec.search_space) == ["lr", "hidden", "epochs"]
    assert (spec.objective.primary_metric, spec.objective.goal) == ("val_acc", "maximize")
    assert (spec.sampling_algorithm.type, spec.sampling_algorithm.seed) == ("random", None)
    assert spec.early_termination == BanditPolicy(slack_factor=0.1, delay_evaluation=5)
    assert spec.limits.max_total_trials == 40 and spec.limits.max_concurrent_trials == 2
    assert spec.limits.timeout == 7200 and spec.limits.trial_timeout == 600


def test_round_trip_through_the_store_form(folder: Path) -> None:
    spec = load(folder, early_termination={"type": "asha", "grace_period": 2}).with_seed(5)
    assert spec.sampling_algorithm.seed == 5
    assert spec.with_seed(9) is spec  # a fixed seed stays
    assert SweepSpec.from_dict(spec.to_dict()) == spec
    assert spec.early_termination == AshaPolicy(grace_period=2)
    assert SweepSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec  # as stored
    assert spec.sampler().ask(3) == SweepSpec.from_dict(spec.to_dict()).sampler().ask(3)
    assert load(folder).with_seed().sampling_algorithm.seed is not None


def test_inline_trial_with_azure_top_level_fields(folder: Path) -> None:
    spec = load(
        folder,
        trial={"command": "python train.py --data ${{inputs.data}}", "code": "src"},
        inputs={"data": {"type": "uri_folder", "path": "/data"}},
        compute="azureml:local",
        experiment_name="exp2",
        objective={"primary_metric": "loss", "goal": "Minimize"},
    )
    assert spec.trial.inputs["data"].path == "/data"
    assert spec.trial.compute == "local"
    assert spec.experiment == "exp2" and spec.trial.experiment == "exp2"
    assert spec.objective.goal == "minimize"


def test_inline_trial_errors_are_prefixed_with_trial(folder: Path) -> None:
    exc = error(folder, trial={"code": "src"})
    assert exc.field == "trial.command" and exc.problem == "required field is missing"
    exc = error(folder, trial={"command": "x", "cmd": "y"})
    assert exc.field == "trial.cmd" and exc.problem == "unknown field"


def test_trial_file_errors_name_the_trial_file(folder: Path) -> None:
    exc = error(folder, trial="missing.yaml")
    assert exc.source == str(folder / "missing.yaml") and exc.problem == "file not found"
    exc = error(folder, inputs={"a": 1})
    assert exc.field == "inputs" and "put inputs and outputs in that file" in exc.problem


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        ({"sampling_algorithm": "grid"}, "search_space.lr", "grid sampling takes only choice"),
        ({"limits": {"max_concurrent_trials": 2}}, "limits.max_total_trials", "required"),
        ({"limits": {"max_total_trials": 0}}, "limits.max_total_trials", "at least 1"),
        ({"limits": {"max_total_trials": 4, "timeout": "soon"}}, "limits.timeout", "duration"),
        ({"limits": {"max_total_trials": 4, "retries": 1}}, "limits.retries", "unknown field"),
        ({"limits": {"max_total_trials": "many"}}, "limits.max_total_trials", "invalid value"),
        ({"sampling_algorithm": "hill"}, "sampling_algorithm.type", "unknown sampling algorithm"),
        ({"sampling_algorithm": {"type": "grid", "rule": "sobol"}}, "sampling_algorithm.rule", ""),
        ({"sampling_algorithm": {"type": "random", "seed": 1.5}}, "sampling_algorithm.seed", ""),
        ({"objective": {"goal": "maximize"}}, "objective.primary_metric", "required"),
        ({"objective": {"primary_metric": "a", "goal": "up"}}, "objective.goal", "invalid value"),
        ({"objective": None}, "objective", "required field is missing"),
        ({"search_space": None}, "search_space", "required field is missing"),
        ({"early_termination": {"type": "bandit"}}, "early_termination", "exactly one of"),
        ({"early_termination": {"type": "bandit", "slack": 1}}, "early_termination.slack", ""),
        ({"early_termination": {"type": "hyperband"}}, "early_termination.type", "one of bandit"),
        (
            {"early_termination": {"type": "truncation_selection"}},
            "early_termination.truncation_percentage",
            "required field is missing",
        ),
        (
            {"early_termination": {"type": "median_stopping", "evaluation_interval": 0}},
            "early_termination",
            "evaluation_interval must be at least 1",
        ),
        ({"type": "command"}, "type", "expected type: sweep"),
        ({"budget": 3}, "budget", "unknown field"),
        ({"trial": 3}, "trial", "path of a job YAML file or an inline command job"),
        (
            {"trial": {"command": "python t.py ${{search_space.lrate}}"}},
            "trial.command",
            "unknown placeholder ${{search_space.lrate}} (search_space has lr, hidden, epochs)",
        ),
    ],
)
def test_bad_sweeps_are_refused_naming_the_field(
    folder: Path, changes: dict[str, Any], field: str, problem: str
) -> None:
    exc = error(folder, **changes)
    assert exc.field == field
    assert problem in exc.problem


def test_grid_defaults_to_its_size_and_sampling_forms(folder: Path) -> None:
    space = {
        "a": {"type": "choice", "values": [1, 2]},
        "b": {"type": "choice", "values": [3, 4, 5]},
    }
    trial = {"command": "python t.py"}
    spec = load(folder, trial=trial, search_space=space, sampling_algorithm="grid", limits=None)
    assert spec.limits.max_total_trials == 6 and spec.limits.max_concurrent_trials == 1
    azure = load(folder, sampling_algorithm={"type": "random", "rule": "sobol", "seed": 4})
    assert (azure.sampling_algorithm.type, azure.sampling_algorithm.seed) == ("sobol", 4)
    bayes = load(folder, sampling_algorithm={"type": "Bayesian"})
    assert bayes.sampling_algorithm.type == "bayesian"


def test_durations_and_file_level_errors(folder: Path) -> None:
    spec = load(folder, limits={"max_total_trials": 3, "timeout": "2h", "trial_timeout": "10m"})
    assert (spec.limits.timeout, spec.limits.trial_timeout) == (7200, 600)
    with pytest.raises(SpecError, match="file not found"):
        load_sweep(folder / "nope.yaml")
    (folder / "bad.yaml").write_text("search_space: [\n")
    with pytest.raises(SpecError, match="malformed YAML: line"):
        load_sweep(folder / "bad.yaml")
    with pytest.raises(SpecError, match="expected a mapping of sweep fields"):
        sweep_from_dict([1, 2])
