"""Artifacts in a local folder."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from runyard.errors import NotFound, UserError


def check_key(key: str) -> str:
    p = PurePosixPath(key)
    if not key or p.is_absolute() or ".." in p.parts:
        raise UserError(f"invalid artifact path {key!r}: must be relative and stay inside the run")
    return p.as_posix()


class LocalArtifactStore:
    def __init__(self, root: Path):
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put_file(self, key: str, src: Path) -> int:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        shutil.copyfile(src, tmp)
        tmp.replace(dest)
        return dest.stat().st_size

    def get_file(self, key: str, dest: Path) -> None:
        src = self._path(key)
        if not src.is_file():
            raise NotFound(f"no artifact {key!r}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)

    def open_read(self, key: str) -> Path | None:
        return self._path(key)

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        base = self._path(prefix)
        if base.is_file():
            yield check_key(prefix), base.stat().st_size
            return
        if not base.is_dir():
            return
        found = []
        for dirpath, _dirs, files in os.walk(base):
            for f in files:
                if f.startswith(".") and f.endswith(".tmp"):
                    continue
                full = Path(dirpath) / f
                found.append((full.relative_to(self.root).as_posix(), full.stat().st_size))
        yield from sorted(found)

    def delete_prefix(self, prefix: str) -> None:
        target = self._path(prefix)
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
