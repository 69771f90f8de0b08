"""Shared fixtures for the snapshot tests: real folders under tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from runyard.snapshot import Snapshot, read_manifest, take_snapshot

Tree = dict[str, str | bytes]


def _write_tree(base: Path, files: Tree) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return base


@pytest.fixture
def code(tmp_path: Path) -> Callable[[Tree], Path]:
    """Write files (relative path -> text or bytes) into the code folder ``tmp_path/code``."""
    return lambda files: _write_tree(tmp_path / "code", files)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def snap(store: Path) -> Callable[[Path], Snapshot]:
    """Snapshot a folder into ``store`` with generous limits."""
    return lambda folder: take_snapshot(folder, store, max_files=10_000, max_bytes=1 << 30)


@pytest.fixture
def paths(store: Path) -> Callable[[Snapshot], list[str]]:
    """The paths a snapshot holds, sorted."""
    return lambda s: [e.path for e in read_manifest(store, s.id)]


@pytest.fixture
def blobs(store: Path) -> Callable[[], set[str]]:
    """The names of the blobs now in ``store``."""

    def names() -> set[str]:
        folder = store / "blobs"
        return {p.name for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()

    return names
