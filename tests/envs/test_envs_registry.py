"""Registered environments: versions only when content changes, references, lookups.

The catalog here is an in-memory one written against the port's contract (which it passes,
below); the store's implementation runs the same contract."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from catalog_contract import *  # noqa: F403

from runyard.envs import (
    EnvironmentRecord,
    IndexConfig,
    content_hash,
    current_interpreter,
    define,
    lookup,
    parse_ref,
    register,
)
from runyard.errors import NotFound, SpecError, UserError
from runyard.spec.job import EnvironmentSpec


class MemoryCatalog:
    def __init__(self) -> None:
        self._versions: dict[str, list[EnvironmentRecord]] = {}
        self._lock = threading.Lock()

    def put_environment(
        self, name: str, definition: Mapping[str, Any], digest: str
    ) -> EnvironmentRecord:
        with self._lock:
            versions = self._versions.setdefault(name, [])
            if versions and versions[-1].digest == digest:
                return versions[-1]
            rec = EnvironmentRecord(name, len(versions) + 1, dict(definition), digest, time.time())
            versions.append(rec)
            return rec

    def get_environment(self, name: str, version: int | None = None) -> EnvironmentRecord:
        versions = self._versions.get(name)
        if not versions:
            raise NotFound(f"environment {name!r} not found")
        if version is None:
            return versions[-1]
        if not 1 <= version <= len(versions):
            raise NotFound(f"environment {name}@{version} not found")
        return versions[version - 1]

    def list_environments(self, name: str | None = None) -> list[EnvironmentRecord]:
        if name is not None:
            return list(reversed(self._versions.get(name, [])))
        return [v[-1] for _, v in sorted(self._versions.items())]


@pytest.fixture
def catalog() -> MemoryCatalog:
    return MemoryCatalog()


def test_register_makes_a_new_version_only_when_content_changes(
    catalog: MemoryCatalog, tmp_path: Path
) -> None:
    (tmp_path / "requirements.txt").write_text("six==1.17.0\n")
    env = EnvironmentSpec(requirements="requirements.txt", env_vars={"OMP_NUM_THREADS": "1"})
    first = register(catalog, "digits-env", env, base_dir=tmp_path)
    assert first.created and first.record.ref == "digits-env@1"
    again = register(catalog, "digits-env", env, base_dir=tmp_path)
    assert not again.created and again.record == first.record
    # the same content spelled differently is the same content
    same = EnvironmentSpec(pip=("SIX == 1.17.0",), env_vars={"OMP_NUM_THREADS": "1"})
    assert not register(catalog, "digits-env", same, base_dir=tmp_path).created
    (tmp_path / "requirements.txt").write_text("six==1.16.0\n")
    changed = register(catalog, "digits-env", env, base_dir=tmp_path)
    assert changed.created and changed.record.version == 2
    # variables are part of a registered environment's content
    other_vars = EnvironmentSpec(pip=("six==1.16.0",), env_vars={"OMP_NUM_THREADS": "4"})
    assert register(catalog, "digits-env", other_vars).record.version == 3


def test_registered_version_does_not_depend_on_its_files(
    catalog: MemoryCatalog, tmp_path: Path
) -> None:
    (tmp_path / "requirements.txt").write_text("six==1.17.0\n")
    register(catalog, "e", EnvironmentSpec(requirements="requirements.txt"), base_dir=tmp_path)
    (tmp_path / "requirements.txt").unlink()
    record, definition = lookup(catalog, "e@1")
    assert record.version == 1
    assert definition.requirements.requirements == ("six==1.17.0",)
    py, idx = current_interpreter(), IndexConfig()
    assert content_hash(definition, python=py, indexes=idx) == content_hash(
        EnvironmentSpec(pip=("six==1.17.0",)), python=py, indexes=idx
    )


@pytest.mark.parametrize(
    ("ref", "parsed"),
    [("digits-env", ("digits-env", None)), ("digits-env@3", ("digits-env", 3)),
     ("digits-env@latest", ("digits-env", None)), ("azureml:digits-env:2", ("digits-env", 2))],
)  # fmt: skip
def test_references(ref: str, parsed: tuple[str, int | None]) -> None:
    assert parse_ref(ref) == parsed


def test_bad_references_and_names(catalog: MemoryCatalog) -> None:
    with pytest.raises(SpecError, match="expected an environment name"):
        parse_ref("digits env@x")
    with pytest.raises(UserError, match="environment name 'bad name'"):
        register(catalog, "bad name", EnvironmentSpec(pip=("six",)))
    with pytest.raises(NotFound):
        lookup(catalog, "missing@1")


def test_definition_of_a_spec_is_what_is_stored(catalog: MemoryCatalog) -> None:
    env = EnvironmentSpec(python=">=3.10", pip=("six",), inherit=True)
    rec = register(catalog, "e", env).record
    assert rec.definition == define(env).to_dict()
