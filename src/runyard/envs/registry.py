"""Registered environments: named, versioned definitions (``digits-env``, ``digits-env@3``).

A registered version holds an :class:`~runyard.envs.definition.EnvironmentDefinition` (files
already read, so it does not depend on where it was registered from) and its
:func:`~runyard.envs.definition.definition_digest`. Registering the same content again gives
back the latest version; different content makes the next one. Where versions are kept is the
:class:`EnvironmentCatalog` port (the workspace's store implements it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from runyard.envs.definition import EnvironmentDefinition, define, definition_digest
from runyard.errors import SpecError, UserError
from runyard.records import EnvironmentRecord
from runyard.spec.job import EnvironmentSpec

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")
_REF = re.compile(r"^(?P<name>[^@:]+)(?:[@:](?P<version>\d+|latest))?$")


class EnvironmentCatalog(Protocol):
    """Where registered environments are kept.

    Contract (``tests/envs/catalog_contract.py`` checks an implementation):

    - Versions of a name are 1, 2, 3... in registration order and never change once recorded.
    - :meth:`put_environment` is one transaction, safe between processes: if the latest
      version of ``name`` has ``digest`` it returns that version unchanged; otherwise it
      records the next version. Two processes putting the same new content make one version.
    - Names are case-sensitive and validated by the caller.
    """

    def put_environment(
        self, name: str, definition: Mapping[str, Any], digest: str
    ) -> EnvironmentRecord:
        """The latest version if its digest is ``digest``, else a new version."""
        ...

    def get_environment(self, name: str, version: int | None = None) -> EnvironmentRecord:
        """That version, or the latest when ``version`` is None. Raises
        :class:`~runyard.errors.NotFound` naming ``name@version``."""
        ...

    def list_environments(self, name: str | None = None) -> list[EnvironmentRecord]:
        """With ``name``: its versions, newest first (empty if unknown). Without: the latest
        version of every name, by name."""
        ...


@dataclass(frozen=True)
class Registration:
    record: EnvironmentRecord
    #: False when the content was already the latest version.
    created: bool


def register(
    catalog: EnvironmentCatalog,
    name: str,
    env: EnvironmentSpec | EnvironmentDefinition,
    *,
    base_dir: Path | None = None,
) -> Registration:
    """Register ``env`` under ``name``: a new version only when its content changed.
    Relative files in ``env`` resolve against ``base_dir`` (the env.yaml's folder)."""
    if not _NAME.match(name):
        raise UserError(
            f"environment name {name!r}: must start with a letter or digit and hold only "
            "letters, digits, '_', '.', '-'"
        )
    d = env if isinstance(env, EnvironmentDefinition) else define(env, base_dir=base_dir)
    before = catalog.list_environments(name)
    record = catalog.put_environment(name, d.to_dict(), definition_digest(d))
    created = not before or before[0].version != record.version
    return Registration(record=record, created=created)


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``digits-env`` → ``("digits-env", None)``; ``digits-env@3`` and Azure ML's
    ``digits-env:3`` → ``("digits-env", 3)``; ``@latest`` → None."""
    m = _REF.match(ref.strip().removeprefix("azureml:"))
    if not m or not _NAME.match(m.group("name")):
        raise SpecError(
            f"expected an environment name such as 'digits-env' or 'digits-env@3', got {ref!r}",
            field="environment",
        )
    version = m.group("version")
    return m.group("name"), None if version in (None, "latest") else int(version)


def lookup(
    catalog: EnvironmentCatalog, ref: str
) -> tuple[EnvironmentRecord, EnvironmentDefinition]:
    """The registered version ``ref`` names, and its definition."""
    name, version = parse_ref(ref)
    record = catalog.get_environment(name, version)
    return record, EnvironmentDefinition.from_dict(record.definition)
