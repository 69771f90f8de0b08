"""The contract every :class:`~runyard.envs.EnvironmentCatalog` passes.

An implementation's test module runs it with a fixture named ``catalog``::

    from catalog_contract import *  # noqa: F403

    @pytest.fixture
    def catalog(...) -> EnvironmentCatalog: ...

The store's implementation should run it over SQLite and PostgreSQL, like its own contract.
"""

from __future__ import annotations

import threading

import pytest

from runyard.envs import EnvironmentCatalog
from runyard.errors import NotFound

DEF_A = {"python": None, "requirements": {"requirements": ["six"]}, "inherit": False}
DEF_B = {"python": None, "requirements": {"requirements": ["six==1.17.0"]}, "inherit": False}


def test_catalog_first_put_is_version_1(catalog: EnvironmentCatalog) -> None:
    rec = catalog.put_environment("digits-env", DEF_A, "a" * 64)
    assert (rec.name, rec.version, rec.digest) == ("digits-env", 1, "a" * 64)
    assert dict(rec.definition) == DEF_A
    assert rec.created_at > 0
    assert catalog.get_environment("digits-env") == rec
    assert catalog.get_environment("digits-env", 1) == rec


def test_catalog_same_digest_returns_latest_unchanged(catalog: EnvironmentCatalog) -> None:
    first = catalog.put_environment("e", DEF_A, "a" * 64)
    assert catalog.put_environment("e", DEF_A, "a" * 64) == first
    assert [r.version for r in catalog.list_environments("e")] == [1]


def test_catalog_new_content_is_the_next_version(catalog: EnvironmentCatalog) -> None:
    catalog.put_environment("e", DEF_A, "a" * 64)
    second = catalog.put_environment("e", DEF_B, "b" * 64)
    assert second.version == 2
    # going back to earlier content is new content again: versions only go forward
    third = catalog.put_environment("e", DEF_A, "a" * 64)
    assert third.version == 3
    assert [r.version for r in catalog.list_environments("e")] == [3, 2, 1]
    assert catalog.get_environment("e", 2).digest == "b" * 64
    assert catalog.get_environment("e").version == 3


def test_catalog_lists_latest_of_each_name(catalog: EnvironmentCatalog) -> None:
    catalog.put_environment("b-env", DEF_A, "a" * 64)
    catalog.put_environment("a-env", DEF_A, "a" * 64)
    catalog.put_environment("a-env", DEF_B, "b" * 64)
    assert [(r.name, r.version) for r in catalog.list_environments()] == [
        ("a-env", 2),
        ("b-env", 1),
    ]
    assert catalog.list_environments("nope") == []


def test_catalog_unknown_name_or_version(catalog: EnvironmentCatalog) -> None:
    catalog.put_environment("e", DEF_A, "a" * 64)
    with pytest.raises(NotFound, match="nope"):
        catalog.get_environment("nope")
    with pytest.raises(NotFound, match="e@7"):
        catalog.get_environment("e", 7)


def test_catalog_concurrent_puts_of_the_same_content_make_one_version(
    catalog: EnvironmentCatalog,
) -> None:
    results = []

    def put() -> None:
        results.append(catalog.put_environment("race", DEF_A, "a" * 64).version)

    threads = [threading.Thread(target=put) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [1] * 8
