"""Loading and validating sweep specs from YAML or mappings.

Field names follow Azure ML v2's sweep job. Every failure is one :class:`SpecError` naming
the source, the field and the problem; the trial job is validated by
:func:`runyard.spec.spec_from_dict` / :func:`runyard.spec.load_job`, its errors prefixed
with ``trial.`` when it is inline.

Top-level ``compute`` and ``experiment_name`` apply to the trial; top-level ``inputs`` and
``outputs`` (where Azure puts them) are merged into an inline trial.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path
from typing import Any

import yaml

from runyard.errors import SpecError
from runyard.spec import JobSpec, load_job, parse_duration, spec_from_dict
from runyard.spec.job import PLACEHOLDER
from runyard.sweep.policies import POLICIES, EarlyTerminationPolicy
from runyard.sweep.samplers import SAMPLERS, GridSampler
from runyard.sweep.space import Choice, Distribution, format_value, parse_search_space
from runyard.sweep.spec import Objective, SamplingAlgorithm, SweepLimits, SweepSpec

_TOP = (
    "$schema", "type", "name", "display_name", "experiment_name", "description", "tags",
    "trial", "search_space", "objective", "sampling_algorithm", "early_termination", "limits",
    "compute", "inputs", "outputs",
)  # fmt: skip


def _type_ok(value: Any, hint: Any) -> bool:
    allowed = typing.get_args(hint) if typing.get_origin(hint) is not None else (hint,)
    if typing.get_origin(hint) is typing.Literal:
        return value in allowed
    if value is None:
        return type(None) in allowed
    if isinstance(value, bool):
        return bool in allowed
    if isinstance(value, int):
        return int in allowed or float in allowed
    if isinstance(value, float):
        return float in allowed and math.isfinite(value)
    return str in allowed and isinstance(value, str)


def _from_mapping(cls: type[Any], data: Any, *, source: str, field: str) -> Any:
    """Build the frozen dataclass ``cls`` from a mapping of its field names, checking unknown
    keys, missing keys and the types int / float / bool / str / literals (None where allowed);
    the dataclass's own ``ValueError`` becomes the error's problem."""
    if not isinstance(data, dict):
        raise SpecError("expected a mapping", source=source, field=field)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in data.items():
        if key not in fields:
            raise SpecError("unknown field", source=source, field=f"{field}.{key}")
        if not _type_ok(value, hints[key]):
            raise SpecError(f"invalid value {value!r}", source=source, field=f"{field}.{key}")
    for name, f in fields.items():
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if no_default and name not in data:
            raise SpecError("required field is missing", source=source, field=f"{field}.{name}")
    try:
        return cls(**data)
    except ValueError as exc:
        raise SpecError(str(exc), source=source, field=field) from None


def policy_from_dict(data: Any, *, source: str = "<python>") -> EarlyTerminationPolicy:
    """Validate an ``early_termination`` mapping such as ``{type: bandit, slack_factor: 0.1}``."""
    field = "early_termination"
    kind = str(data.get("type", "")).lower() if isinstance(data, dict) else ""
    if kind not in POLICIES:
        raise SpecError(
            f"expected a mapping whose type is one of {', '.join(POLICIES)}",
            source=source,
            field=f"{field}.type" if isinstance(data, dict) else field,
        )
    rest = {k: v for k, v in data.items() if k != "type"}
    policy: EarlyTerminationPolicy = _from_mapping(POLICIES[kind], rest, source=source, field=field)
    return policy


def _sampling(data: Any, source: str) -> SamplingAlgorithm:
    field = "sampling_algorithm"
    data = {"type": data} if isinstance(data, str) else data
    if not isinstance(data, dict):
        raise SpecError(
            "expected grid, random, sobol, bayesian or a mapping such as {type: random, seed: 1}",
            source=source,
            field=field,
        )
    data = dict(data)
    data["type"] = kind = str(data.get("type", "random")).lower()
    rule = data.pop("rule", None)  # Azure ML: {type: random, rule: sobol}
    if rule is not None:
        if kind != "random" or str(rule).lower() not in ("random", "sobol"):
            raise SpecError(
                "rule is random or sobol, with type random", source=source, field=f"{field}.rule"
            )
        data["type"] = kind = str(rule).lower()
    if kind not in SAMPLERS:
        raise SpecError(
            f"unknown sampling algorithm {kind!r} (expected one of {', '.join(SAMPLERS)})",
            source=source,
            field=f"{field}.type",
        )
    result: SamplingAlgorithm = _from_mapping(SamplingAlgorithm, data, source=source, field=field)
    return result


def _objective(data: Any, source: str) -> Objective:
    if isinstance(data, dict) and isinstance(data.get("goal"), str):
        data = {**data, "goal": data["goal"].lower()}  # Azure's SDK writes "Maximize"
    obj: Objective = _from_mapping(Objective, data, source=source, field="objective")
    if not obj.primary_metric.strip():
        raise SpecError("must not be empty", source=source, field="objective.primary_metric")
    return obj


def _limits(data: Any, source: str, grid_size: int | None) -> SweepLimits:
    if data is not None and not isinstance(data, dict):
        raise SpecError("expected a mapping", source=source, field="limits")
    data = dict(data or {})
    for key in ("timeout", "trial_timeout"):
        if data.get(key) is not None:
            try:
                data[key] = parse_duration(data[key])
            except ValueError as exc:
                raise SpecError(str(exc), source=source, field=f"limits.{key}") from None
    if data.get("max_total_trials") is None:
        if grid_size is None:
            raise SpecError(
                "required field is missing (only grid sampling defaults it, to the grid's size)",
                source=source,
                field="limits.max_total_trials",
            )
        data["max_total_trials"] = grid_size
    limits: SweepLimits = _from_mapping(SweepLimits, data, source=source, field="limits")
    for key in ("max_total_trials", "max_concurrent_trials"):
        if getattr(limits, key) < 1:
            raise SpecError("must be at least 1", source=source, field=f"limits.{key}")
    return limits


def _trial(data: dict[str, Any], source: str, base_dir: Path | None) -> JobSpec:
    trial = data.get("trial")
    extra = {k: data[k] for k in ("inputs", "outputs") if data.get(k) is not None}
    if isinstance(trial, str):
        if extra:
            raise SpecError(
                "with a trial file, put inputs and outputs in that file",
                source=source,
                field=next(iter(extra)),
            )
        path = Path(trial).expanduser()
        job = load_job(path if path.is_absolute() else (base_dir or Path.cwd()) / path)
    elif isinstance(trial, dict):
        mapping = {**extra, **trial}
        mapping.setdefault("type", "command")
        try:
            job = spec_from_dict(mapping, source=source, base_dir=base_dir)
        except SpecError as exc:
            field = f"trial.{exc.field}" if exc.field else "trial"
            raise SpecError(exc.problem, source=source, field=field) from None
    else:
        raise SpecError(
            "expected the path of a job YAML file or an inline command job",
            source=source,
            field="trial",
        )
    if data.get("compute") is not None:
        job = job.replace(compute=str(data["compute"]).removeprefix("azureml:"))
    if data.get("experiment_name") is not None:
        job = job.replace(experiment=str(data["experiment_name"]))
    return job


def _check_placeholders(job: JobSpec, space: dict[str, Distribution], source: str) -> None:
    parts = [job.command] if isinstance(job.command, str) else list(job.command)
    for part in parts:
        for m in PLACEHOLDER.finditer(part):
            if m.group(1) == "search_space" and m.group(2) not in space:
                raise SpecError(
                    f"unknown placeholder {m.group(0)} (search_space has {', '.join(space)})",
                    source=source,
                    field="trial.command",
                )


def sweep_from_dict(
    data: Any, *, source: str = "<python>", base_dir: Path | None = None
) -> SweepSpec:
    """Validate a mapping (as read from YAML) into a :class:`SweepSpec`. A trial path and an
    inline trial's ``code`` resolve against ``base_dir`` (the YAML file's folder)."""
    if not isinstance(data, dict):
        raise SpecError("expected a mapping of sweep fields at the top level", source=source)
    for key in data:
        if key not in _TOP:
            raise SpecError("unknown field", source=source, field=str(key))
    if data.get("type", "sweep") != "sweep":
        raise SpecError(f"expected type: sweep, got {data['type']!r}", source=source, field="type")
    for key in ("trial", "search_space", "objective"):
        if data.get(key) is None:
            raise SpecError("required field is missing", source=source, field=key)

    space = parse_search_space(data["search_space"], source=source)
    sampling = _sampling(data.get("sampling_algorithm", "random"), source)
    if sampling.type == "grid":
        for name, dist in space.items():
            if not isinstance(dist, Choice):
                raise SpecError(
                    f"grid sampling takes only choice parameters ({name} is {dist.type})",
                    source=source,
                    field=f"search_space.{name}",
                )
    grid_size = GridSampler(space).size if sampling.type == "grid" else None
    et = data.get("early_termination")
    trial = _trial(data, source, base_dir)
    _check_placeholders(trial, space, source)
    tags = data.get("tags") or {}
    if not isinstance(tags, dict):
        raise SpecError("expected a mapping", source=source, field="tags")
    return SweepSpec(
        trial=trial,
        search_space=space,
        objective=_objective(data["objective"], source),
        limits=_limits(data.get("limits"), source, grid_size),
        sampling_algorithm=sampling,
        early_termination=None if et is None else policy_from_dict(et, source=source),
        name=data.get("display_name") or data.get("name"),
        experiment=trial.experiment,
        description=data.get("description"),
        tags={str(k): format_value(v) for k, v in tags.items()},
        source=source,
    )


def load_sweep(path: str | Path) -> SweepSpec:
    """Read a sweep YAML file. Errors name the file and, where known, the line or field."""
    p = Path(path)
    source = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("file not found", source=source) from None
    except OSError as exc:
        raise SpecError(f"cannot read: {exc.strerror}", source=source) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"malformed YAML: {where}{problem}", source=source) from None
    return sweep_from_dict(data, source=source, base_dir=p.resolve().parent)
