"""The snapshot store: content-addressed file contents and the manifests that name them.

Layout under the store's ``root`` (a workspace's ``snapshots/`` folder)::

    blobs/<sha[:2]>/<sha>    one file's contents, named by their sha256; read-only
    manifests/<id>.json      one snapshot: its canonical manifest, whose sha256 is <id>
    statcache/<key>.json     see :mod:`runyard.snapshot.statcache`

A manifest is a JSON list of ``{"mode", "path", "sha256", "size"}`` objects sorted by path,
written with sorted keys and no spaces, so the same files always give the same id. ``mode`` is
``0o755`` for executable files and ``0o644`` for the others; nothing else of the permissions,
owners or times is kept.

Everything is written to a temporary name first and moved into place, and blobs and
manifests are never changed once there, so several processes may snapshot into one store at
once. A crash can leave blobs no manifest names; they do no harm.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import re
import secrets
import shutil
import stat
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from runyard.errors import SnapshotError, SnapshotTooLarge
from runyard.snapshot.statcache import StatCache
from runyard.snapshot.walk import FoundFile, Scan, scan

#: Files up to this size are read whole; larger ones are streamed.
SMALL_FILE = 8 * 1024 * 1024
_CHUNK = 1024 * 1024
_ID = re.compile(r"[0-9a-f]{64}")
#: The walk gives up after this many times the file limit, so a mistaken code folder (a home
#: folder, a dataset) fails fast.
_GIVE_UP_FACTOR = 10


@dataclass(frozen=True)
class ManifestEntry:
    """One file of a snapshot."""

    path: str
    sha256: str
    size: int
    mode: int

    @property
    def executable(self) -> bool:
        return bool(self.mode & 0o111)


@dataclass(frozen=True)
class Snapshot:
    """What :func:`take_snapshot` made: the snapshot's id and its figures."""

    id: str
    file_count: int
    total_bytes: int
    #: Bytes written as new blobs by this call (0 when every file was already stored).
    new_bytes: int


def take_snapshot(code_dir: Path, root: Path, *, max_files: int, max_bytes: int) -> Snapshot:
    """Copy the files of ``code_dir`` into the store at ``root`` and return the snapshot.

    Files are chosen as :mod:`runyard.snapshot.walk` describes. The limits are checked before
    anything is written: over either, :class:`SnapshotTooLarge` says how big the folder is and
    which files and folders weigh most. A file that cannot be read raises
    :class:`SnapshotError` naming it (blobs already written then stay, unnamed)."""
    started_ns = time.time_ns()
    if not code_dir.is_dir():
        raise SnapshotError(f"code folder {code_dir} does not exist or is not a folder")
    top = code_dir.resolve()
    found = scan(
        top,
        skip=_store_folders(top, root),
        stop_after=max_files * _GIVE_UP_FACTOR,
    )
    _check_limits(top, found, max_files=max_files, max_bytes=max_bytes)

    blobs = _Blobs(root / "blobs")
    cache = StatCache.load(root, top, started_ns=started_ns)
    entries: list[ManifestEntry] = []
    new_bytes = 0
    for f in found.files:
        sha = cache.lookup(f.path, f.stamp)
        size = f.size
        if sha is None or not blobs.has(sha):
            sha, size, written = blobs.put_file(f)
            new_bytes += written
        cache.remember(f.path, f.stamp, sha)
        entries.append(ManifestEntry(f.path, sha, size, 0o755 if f.executable else 0o644))

    data = _canonical(entries)
    snapshot_id = hashlib.sha256(data).hexdigest()
    manifest = root / "manifests" / f"{snapshot_id}.json"
    if not manifest.exists():
        with _writing(root):
            manifest.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(manifest, data)
    cache.save()
    return Snapshot(
        id=snapshot_id,
        file_count=len(entries),
        total_bytes=sum(e.size for e in entries),
        new_bytes=new_bytes,
    )


