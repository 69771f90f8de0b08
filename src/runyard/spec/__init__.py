"""Job specs: pure data, plus loading and validation at the edge.

The loaders (``load_job``, ``spec_from_dict``, ``load_environment``,
``environment_from_dict``) use pydantic and are imported on first use,
so code that only builds or reads specs stays quick to import."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runyard.spec.job import (
    DistributionSpec,
    EnvironmentSpec,
    InputSpec,
    JobSpec,
    LimitsSpec,
    OutputSpec,
    ResourcesSpec,
    command_argv,
    display_command,
    parse_duration,
    substitute,
)

if TYPE_CHECKING:
    from runyard.spec.load import (
        environment_from_dict,
        load_environment,
        load_job,
        spec_from_dict,
    )

_LAZY = {"environment_from_dict", "load_environment", "load_job", "spec_from_dict"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from runyard.spec import load

        return getattr(load, name)
    raise AttributeError(f"module 'runyard.spec' has no attribute {name!r}")


__all__ = [
    "DistributionSpec",
    "EnvironmentSpec",
    "InputSpec",
    "JobSpec",
    "LimitsSpec",
    "OutputSpec",
    "ResourcesSpec",
    "command_argv",
    "display_command",
    "environment_from_dict",
    "load_environment",
    "load_job",
    "parse_duration",
    "spec_from_dict",
    "substitute",
]
