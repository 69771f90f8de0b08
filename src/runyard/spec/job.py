"""The job spec: what to run. Pure data, no I/O.

Field names follow Azure ML v2's command job YAML where they are sensible, so users can
carry their files: ``command``, ``code``, ``environment``, ``compute``, ``distribution``,
``resources``, ``inputs``, ``outputs``, ``limits``, ``tags``, ``description``.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from runyard.errors import SpecError

#: ``${{inputs.lr}}``, ``${{outputs.model}}``, ``${{search_space.lr}}``
PLACEHOLDER = re.compile(r"\$\{\{\s*([A-Za-z_]+)\.([A-Za-z0-9_.-]+)\s*\}\}")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"2h"`` or ``"1d"``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 600, '10m' or '2h'")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f"expected a duration such as 600, '10m' or '2h', got {value!r}")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds <= 0:
        raise ValueError("must be positive")
    return seconds


@dataclass(frozen=True)
class EnvironmentSpec:
    """Python packages and variables a run needs. ``ref`` names a registered environment
    (``digits-env`` or ``digits-env@3``) instead of an inline one."""

    ref: str | None = None
    python: str | None = None
    pip: tuple[str, ...] = ()
    requirements: str | None = None
    conda_file: str | None = None
    inherit: bool | None = None
    env_vars: dict[str, str] = field(default_factory=dict)
    image: str | None = None

    @property
    def is_ambient(self) -> bool:
        """True when the run uses the current interpreter as is (only variables set)."""
        return (
            self.ref is None
            and self.python is None
            and not self.pip
            and self.requirements is None
            and self.conda_file is None
            and self.image is None
        )


@dataclass(frozen=True)
class DistributionSpec:
    """How processes are wired together: ``pytorch``, ``mpi`` or ``tensorflow``.
    ``process_count_per_instance`` may be ``"auto"`` (one per visible GPU)."""

    type: str
    process_count_per_instance: int | str = 1
    worker_count: int | None = None
    parameter_server_count: int = 0
    per_node: bool = False


@dataclass(frozen=True)
class ResourcesSpec:
    instance_count: int = 1


@dataclass(frozen=True)
class LimitsSpec:
    #: Wall-clock seconds after which the run is canceled ("timeout after Ns").
    timeout: float | None = None


@dataclass(frozen=True)
class InputSpec:
    """A literal value (``lr: 0.01``) or a path (``{type: uri_folder, path: ./data}``)."""

    value: str | None = None
    type: str | None = None
    path: str | None = None


@dataclass(frozen=True)
class OutputSpec:
    type: str = "uri_folder"
    path: str | None = None


@dataclass(frozen=True)
class JobSpec:
    command: str | tuple[str, ...]
    #: The code folder, absolute once loaded. ``None`` means no snapshot (command only).
    code: str | None = None
    name: str | None = None
    experiment: str = "Default"
    description: str | None = None
    compute: str = "local"
    environment: EnvironmentSpec = field(default_factory=EnvironmentSpec)
    distribution: DistributionSpec | None = None
    resources: ResourcesSpec = field(default_factory=ResourcesSpec)
    limits: LimitsSpec = field(default_factory=LimitsSpec)
    inputs: dict[str, InputSpec] = field(default_factory=dict)
    outputs: dict[str, OutputSpec] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    #: Where the spec came from, for error messages: a YAML path, ``<cli>`` or ``<python>``.
    source: str = "<python>"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict from which :meth:`from_dict` rebuilds the same spec."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        d = dict(data)
        cmd = d["command"]
        d["command"] = cmd if isinstance(cmd, str) else tuple(cmd)
        env = dict(d.get("environment") or {})
        env["pip"] = tuple(env.get("pip") or ())
        d["environment"] = EnvironmentSpec(**env)
        if d.get("distribution"):
            d["distribution"] = DistributionSpec(**d["distribution"])
        d["resources"] = ResourcesSpec(**(d.get("resources") or {}))
        d["limits"] = LimitsSpec(**(d.get("limits") or {}))
        d["inputs"] = {k: InputSpec(**v) for k, v in (d.get("inputs") or {}).items()}
        d["outputs"] = {k: OutputSpec(**v) for k, v in (d.get("outputs") or {}).items()}
        return cls(**d)

    def replace(self, **changes: Any) -> JobSpec:
        return dataclasses.replace(self, **changes)


def substitute(text: str, values: dict[str, dict[str, str]], *, source: str = "<python>") -> str:
    """Replace ``${{group.name}}`` placeholders with ``values[group][name]``.

    An unknown group or name is a :class:`SpecError` naming the placeholder."""

    def repl(m: re.Match[str]) -> str:
        group, name = m.group(1), m.group(2)
        if group not in values or name not in values[group]:
            known = ", ".join(sorted(values.get(group, {}))) or "none"
            raise SpecError(
                f"unknown placeholder ${{{{{group}.{name}}}}} (known {group}: {known})",
                source=source,
                field="command",
            )
        return values[group][name]

    return PLACEHOLDER.sub(repl, text)


def command_argv(
    spec: JobSpec, *, outputs_dir: str, extra: dict[str, dict[str, str]] | None = None
) -> list[str]:
    """The argv to execute for ``spec``: placeholders substituted; a string command runs
    under ``/bin/sh -c`` (as Azure ML does), a list command is executed directly.

    ``${{outputs.NAME}}`` resolves to ``outputs_dir/NAME`` unless the output names a path."""
    values: dict[str, dict[str, str]] = {
        "inputs": {
            k: (v.path if v.path is not None else v.value or "") for k, v in spec.inputs.items()
        },
        "outputs": {
            k: (v.path if v.path is not None else f"{outputs_dir}/{k}")
            for k, v in spec.outputs.items()
        },
    }
    values.update(extra or {})
    if isinstance(spec.command, str):
        return ["/bin/sh", "-c", substitute(spec.command, values, source=spec.source)]
    return [substitute(a, values, source=spec.source) for a in spec.command]


def display_command(spec: JobSpec) -> str:
    return spec.command if isinstance(spec.command, str) else shlex.join(spec.command)
