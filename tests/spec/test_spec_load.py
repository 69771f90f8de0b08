"""Job spec loading: every bad input is one clear line naming file, field and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from runyard.errors import SpecError
from runyard.spec import JobSpec, command_argv, load_job, parse_duration, spec_from_dict


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "src").mkdir(exist_ok=True)
    p = tmp_path / "job.yaml"
    p.write_text(text)
    return p


def test_full_azure_style_job(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
type: command
display_name: demo
experiment_name: exp1
code: src
command: python train.py --lr ${{inputs.lr}} --data ${{inputs.data}} --out ${{outputs.model}}
inputs:
  lr: 0.1
  data: {type: uri_folder, path: /data/x}
outputs:
  model: {type: uri_folder}
environment:
  env_vars: {OMP_NUM_THREADS: 1}
compute: azureml:local
limits: {timeout: 15m}
tags: {team: vision, priority: 2}
""",
    )
    spec = load_job(p)
    assert spec.name == "demo"
    assert spec.experiment == "exp1"
    assert spec.code == str((tmp_path / "src").resolve())
    assert spec.compute == "local"
    assert spec.limits.timeout == 900
    assert spec.environment.env_vars == {"OMP_NUM_THREADS": "1"}
    assert spec.tags == {"team": "vision", "priority": "2"}
    argv = command_argv(spec, outputs_dir="/w/outputs")
    assert argv == [
        "/bin/sh",
        "-c",
        "python train.py --lr 0.1 --data /data/x --out /w/outputs/model",
    ]


def test_round_trip_through_dict(tmp_path: Path) -> None:
    spec = load_job(write(tmp_path, "code: src\ncommand: [python, t.py]\ninputs: {a: 1}\n"))
    assert JobSpec.from_dict(spec.to_dict()) == spec
    assert command_argv(spec, outputs_dir="o") == ["python", "t.py"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("command: x\nfoo: 1\n", "job.yaml: foo: unknown field"),
        ("code: src\n", "job.yaml: command: required field is missing"),
        ("command: '  '\n", "job.yaml: command: must not be empty"),
        ("command: x\ncode: nope\n", "job.yaml: code: code folder"),
        ("command: x\nlimits: {timeout: soon}\n", "job.yaml: limits.timeout: expected a duration"),
        ("command: x\nlimits: {timeout: -5}\n", "job.yaml: limits.timeout: must be positive"),
        ("command: x\nenvironment: {pipp: [a]}\n", "job.yaml: environment.pipp: unknown field"),
        ("command: x\ndistribution: {type: spark}\n", "job.yaml: distribution.type:"),
        ("command: x\nresources: {instance_count: 0}\n", "job.yaml: resources.instance_count:"),
        ("command: x\nname: ../evil\n", "job.yaml: name: must start with"),
        ("command: x\ntype: sweep\n", "job.yaml: type:"),
        ("- a\n- b\n", "job.yaml: expected a mapping"),
        ("command: [unclosed\n", "job.yaml: malformed YAML: line"),
    ],
)
def test_bad_specs_are_refused_with_one_line(tmp_path: Path, text: str, expected: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_job(p)
    message = str(info.value)
    assert message.startswith(str(p)), message
    assert expected.removeprefix("job.yaml") in message
    assert "\n" not in message


def test_missing_file() -> None:
    with pytest.raises(SpecError, match=r"nope\.yaml: file not found"):
        load_job("nope.yaml")


def test_unknown_placeholder_names_it() -> None:
    spec = spec_from_dict({"command": "run ${{inputs.missing}}", "inputs": {"lr": 1}})
    with pytest.raises(
        SpecError, match=r"unknown placeholder \$\{\{inputs.missing\}\} \(known inputs: lr\)"
    ):
        command_argv(spec, outputs_dir="o")


@pytest.mark.parametrize(
    ("value", "seconds"), [(90, 90), ("90s", 90), ("2m", 120), ("1.5h", 5400), ("1d", 86400)]
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", [True, "1w", "", 0])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError, match=r"duration|positive"):
        parse_duration(value)
