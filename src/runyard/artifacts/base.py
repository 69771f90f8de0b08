"""The ``ArtifactStore`` port: files by key.

Keys are ``/``-separated relative paths (``<run_id>/outputs/model.pt``); a key never starts
with ``/`` and never contains ``..``. Writes replace whole files atomically (a reader sees the
old file or the new one, never a torn one). Implementations are looked up by URL scheme in
:func:`runyard.artifacts.open_artifact_store`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol


class ArtifactStore(Protocol):
    def put_file(self, key: str, src: Path) -> int:
        """Copy the local file ``src`` to ``key``; return its size in bytes."""
        ...

    def get_file(self, key: str, dest: Path) -> None:
        """Copy ``key`` to the local path ``dest`` (parents created). Raises
        :class:`~runyard.errors.NotFound` when there is no such key."""
        ...

    def open_read(self, key: str) -> Path | None:
        """A local path to read ``key`` from directly, if this store is local; else None."""
        ...

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(key, size) of every file under ``prefix``, sorted by key."""
        ...

    def delete_prefix(self, prefix: str) -> None: ...
