"""Job specs: pure data plus loading and validation at the edge."""

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
    substitute,
)
from runyard.spec.load import load_job, parse_duration, spec_from_dict

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
    "load_job",
    "parse_duration",
    "spec_from_dict",
    "substitute",
]
