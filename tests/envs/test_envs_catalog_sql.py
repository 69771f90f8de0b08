"""The SQL store as the environment catalog: the catalog contract on SQLite and PostgreSQL,
and the same content put by many processes at once making one version."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from catalog_contract import *  # noqa: F403

from runyard.store.sql import SqlStore


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runyard.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def catalog(store_url: str) -> Iterator[SqlStore]:
    store = SqlStore.open(store_url)
    yield store
    store.close()


_PUT = textwrap.dedent(
    """
    import sys
    from runyard.store.sql import SqlStore
    store = SqlStore.open(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.readline()
    print(store.put_environment("race", {"python": None}, sys.argv[2]).version)
    store.close()
    """
)


@pytest.mark.slow
def test_processes_putting_the_same_new_content_make_one_version(
    catalog: SqlStore, store_url: str
) -> None:
    catalog.put_environment("race", {"python": "x"}, "0" * 64)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _PUT, store_url, "f" * 64],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    versions = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        versions.append(int(out))
    assert versions == [2] * 6
    assert [r.version for r in catalog.list_environments("race")] == [2, 1]
