"""Remembering the hashes of unchanged files between snapshots of the same code folder.

A file whose (size, mtime_ns, ctime_ns, inode, device) are those recorded last time is taken
to hold the content recorded last time, and is not read again. ``ctime`` changes on every
write, rename and ``chmod`` and cannot be set back by tools like ``touch``, and a rewrite
through a new file changes the inode, so an edit is noticed even when it keeps the size and
the modification time.

A file changed within :data:`RACY_NS` before the snapshot began is not remembered: a later
edit within the same timestamp tick would leave every figure as it was (git calls such
entries "racily clean"). The cache is only a shortcut: a missing or unreadable cache file
means hashing everything, and failing to save it is not an error.

One cache file per code folder: ``<root>/statcache/<hash of the folder's real path>.json``,
mapping each path to ``[size, mtime_ns, ctime_ns, inode, device, sha256]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

#: Files changed this recently (nanoseconds) before a snapshot are not remembered.
RACY_NS = 2_000_000_000

Stamp = tuple[int, int, int, int, int]


class StatCache:
    """What the last snapshot of one code folder learned about its files."""

    def __init__(self, path: Path, known: dict[str, list[object]], *, started_ns: int):
        self.path = path
        self._known = known
        self._seen: dict[str, list[object]] = {}
        self._safe_before = started_ns - RACY_NS

    @classmethod
    def load(cls, root: Path, code_dir: Path, *, started_ns: int) -> StatCache:
        """The cache for ``code_dir`` (a real path) in the snapshot store at ``root``."""
        key = hashlib.sha256(os.fsencode(code_dir)).hexdigest()[:32]
        path = root / "statcache" / f"{key}.json"
        try:
            known = json.loads(path.read_bytes())
        except (OSError, ValueError):
            known = {}
        if not isinstance(known, dict):
            known = {}
        return cls(path, known, started_ns=started_ns)

    def lookup(self, path: str, stamp: Stamp) -> str | None:
        """The sha256 recorded for ``path`` if it still has ``stamp``, else None."""
        row = self._known.get(path)
        if not isinstance(row, list) or len(row) != 6 or tuple(row[:5]) != stamp:
            return None
        sha = row[5]
        return sha if isinstance(sha, str) and len(sha) == 64 else None

    def remember(self, path: str, stamp: Stamp, sha: str) -> None:
        """Record that ``path`` with ``stamp`` holds ``sha`` (unless it changed too recently)."""
        if max(stamp[1], stamp[2]) < self._safe_before:
            self._seen[path] = [*stamp, sha]

    def save(self) -> None:
        """Keep what this snapshot saw (only that: files gone since are forgotten)."""
        if self._seen == self._known:
            return
        tmp: Path | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-")
            tmp = Path(name)
            with os.fdopen(fd, "wb") as fh:
                fh.write(json.dumps(self._seen, separators=(",", ":")).encode())
            tmp.replace(self.path)
        except OSError:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
