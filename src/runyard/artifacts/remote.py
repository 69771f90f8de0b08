"""Artifacts at any fsspec URL (``s3://bucket/prefix``, ``gs://...``, ``memory://...``).

Needs the ``remote`` extra (``pip install 'runyard[remote]'``) plus the filesystem's own
package (s3fs, gcsfs, adlfs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runyard.artifacts.local import check_key
from runyard.errors import NotFound, UserError


def _fsspec() -> Any:
    try:
        import fsspec
    except ImportError:
        raise UserError(
            "artifact URLs other than local folders need fsspec: pip install 'runyard[remote]'"
        ) from None
    return fsspec


class FsspecArtifactStore:
    def __init__(self, url: str):
        fsspec = _fsspec()
        self.fs, root = fsspec.core.url_to_fs(url)
        self.root = root.rstrip("/")

    def _path(self, key: str) -> str:
        return f"{self.root}/{check_key(key)}"

    def put_file(self, key: str, src: Path) -> int:
        path = self._path(key)
        parent = path.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        self.fs.put_file(str(src), path)
        return src.stat().st_size

    def get_file(self, key: str, dest: Path) -> None:
        path = self._path(key)
        if not self.fs.isfile(path):
            raise NotFound(f"no artifact {key!r}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.fs.get_file(path, str(dest))

    def open_read(self, key: str) -> Path | None:
        return None

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        base = self._path(prefix)
        if self.fs.isfile(base):
            yield check_key(prefix), int(self.fs.size(base))
            return
        if not self.fs.isdir(base):
            return
        found = []
        for path, info in self.fs.find(base, detail=True).items():
            rel = path[len(self.root) :].lstrip("/") if path.startswith(self.root) else path
            found.append((rel, int(info.get("size") or 0)))
        yield from sorted(found)

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)
