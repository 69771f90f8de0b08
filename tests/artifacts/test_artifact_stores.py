"""The ArtifactStore contract, run against every implementation: a local folder and fsspec
(its in-memory filesystem, the same code path as s3:// or gs://)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runyard.artifacts import ArtifactStore, open_artifact_store
from runyard.errors import NotFound, UserError


@pytest.fixture(params=["local", "fsspec-memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactStore]:
    if request.param == "local":
        yield open_artifact_store(str(tmp_path / "artifacts"))
    else:
        url = f"memory://runyard-test-{uuid.uuid4().hex}"
        s = open_artifact_store(url)
        yield s
        s.delete_prefix("run1")


def test_put_get_list_delete(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(b"x" * 1000)
    assert store.put_file("run1/outputs/model.bin", src) == 1000
    src.write_text("log line\n")
    store.put_file("run1/logs/std_log.txt", src)
    store.put_file("run1/logs/std_log.txt", src)  # replacing is fine
    assert list(store.list("run1")) == [
        ("run1/logs/std_log.txt", 9),
        ("run1/outputs/model.bin", 1000),
    ]
    assert list(store.list("run1/outputs/model.bin")) == [("run1/outputs/model.bin", 1000)]
    assert list(store.list("run2")) == []
    dest = tmp_path / "down" / "m.bin"
    store.get_file("run1/outputs/model.bin", dest)
    assert dest.read_bytes() == b"x" * 1000
    store.delete_prefix("run1/outputs")
    assert [k for k, _ in store.list("run1")] == ["run1/logs/std_log.txt"]
    with pytest.raises(NotFound, match=r"no artifact 'run1/outputs/model\.bin'"):
        store.get_file("run1/outputs/model.bin", dest)


@pytest.mark.parametrize("key", ["/etc/passwd", "run1/../../x", "", "../x"])
def test_keys_cannot_escape(store: ArtifactStore, tmp_path: Path, key: str) -> None:
    src = tmp_path / "f"
    src.write_text("x")
    with pytest.raises(UserError, match="invalid artifact path"):
        store.put_file(key, src)
