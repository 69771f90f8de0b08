"""Copying a run's local folders to the artifact store, and tailing its log for a terminal.

``logs/`` is synced while the run goes (only files whose size or modification time changed
since the last copy), ``outputs/`` at the end; both through :class:`FolderSync`. A file that
takes long to copy (a big, growing log) is copied less often while the run goes: never more
than 1/:data:`COPY_BACKOFF` of the time is spent copying it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from runyard.artifacts import ArtifactStore
from runyard.records import ArtifactInfo

#: After a copy that took t seconds, the same file is not copied again for COPY_BACKOFF * t.
COPY_BACKOFF = 20


class FolderSync:
    """Mirrors the files under ``local`` to artifact keys ``<run_id>/<prefix>/<relpath>``.

    Files are never deleted from the artifact store (a run's artifacts only grow)."""

    def __init__(self, artifacts: ArtifactStore, run_id: str, local: Path, prefix: str):
        self.artifacts = artifacts
        self.run_id = run_id
        self.local = local
        self.prefix = prefix
        self._seen: dict[str, tuple[int, int]] = {}
        self._not_before: dict[str, float] = {}

    def sync(self, *, force: bool = False) -> list[ArtifactInfo]:
        """Copy new and changed files; return their index entries (to record). Without
        ``force``, files copied very recently (see :data:`COPY_BACKOFF`) wait their turn."""
        changed = []
        now = time.monotonic()
        for rel, full, sig in self._scan():
            if not force and now < self._not_before.get(rel, 0.0):
                continue
            info = self._copy(rel, full, sig)
            if info is not None:
                changed.append(info)
        return changed

    def sync_one(self, rel: str) -> ArtifactInfo | None:
        """Copy one file (``/``-separated, relative to ``local``) if it changed."""
        full = self.local / rel
        try:
            st = full.stat()
        except OSError:
            return None
        if not full.is_file() or not _inside(full, self.local):
            return None
        return self._copy(rel, full, (st.st_size, st.st_mtime_ns))

    def pending(self) -> int:
        """How many bytes :meth:`sync` with ``force`` would copy now."""
        return sum(sig[0] for rel, _, sig in self._scan() if self._seen.get(rel) != sig)

    def _scan(self) -> list[tuple[str, Path, tuple[int, int]]]:
        """Every file under ``local`` (links to files followed, to folders not), in path
        order: its ``/``-separated path relative to ``local``, full path, (size, mtime)."""
        found: list[tuple[str, Path, tuple[int, int]]] = []
        folders = [("", str(self.local))]
        while folders:
            prefix, folder = folders.pop()
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
            except OSError:  # removed meanwhile
                continue
            for entry in entries:
                rel = prefix + entry.name
                try:
                    if entry.is_dir():  # a link to a folder is not followed, as os.walk does
                        if not entry.is_symlink():
                            folders.append((rel + "/", entry.path))
                        continue
                    st = entry.stat()
                except OSError:  # removed meanwhile, or a dangling link
                    continue
                found.append((rel, Path(entry.path), (st.st_size, st.st_mtime_ns)))
        found.sort(key=lambda f: f[0])
        return found

    def _copy(self, rel: str, full: Path, sig: tuple[int, int]) -> ArtifactInfo | None:
        if self._seen.get(rel) == sig:
            return None
        started = time.monotonic()
        try:
            size = self.artifacts.put_file(f"{self.run_id}/{self.prefix}/{rel}", full)
        except FileNotFoundError:
            return None
        done = time.monotonic()
        self._not_before[rel] = done + COPY_BACKOFF * (done - started)
        self._seen[rel] = sig
        return ArtifactInfo(path=f"{self.prefix}/{rel}", size=size)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


class LogTail:
    """Feeds the complete new lines of a growing text file to ``echo``."""

    def __init__(self, path: Path, echo: Callable[[str], None], *, max_read: int = 1 << 20):
        self.path = path
        self.echo = echo
        self.max_read = max_read
        self._offset = 0
        self._partial = b""

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as f:  # noqa: PTH123
                f.seek(self._offset)
                data = f.read(self.max_read)
        except FileNotFoundError:
            return
        if not data:
            return
        self._offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self.echo(line.decode(errors="replace").rstrip("\r"))

    def drain(self) -> None:
        """Echo everything left, including a last line without a newline."""
        size = _size(self.path)
        while self._offset < size:
            before = self._offset
            self.poll()
            if self._offset == before:
                break
        if self._partial:
            self.echo(self._partial.decode(errors="replace"))
            self._partial = b""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def tail_text(path: Path, *, lines: int = 30, max_bytes: int = 64 * 1024) -> str | None:
    """The last ``lines`` lines of a text file (``None`` if it is missing or empty)."""
    try:
        with open(path, "rb") as f:  # noqa: PTH123
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return None
    text = data.decode(errors="replace")
    if size > max_bytes:
        text = text.split("\n", 1)[-1]  # drop the partial first line
    kept = text.rstrip("\n").split("\n")[-lines:]
    out = "\n".join(kept).strip("\n")
    return out or None