def read_manifest(root: Path, snapshot_id: str) -> list[ManifestEntry]:
    """The files of snapshot ``snapshot_id``, sorted by path."""
    if not _ID.fullmatch(snapshot_id):
        raise SnapshotError(f"no snapshot {snapshot_id!r}: a snapshot id is 64 hex digits")
    path = root / "manifests" / f"{snapshot_id}.json"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SnapshotError(f"no snapshot {snapshot_id} in {root}") from None
    except OSError as exc:
        raise SnapshotError(f"cannot read snapshot {snapshot_id}: {exc.strerror}") from None
    if hashlib.sha256(data).hexdigest() != snapshot_id:
        raise SnapshotError(f"snapshot {snapshot_id} is damaged: its manifest does not match")
    try:
        rows = json.loads(data)
        entries = [ManifestEntry(r["path"], r["sha256"], r["size"], r["mode"]) for r in rows]
    except (ValueError, TypeError, KeyError):
        raise SnapshotError(f"snapshot {snapshot_id} has an unreadable manifest") from None
    for e in entries:
        p = PurePosixPath(e.path)
        normal = str(p) == e.path and p.parts and not p.is_absolute() and ".." not in p.parts
        if not normal or not _ID.fullmatch(e.sha256):
            raise SnapshotError(f"snapshot {snapshot_id} has a bad entry {e.path!r}")
    return entries


def materialize(root: Path, snapshot_id: str, dest: Path) -> None:
    """Lay out the files of snapshot ``snapshot_id`` in ``dest`` (absent or an empty folder).

    Files are copies, never links into the store, so whatever runs in ``dest`` may change
    them freely. Executable files get ``x`` wherever they are readable."""
    entries = read_manifest(root, snapshot_id)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise SnapshotError(f"cannot lay out snapshot {snapshot_id} in {dest}: not empty")
    blobs = _Blobs(root / "blobs")
    try:
        dest.mkdir(parents=True, exist_ok=True)
        made = {str(dest)}
        for e in entries:
            target = dest / e.path
            parent = str(target.parent)
            if parent not in made:
                target.parent.mkdir(parents=True, exist_ok=True)
                made.add(parent)
            try:
                shutil.copyfile(blobs.path(e.sha256), target)
            except FileNotFoundError:
                if blobs.has(e.sha256):
                    raise
                raise SnapshotError(
                    f"snapshot {snapshot_id} is damaged: the contents of {e.path} are missing"
                ) from None
            if e.executable:
                mode = target.stat().st_mode
                target.chmod(stat.S_IMODE(mode) | (mode & 0o444) >> 2)
    except OSError as exc:
        raise SnapshotError(f"cannot lay out snapshot {snapshot_id} in {dest}: {exc}") from None


