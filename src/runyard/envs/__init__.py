"""Environments: the packages and variables a run needs, built once per content with uv.

- :func:`materialize` returns the :class:`Environment` for a spec: from the cache when its
  content hash is there (milliseconds, no subprocess), else built once with uv — concurrent
  callers wait for the one build — into ``<envs>/<hash>/`` (:mod:`runyard.envs.build`).
- :func:`env_vars_for` gives the variables a process in it starts with (and
  :func:`tracking_path` a folder that makes runyard's in-job API importable there);
  :func:`hold` keeps it from being pruned while a run uses it.
- :func:`content_hash` names a built environment; :func:`define` reads a spec's files into a
  self-contained :class:`EnvironmentDefinition` (:mod:`runyard.envs.definition`).
- :func:`read_pip_config` finds the person's package sources in pip's configuration
  (:mod:`runyard.envs.indexes`); :func:`select_interpreter` chooses the interpreter
  (:mod:`runyard.envs.interpreter`).
- :func:`register` / :func:`lookup` keep named, versioned definitions in an
  :class:`EnvironmentCatalog` (:mod:`runyard.envs.registry`).
- :func:`prune` reclaims cache space, never an environment in use (:mod:`runyard.envs.cache`).
"""

from runyard.envs.build import hold, materialize
from runyard.envs.cache import CacheEntry, PruneResult, list_entries, prune
from runyard.envs.container import container_command, container_runtime
from runyard.envs.definition import (
    EnvironmentDefinition,
    content_hash,
    define,
    definition_digest,
)
from runyard.envs.environment import Environment, ambient_lock, env_vars_for, tracking_path
from runyard.envs.errors import EnvironmentBuildError
from runyard.envs.indexes import IndexConfig, read_pip_config
from runyard.envs.interpreter import InterpreterInfo, current_interpreter, select_interpreter
from runyard.envs.registry import (
    EnvironmentCatalog,
    EnvironmentRecord,
    Registration,
    lookup,
    parse_ref,
    register,
)

__all__ = [
    "CacheEntry",
    "Environment",
    "EnvironmentBuildError",
    "EnvironmentCatalog",
    "EnvironmentDefinition",
    "EnvironmentRecord",
    "IndexConfig",
    "InterpreterInfo",
    "PruneResult",
    "Registration",
    "ambient_lock",
    "container_command",
    "container_runtime",
    "content_hash",
    "current_interpreter",
    "define",
    "definition_digest",
    "env_vars_for",
    "hold",
    "list_entries",
    "lookup",
    "materialize",
    "parse_ref",
    "prune",
    "read_pip_config",
    "register",
    "select_interpreter",
    "tracking_path",
]
