"""An environment's content, self-contained and normalized, and the hashes over it.

:func:`define` turns an :class:`~runyard.spec.job.EnvironmentSpec` into an
:class:`EnvironmentDefinition`: the requirements files and the conda file are read (relative
paths against ``base_dir``, the job's code folder) and folded into one normalized requirement
list, so nothing in it refers to files any more. Registered environments store definitions.

Two hashes:

- :func:`definition_digest` — the definition as written, ``env_vars`` included: a registered
  environment gets a new version only when this changes.
- :func:`content_hash` — what decides the built environment: the normalized requirements,
  ``inherit``, the interpreter's implementation, version, platform and variant, and the
  package sources (see :mod:`runyard.envs.indexes`). Not ``env_vars`` (they do not change the
  installed files; runs still get them) and not the ``python:`` specifier itself (only the
  interpreter it selected). Same content, same hash, whatever the order, spelling or name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runyard.envs.conda import read_conda_file
from runyard.envs.indexes import IndexConfig, read_pip_config
from runyard.envs.interpreter import InterpreterInfo, python_specifier
from runyard.envs.requirements import Requirements, RequirementsReader
from runyard.errors import SpecError
from runyard.spec.job import EnvironmentSpec

#: Bumped when the meaning of the hashed content changes, so old cache entries are not reused.
HASH_FORMAT = 1


@dataclass(frozen=True)
class EnvironmentDefinition:
    """What an environment holds, with no file left to read."""

    #: A normalized PEP 440 specifier for the interpreter, or None for the current one.
    python: str | None = None
    requirements: Requirements = field(default_factory=Requirements)
    inherit: bool = False
    env_vars: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None

    @property
    def has_packages(self) -> bool:
        r = self.requirements
        return bool(r.requirements or r.constraints or r.options)

    @property
    def is_ambient(self) -> bool:
        """True when runs use the current interpreter as is (only variables set)."""
        return self.python is None and self.image is None and not self.has_packages

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; :meth:`from_dict` rebuilds the same definition."""
        d = asdict(self)
        d["env_vars"] = dict(self.env_vars)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EnvironmentDefinition:
        r = dict(data.get("requirements") or {})
        reqs = Requirements(
            requirements=tuple(r.get("requirements") or ()),
            constraints=tuple(r.get("constraints") or ()),
            index_url=r.get("index_url"),
            extra_index_urls=tuple(r.get("extra_index_urls") or ()),
            find_links=tuple(r.get("find_links") or ()),
            no_index=bool(r.get("no_index")),
            options=tuple(r.get("options") or ()),
            local_files=tuple((str(p), str(h)) for p, h in r.get("local_files") or ()),
        )
        return cls(
            python=data.get("python"),
            requirements=reqs,
            inherit=bool(data.get("inherit")),
            env_vars={str(k): str(v) for k, v in (data.get("env_vars") or {}).items()},
            image=data.get("image"),
        )


def define(env: EnvironmentSpec, *, base_dir: Path | None = None) -> EnvironmentDefinition:
    """Read and normalize ``env``. Relative ``requirements``/``conda_file`` paths (and local
    paths in the ``pip:`` list) resolve against ``base_dir``, the job's code folder (default:
    the current folder). ``env.ref`` must be resolved first (:mod:`runyard.envs.registry`)."""
    if env.ref is not None:
        raise SpecError(
            f"{env.ref!r} names a registered environment; look it up before building",
            field="environment",
        )
    base = (base_dir or Path.cwd()).resolve()
    pythons: list[str] = []
    if env.python is not None:
        pythons.append(str(python_specifier(env.python)))
    reader = RequirementsReader("environment.pip")
    reader.add_lines(env.pip, base_dir=base, origin="pip")
    if env.requirements is not None:
        reader.add_file(_under(base, env.requirements), spec_field="environment.requirements")
    if env.conda_file is not None:
        conda = read_conda_file(_under(base, env.conda_file))
        if conda.python:
            pythons.append(conda.python)
        reader.add_lines(
            conda.pip,
            base_dir=conda.path.parent,
            origin=f"{conda.path.name} pip",
            spec_field="environment.conda_file",
        )
    requirements = reader.result()
    if env.image is not None and (
        requirements.requirements or env.requirements is not None or env.conda_file is not None
    ):
        raise SpecError(
            "an image cannot be combined with pip, requirements or conda_file yet: install the "
            "packages in the image",
            field="environment.image",
        )
    python = str(python_specifier(",".join(pythons))) if pythons else None
    return EnvironmentDefinition(
        python=python,
        requirements=requirements,
        inherit=bool(env.inherit),
        env_vars=dict(env.env_vars),
        image=env.image,
    )


def definition_digest(definition: EnvironmentDefinition) -> str:
    """sha256 of the definition as written (``env_vars`` included)."""
    return _sha256(definition.to_dict())


def content_hash(
    env: EnvironmentSpec | EnvironmentDefinition,
    *,
    base_dir: Path | None = None,
    python: InterpreterInfo,
    indexes: IndexConfig | None = None,
) -> str:
    """The hash naming the built environment in the cache (64 hex digits). ``indexes``
    defaults to the person's pip configuration (:func:`read_pip_config`)."""
    d = env if isinstance(env, EnvironmentDefinition) else define(env, base_dir=base_dir)
    r = d.requirements
    sources = (indexes if indexes is not None else read_pip_config()).merged(r)
    return _sha256(
        {
            "format": HASH_FORMAT,
            "python": python.identity(),
            "requirements": list(r.requirements),
            "constraints": list(r.constraints),
            "options": list(r.options),
            "local_files": [h for _, h in r.local_files],
            "inherit": str(python.prefix) if d.inherit else None,
            "sources": sources.identity(),
        }
    )


def _under(base: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else base / path


def _sha256(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
