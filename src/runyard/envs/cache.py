"""The environment cache: its layout, its locks, and pruning it.

Layout under the cache root (a workspace's ``envs/`` folder)::

    <hash>/                        a built environment (a virtual environment made by uv)
        runyard-env.json           written last: the spec, hash, interpreter, lock, build time;
                                   its modification time is the entry's last use
        runyard-requirements.txt   exactly what was installed (and runyard-constraints.txt)
    .build-<hash16>-<pid>-<rand>/  a build in progress; renamed to <hash>/ when complete
    .trash-<hash16>-<rand>/        an entry being deleted
    .locks/<hash>.lock             held (exclusive) while <hash> is built or pruned
    .locks/<hash>.use              held shared by runs using <hash>; exclusive by prune
    .interpreters.json             interpreter lookups (see runyard.envs.interpreter)
    .uv-cache/                     uv's cache, only when uv's own is on another filesystem
    .runyard-api/<key>/runyard     a link to runyard's package, put on PYTHONPATH of runs in
                                   environments without runyard (runyard.envs.tracking_path)

An entry appears whole or not at all (a rename within the folder); a failed or killed build
leaves only a ``.build-*`` folder that no lock protects, which the next build or :func:`prune`
removes. Locks are ``flock`` locks: the kernel releases them when their holder dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from runyard.envs.errors import EnvironmentBuildError

MARKER = "runyard-env.json"
LOCKS = ".locks"
INTERPRETERS = ".interpreters.json"
UV_CACHE = ".uv-cache"
_HASH = re.compile(r"^[0-9a-f]{64}$")
_LEFTOVER = re.compile(r"^\.(build|trash)-([0-9a-f]{16})-")


def entry_path(root: Path, digest: str) -> Path:
    return root / digest


def marker_path(root: Path, digest: str) -> Path:
    return root / digest / MARKER


def build_dir(root: Path, digest: str) -> Path:
    """A fresh folder name for building ``digest``, next to where it will live."""
    return root / f".build-{digest[:16]}-{os.getpid()}-{secrets.token_hex(4)}"


def read_marker(root: Path, digest: str) -> dict[str, Any] | None:
    """The entry's record if the entry is complete and its interpreter still runs, else None.

    The check is two ``stat`` calls and one small read: the cache-hit path."""
    try:
        data = json.loads(marker_path(root, digest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    # bin/python links to the interpreter it was built on; gone with it, the entry is stale.
    if not isinstance(data, dict) or not (root / digest / "bin" / "python").exists():
        return None
    return data


def touch(root: Path, digest: str) -> None:
    """Record a use of the entry (its marker's time); prune keeps recently used entries."""
    with contextlib.suppress(OSError):
        os.utime(marker_path(root, digest))


def write_marker(folder: Path, record: dict[str, Any]) -> None:
    tmp = folder / f"{MARKER}.tmp"
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(folder / MARKER)


# -- locks ---------------------------------------------------------------------------------
def _lock_file(root: Path, digest: str, kind: str) -> IO[bytes]:
    folder = root / LOCKS
    folder.mkdir(parents=True, exist_ok=True)
    return (folder / f"{digest}.{kind}").open("a+b")


@contextlib.contextmanager
def build_lock(
    root: Path,
    digest: str,
    *,
    on_wait: Callable[[], None],
    cancel: threading.Event | None = None,
) -> Iterator[None]:
    """Hold the build lock of ``digest``; ``on_wait`` is called once if another process holds
    it (then this waits for it, until ``cancel`` is set: :class:`EnvironmentBuildError`)."""
    with _lock_file(root, digest, "lock") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait()
            _wait_for(f, digest, cancel)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _wait_for(f: IO[bytes], digest: str, cancel: threading.Event | None) -> None:
    if cancel is None:
        fcntl.flock(f, fcntl.LOCK_EX)
        return
    while True:
        if cancel.wait(0.1):
            raise EnvironmentBuildError(
                f"waiting for another build of environment {digest[:12]} canceled"
            )
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue
        return


@contextlib.contextmanager
def use_lock(root: Path, digest: str) -> Iterator[dict[str, Any] | None]:
    """Hold the use lock of ``digest`` shared (waiting while prune holds it); yields the
    entry's record, None when it is not (or no longer) complete. Where the lock file cannot
    be opened (a read-only workspace) this yields without locking."""
    try:
        f = _lock_file(root, digest, "use")
    except OSError:
        yield read_marker(root, digest)
        return
    with f:
        fcntl.flock(f, fcntl.LOCK_SH)
        try:
            yield read_marker(root, digest)
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _try_exclusive(root: Path, digest: str, kind: str) -> Iterator[bool]:
    with _lock_file(root, digest, kind) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def retire(root: Path, path: Path) -> Path:
    """Move ``path`` out of the way (atomically) under a ``.trash-*`` name; return it."""
    trash = (
        root / f".trash-{path.name.lstrip('.').removeprefix('build-')[:16]}-{secrets.token_hex(4)}"
    )
    path.rename(trash)
    return trash


# -- listing and pruning ---------------------------------------------------------------------
@dataclass(frozen=True)
class CacheEntry:
    hash: str
    path: Path
    #: When it was last materialized or used (seconds since the epoch).
    last_used: float
    size_bytes: int
    record: dict[str, Any]


def list_entries(root: Path, *, sizes: bool = True) -> list[CacheEntry]:
    """The complete entries in the cache, least recently used first."""
    out: list[CacheEntry] = []
    if not root.is_dir():
        return out
    for child in root.iterdir():
        if not _HASH.match(child.name):
            continue
        record = read_marker(root, child.name)
        if record is None:
            continue
        try:
            last = marker_path(root, child.name).stat().st_mtime
        except OSError:
            continue
        out.append(CacheEntry(child.name, child, last, _size(child) if sizes else 0, record))
    return sorted(out, key=lambda e: e.last_used)


@dataclass(frozen=True)
class PruneResult:
    removed: tuple[str, ...]
    #: Entries kept: in use, used within the window, or being built or used right now.
    kept: tuple[str, ...]
    freed_bytes: int


def prune(
    envs_root: Path,
    *,
    older_than: float | None = None,
    in_use: Collection[str] = (),
    grace: float = 300.0,
    now: float | None = None,
) -> PruneResult:
    """Remove cache entries not used for ``older_than`` seconds (None: any age), except those
    in ``in_use`` (hashes the store knows are used by active runs), those used in the last
    ``grace`` seconds (a run that has just materialized one but is not yet recorded), and
    those whose build or use lock is held (being built, or held by a running supervisor via
    :func:`runyard.envs.hold`). Also removes leftovers of killed builds and deletions.

    Each entry is renamed to a ``.trash-*`` name under its locks, then deleted, so a reader
    never sees half of one."""
    now = time.time() if now is None else now
    window = max(older_than or 0.0, grace)
    removed: list[str] = []
    kept: list[str] = []
    freed = 0
    for entry in list_entries(envs_root, sizes=False):
        if entry.hash in in_use or now - entry.last_used < window:
            kept.append(entry.hash)
            continue
        trash = _retire_unused(envs_root, entry.hash, now=now, window=window)
        if trash is None:
            kept.append(entry.hash)
            continue
        freed += _size(trash)
        shutil.rmtree(trash, ignore_errors=True)
        removed.append(entry.hash)
    freed += _remove_leftovers(envs_root)
    return PruneResult(removed=tuple(removed), kept=tuple(kept), freed_bytes=freed)


def _retire_unused(root: Path, digest: str, *, now: float, window: float) -> Path | None:
    with (
        _try_exclusive(root, digest, "lock") as not_building,
        _try_exclusive(root, digest, "use") as not_used,
    ):
        if not (not_building and not_used):
            return None
        try:  # a use may have touched it since it was listed
            if now - marker_path(root, digest).stat().st_mtime < window:
                return None
        except OSError:
            return None
        return retire(root, entry_path(root, digest))


def _remove_leftovers(root: Path) -> int:
    """Delete ``.trash-*`` folders and ``.build-*`` folders whose builder is gone."""
    freed = 0
    if not root.is_dir():
        return freed
    by_prefix: dict[str, str] = {}
    if (root / LOCKS).is_dir():
        by_prefix = {p.stem[:16]: p.stem for p in (root / LOCKS).glob("*.lock")}
    for found in root.iterdir():
        m = _LEFTOVER.match(found.name)
        if not m or not found.is_dir():
            continue
        child = found
        if m.group(1) == "build":
            digest = by_prefix.get(m.group(2))
            if digest is None:
                continue
            with _try_exclusive(root, digest, "lock") as free:
                if not free:
                    continue  # still being built
                child = retire(root, child)
        freed += _size(child)
        shutil.rmtree(child, ignore_errors=True)
    return freed


def remove_stale_builds(root: Path, digest: str) -> None:
    """Delete leftovers of earlier builds of ``digest``; the caller holds its build lock."""
    for child in root.glob(f".build-{digest[:16]}-*"):
        shutil.rmtree(child, ignore_errors=True)


def _size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size  # noqa: PTH118
    return total