class _Blobs:
    """File contents named by their sha256."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._made: set[str] = set()

    def path(self, sha: str) -> Path:
        return self.folder / sha[:2] / sha

    def has(self, sha: str) -> bool:
        return self.path(sha).exists()

    def put_file(self, f: FoundFile) -> tuple[str, int, int]:
        """Store the contents of ``f``; return (sha256, size, bytes newly written)."""
        try:
            with Path(f.source).open("rb") as fh:
                first = fh.read(SMALL_FILE + 1)
                if len(first) <= SMALL_FILE:
                    sha = hashlib.sha256(first).hexdigest()
                    return sha, len(first), self._put_bytes(sha, first)
                return self._put_stream(fh, first)
        except _ReadError as exc:
            raise SnapshotError(f"cannot read {f.path} in the code folder: {exc}") from None
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise SnapshotError(f"cannot read {f.path} in the code folder: {reason}") from None

    def _put_bytes(self, sha: str, data: bytes) -> int:
        final = self.path(sha)
        if final.exists():
            return 0
        with _writing(self.folder):
            self._ensure(final.parent)
            _write_atomic(final, data)
        return len(data)

    def _put_stream(self, fh: BinaryIO, first: bytes) -> tuple[str, int, int]:
        """A large file: hash it; store it only if new, copying and hashing again so the blob
        holds exactly what its name says even if the file changes meanwhile."""
        sha, size = _hash_rest(fh, first)
        if self.has(sha):
            return sha, size, 0
        fh.seek(0)
        with _writing(self.folder):
            self._ensure(self.folder)
            fd, tmp = _create_temp(self.folder)
            try:
                digest = hashlib.sha256()
                size = 0
                with os.fdopen(fd, "wb") as out:
                    for chunk in _chunks(fh):
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
                sha = digest.hexdigest()
                final = self.path(sha)
                if final.exists():
                    tmp.unlink()
                    return sha, size, 0
                self._ensure(final.parent)
                tmp.replace(final)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        return sha, size, size

    def _ensure(self, folder: Path) -> None:
        key = str(folder)
        if key not in self._made:
            folder.mkdir(parents=True, exist_ok=True)
            self._made.add(key)


class _ReadError(Exception):
    """Reading the source file failed (as opposed to writing into the store)."""


def _chunks(fh: BinaryIO) -> Iterator[bytes]:
    while True:
        try:
            chunk = fh.read(_CHUNK)
        except OSError as exc:
            raise _ReadError(exc.strerror or str(exc)) from None
        if not chunk:
            return
        yield chunk


def _hash_rest(fh: BinaryIO, first: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(first)
    size = len(first)
    for chunk in _chunks(fh):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


@contextmanager
def _writing(root: Path) -> Iterator[None]:
    """Report a failure to write into the store as a :class:`SnapshotError`."""
    try:
        yield
    except OSError as exc:
        raise SnapshotError(f"cannot write to the snapshot store {root}: {exc}") from None


def _create_temp(folder: Path) -> tuple[int, Path]:
    """A new, read-only temporary file in ``folder`` (a name no other writer can pick), open
    for writing; read-only from the start, as everything in the store stays."""
    tmp = folder / f".tmp-{os.getpid()}-{secrets.token_hex(6)}"
    return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444), tmp


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` (in an existing folder) so that it appears whole or not at all."""
    fd, tmp = _create_temp(path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _canonical(entries: list[ManifestEntry]) -> bytes:
    rows = [{"mode": e.mode, "path": e.path, "sha256": e.sha256, "size": e.size} for e in entries]
    return json.dumps(rows, sort_keys=True, separators=(",", ":")).encode("ascii")


def _store_folders(top: Path, root: Path) -> list[Path]:
    """Folders inside the code folder the walk must not enter: the store itself, and the
    workspace that holds it (``<workspace>/snapshots``), whose ``runs/`` hold working folders."""
    store = root.resolve()
    return [p for p in (store, store.parent) if p != top and p.is_relative_to(top)]


def _check_limits(top: Path, found: Scan, *, max_files: int, max_bytes: int) -> None:
    files = found.files
    total = sum(f.size for f in files)
    too_many = not found.complete or len(files) > max_files
    too_big = total > max_bytes
    if not (too_many or too_big):
        return
    if found.complete:
        holds = f"{_files(len(files))} / {_size(total)}"
    else:
        holds = f"more than {len(files)} files (stopped counting)"
    limit = f"{_files(max_files)} / {_size(max_bytes)}"
    parts = [f"code folder {top} holds {holds}, over the limit of {limit}"]
    largest = heapq.nlargest(5, files, key=lambda f: f.size)
    parts.append("largest: " + ", ".join(f"{f.path} ({_size(f.size)})" for f in largest))
    if too_many:
        per_folder = Counter(f.path.split("/", 1)[0] + "/" for f in files if "/" in f.path)
        crowded = per_folder.most_common(3)
        if crowded:
            parts.append("most files: " + ", ".join(f"{d} ({_files(n)})" for d, n in crowded))
    knobs = [k for k, over in (("files", too_many), ("bytes", too_big)) if over]
    raise_what = " / ".join(f"snapshot_max_{k}" for k in knobs)
    parts.append(f"add them to {found.ignore_file} or raise {raise_what}")
    raise SnapshotTooLarge("; ".join(parts))


def _files(n: int) -> str:
    return "1 file" if n == 1 else f"{n} files"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024**2:
        return f"{n / 1024:.1f} KB"
    if n < 1024**3:
        return f"{n / 1024**2:.1f} MB"
    return f"{n / 1024**3:.1f} GB"
