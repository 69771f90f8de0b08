"""Loading and validating job specs from YAML or mappings.

Validation happens here, at the edge, with pydantic models that forbid unknown fields; the
result is a frozen :class:`~runyard.spec.job.JobSpec`. Every failure is one
:class:`~runyard.errors.SpecError` naming the source, the field and the problem.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from runyard.errors import SpecError
from runyard.spec.job import (
    DistributionSpec,
    EnvironmentSpec,
    InputSpec,
    JobSpec,
    LimitsSpec,
    OutputSpec,
    ResourcesSpec,
    parse_duration,
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Environment(_Model):
    python: str | None = None
    pip: list[str] = Field(default_factory=list)
    requirements: str | None = None
    conda_file: str | None = None
    inherit: bool | None = None
    env_vars: dict[str, str | int | float | bool] = Field(default_factory=dict)
    image: str | None = None


class _Distribution(_Model):
    type: Literal["pytorch", "mpi", "tensorflow"]
    process_count_per_instance: int | Literal["auto"] = 1
    worker_count: int | None = Field(default=None, ge=1)
    parameter_server_count: int = Field(default=0, ge=0)
    per_node: bool = False

    @field_validator("process_count_per_instance")
    @classmethod
    def _positive(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 1:
            raise ValueError("must be at least 1 or 'auto'")
        return v


class _Resources(_Model):
    instance_count: int = Field(default=1, ge=1)


class _Limits(_Model):
    timeout: float | None = None

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float | None:
        return None if v is None else parse_duration(v)


class _Input(_Model):
    type: str | None = None
    path: str | None = None
    value: str | int | float | bool | None = None
    default: str | int | float | bool | None = None
    description: str | None = None


class _Output(_Model):
    type: str = "uri_folder"
    path: str | None = None
    mode: str | None = None
    description: str | None = None


class _Job(_Model):
    schema_: str | None = Field(default=None, alias="$schema")
    type: Literal["command"] = "command"
    name: str | None = None
    display_name: str | None = None
    experiment: str | None = None
    experiment_name: str | None = None
    description: str | None = None
    code: str | None = None
    command: str | list[str]
    environment: str | _Environment | None = None
    compute: str = "local"
    distribution: _Distribution | None = None
    resources: _Resources = Field(default_factory=_Resources)
    limits: _Limits = Field(default_factory=_Limits)
    inputs: dict[str, str | int | float | bool | _Input] = Field(default_factory=dict)
    outputs: dict[str, _Output | None] = Field(default_factory=dict)
    tags: dict[str, str | int | float | bool] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("command")
    @classmethod
    def _non_empty(cls, v: str | list[str]) -> str | list[str]:
        if (isinstance(v, str) and not v.strip()) or (isinstance(v, list) and not v):
            raise ValueError("must not be empty")
        return v

    @field_validator("name", "experiment", "experiment_name")
    @classmethod
    def _valid_name(cls, v: str | None) -> str | None:
        if v is not None and not _NAME.match(v):
            raise ValueError(
                "must start with a letter or digit and hold only letters, digits, '_', '.', '-'"
            )
        return v

    @field_validator("compute")
    @classmethod
    def _compute(cls, v: str) -> str:
        return v.removeprefix("azureml:")


def _clean_loc(err: Any) -> list[str]:
    # pydantic reports union members as extra path parts ("str", "_Environment"); drop them.
    loc = [str(p) for p in err["loc"]]
    return [p for p in loc if not p.startswith(("_", "str", "list[", "int", "float", "bool"))]


def _first_error(exc: ValidationError) -> tuple[str, str]:
    # With unions pydantic reports one error per member; the deepest one is the useful one.
    err = max(exc.errors(), key=lambda e: len(e["loc"]))
    loc = _clean_loc(err)
    field = ".".join(loc) or None
    kind = err["type"]
    if kind == "extra_forbidden":
        return field or "", "unknown field"
    if kind == "missing":
        return field or "", "required field is missing"
    msg = err["msg"].removeprefix("Value error, ")
    return field or "", msg


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def spec_from_dict(data: Any, *, source: str = "<python>", base_dir: Path | None = None) -> JobSpec:
    """Validate a mapping (as read from YAML) into a :class:`JobSpec`.

    Relative ``code`` paths resolve against ``base_dir`` (the YAML file's folder); the code
    folder must exist."""
    if not isinstance(data, dict):
        raise SpecError("expected a mapping of job fields at the top level", source=source)
    try:
        job = _Job.model_validate(data)
    except ValidationError as exc:
        field, problem = _first_error(exc)
        raise SpecError(problem, source=source, field=field or None) from None

    code: str | None = None
    if job.code is not None:
        path = Path(job.code).expanduser()
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        if not path.is_dir():
            raise SpecError(
                f"code folder {str(path)!r} does not exist", source=source, field="code"
            )
        code = str(path.resolve())

    env = EnvironmentSpec()
    if isinstance(job.environment, str):
        env = EnvironmentSpec(ref=job.environment.removeprefix("azureml:"))
    elif job.environment is not None:
        env = _environment_spec(job.environment)

    inputs: dict[str, InputSpec] = {}
    for k, v in job.inputs.items():
        if isinstance(v, _Input):
            value = v.value if v.value is not None else v.default
            inputs[k] = InputSpec(
                value=None if value is None else _scalar(value), type=v.type, path=v.path
            )
        else:
            inputs[k] = InputSpec(value=_scalar(v))

    dist = None
    if job.distribution is not None:
        d = job.distribution
        dist = DistributionSpec(
            type=d.type,
            process_count_per_instance=d.process_count_per_instance,
            worker_count=d.worker_count,
            parameter_server_count=d.parameter_server_count,
            per_node=d.per_node,
        )

    return JobSpec(
        command=job.command if isinstance(job.command, str) else tuple(job.command),
        code=code,
        name=job.display_name or job.name,
        experiment=job.experiment or job.experiment_name or "Default",
        description=job.description,
        compute=job.compute,
        environment=env,
        distribution=dist,
        resources=ResourcesSpec(instance_count=job.resources.instance_count),
        limits=LimitsSpec(timeout=job.limits.timeout),
        inputs=inputs,
        outputs={
            k: OutputSpec(type=v.type, path=v.path) if v else OutputSpec()
            for k, v in job.outputs.items()
        },
        tags={k: _scalar(v) for k, v in job.tags.items()},
        source=source,
    )


def _environment_spec(e: _Environment) -> EnvironmentSpec:
    return EnvironmentSpec(
        python=e.python,
        pip=tuple(e.pip),
        requirements=e.requirements,
        conda_file=e.conda_file,
        inherit=e.inherit,
        env_vars={k: _scalar(v) for k, v in e.env_vars.items()},
        image=e.image,
    )


def environment_from_dict(data: Any, *, source: str = "<python>") -> EnvironmentSpec:
    """Validate a mapping of environment fields (what a job's ``environment:`` holds, as in an
    ``env.yaml`` for ``runyard env create``) into an :class:`EnvironmentSpec`. Files it names
    are not read here (relative ones resolve later against the env file's folder)."""
    if not isinstance(data, dict):
        raise SpecError(
            "expected a mapping of environment fields (python, pip, requirements, conda_file, "
            "inherit, env_vars, image) at the top level",
            source=source,
        )
    try:
        model = _Environment.model_validate(data)
    except ValidationError as exc:
        field, problem = _first_error(exc)
        raise SpecError(problem, source=source, field=field or None) from None
    return _environment_spec(model)


def _read_yaml(path: str | Path) -> Any:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("file not found", source=source) from None
    except OSError as exc:
        raise SpecError(f"cannot read: {exc.strerror}", source=source) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"malformed YAML: {where}{problem}", source=source) from None


def load_job(path: str | Path) -> JobSpec:
    """Read a job YAML file. Errors name the file and, where known, the line or field."""
    data = _read_yaml(path)
    return spec_from_dict(data, source=str(path), base_dir=Path(path).resolve().parent)


def load_environment(path: str | Path) -> EnvironmentSpec:
    """Read an environment YAML file (the fields of a job's ``environment:``). Errors name
    the file and the field. Relative files in it are relative to the file's folder."""
    return environment_from_dict(_read_yaml(path), source=str(path))
