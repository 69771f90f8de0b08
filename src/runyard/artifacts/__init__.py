"""Artifact stores, looked up by URL scheme."""

from __future__ import annotations

from pathlib import Path

from runyard.artifacts.base import ArtifactStore
from runyard.artifacts.local import LocalArtifactStore


def open_artifact_store(url: str) -> ArtifactStore:
    """A local folder path or ``file://`` URL; other fsspec URLs where fsspec is installed."""
    if "://" not in url or url.startswith("file://"):
        return LocalArtifactStore(Path(url.removeprefix("file://")))
    from runyard.artifacts.remote import FsspecArtifactStore

    return FsspecArtifactStore(url)


__all__ = ["ArtifactStore", "LocalArtifactStore", "open_artifact_store"]
