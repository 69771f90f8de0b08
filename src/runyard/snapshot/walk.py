"""Finding the files of a code folder that go into a snapshot.

The walk applies the ignore rules (:mod:`runyard.snapshot.ignore`) and only looks at file
metadata; reading contents is the store's job. Symbolic links:

- a link to a file is taken as the file it points to (wherever that is);
- a link to a folder inside the code folder is walked like a folder, unless it points back
  to a folder the walk is already in (a loop);
- a link to a folder outside the code folder, a dangling link, and anything that is not a
  regular file (sockets, pipes, devices) are passed over.

Empty folders are not recorded.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from runyard.errors import SnapshotError
from runyard.snapshot.ignore import IgnoreRules


@dataclass(frozen=True)
class FoundFile:
    """One file to snapshot, as seen when the folder was walked."""

    #: Relative to the code folder, ``/``-separated.
    path: str
    #: Where to read it (a link is read through).
    source: str
    size: int
    executable: bool
    #: (size, mtime_ns, ctime_ns, inode, device): what the stat cache compares.
    stamp: tuple[int, int, int, int, int]


@dataclass(frozen=True)
class Scan:
    """The files found, sorted by path, and the rules file name that was in force."""

    files: list[FoundFile]
    ignore_file: str
    #: False when the walk stopped early because it found more files than asked for.
    complete: bool


class _TooMany(Exception):
    pass


def scan(code_dir: Path, *, skip: Collection[Path] = (), stop_after: int | None = None) -> Scan:
    """Walk ``code_dir`` (a folder) and list the files a snapshot takes.

    Folders in ``skip`` (real paths) are not entered. With ``stop_after``, the walk stops once
    it has found more files than that, and the result is marked incomplete."""
    top = code_dir.resolve()
    rules = IgnoreRules.for_code_dir(top)
    walker = _Walker(str(top), frozenset(str(p) for p in skip), stop_after)
    complete = True
    try:
        walker.visit(str(top), "", rules, frozenset({str(top)}))
    except _TooMany:
        complete = False
    walker.found.sort(key=lambda f: f.path)
    return Scan(walker.found, rules.filename, complete)


class _Walker:
    def __init__(self, top: str, skip: frozenset[str], stop_after: int | None):
        self.top = top
        self.skip = skip
        self.stop_after = stop_after
        self.found: list[FoundFile] = []

    def visit(self, real: str, prefix: str, rules: IgnoreRules, inside: frozenset[str]) -> None:
        """Walk the folder at real path ``real``, shown as ``prefix``; ``inside`` holds the
        real paths of the folders the walk is in, to break link loops."""
        try:
            with os.scandir(real) as it:
                entries = list(it)
        except OSError as exc:
            shown = prefix or "./"
            raise SnapshotError(f"cannot read {shown} in the code folder: {exc.strerror}") from None
        for entry in entries:
            path = prefix + entry.name
            if entry.is_symlink():
                self._visit_link(entry, path, rules, inside)
            elif entry.is_dir(follow_symlinks=False):
                sub = f"{real}/{entry.name}"
                if sub not in self.skip and not rules.ignored(path, is_dir=True):
                    inner = rules.enter(path + "/", Path(sub))
                    self.visit(sub, path + "/", inner, inside | {sub})
            elif entry.is_file(follow_symlinks=False) and not rules.ignored(path, is_dir=False):
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # removed while the walk went on
                    continue
                self._add(path, entry.path, st)

    def _visit_link(
        self, entry: os.DirEntry[str], path: str, rules: IgnoreRules, inside: frozenset[str]
    ) -> None:
        try:
            st = entry.stat(follow_symlinks=True)
        except OSError:  # dangling, or a loop of links
            return
        if stat.S_ISREG(st.st_mode):
            if not rules.ignored(path, is_dir=False):
                self._add(path, entry.path, st)
        elif stat.S_ISDIR(st.st_mode):
            target = str(Path(entry.path).resolve())
            in_tree = target.startswith(self.top + "/")
            if (
                in_tree
                and target not in inside
                and target not in self.skip
                and not rules.ignored(path, is_dir=True)
            ):
                inner = rules.enter(path + "/", Path(target))
                self.visit(target, path + "/", inner, inside | {target})

    def _add(self, path: str, source: str, st: os.stat_result) -> None:
        if self.stop_after is not None and len(self.found) >= self.stop_after:
            raise _TooMany
        stamp = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)
        executable = bool(st.st_mode & stat.S_IXUSR)
        self.found.append(FoundFile(path, source, st.st_size, executable, stamp))
