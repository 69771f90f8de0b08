"""Content addressing: what is stored, what is written, and what the id depends on."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from runyard.errors import SnapshotError
from runyard.snapshot import ManifestEntry, Snapshot, read_manifest, statcache, take_snapshot
from runyard.snapshot.store import SMALL_FILE

Code = Callable[[dict[str, str | bytes]], Path]
Snap = Callable[[Path], Snapshot]
Blobs = Callable[[], set[str]]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the stat cache remember files written just now (by default it waits RACY_NS)."""
    monkeypatch.setattr(statcache, "RACY_NS", 0)


def test_manifest_lists_every_file_with_hash_size_and_mode(
    code: Code, snap: Snap, store: Path
) -> None:
    folder = code({"train.py": "print('hi')\n", "pkg/a.py": "a = 1\n", "run.sh": "#!/bin/sh\n"})
    (folder / "run.sh").chmod(0o755)
    s = snap(folder)
    assert s.file_count == 3
    assert s.total_bytes == s.new_bytes == 12 + 6 + 10
    manifest_file = store / "manifests" / f"{s.id}.json"
    assert sha(manifest_file.read_bytes()) == s.id
    assert json.loads(manifest_file.read_bytes())[0] == {
        "mode": 0o644,
        "path": "pkg/a.py",
        "sha256": sha(b"a = 1\n"),
        "size": 6,
    }
    assert read_manifest(store, s.id) == [
        ManifestEntry("pkg/a.py", sha(b"a = 1\n"), 6, 0o644),
        ManifestEntry("run.sh", sha(b"#!/bin/sh\n"), 10, 0o755),
        ManifestEntry("train.py", sha(b"print('hi')\n"), 12, 0o644),
    ]
    blob = store / "blobs" / sha(b"a = 1\n")[:2] / sha(b"a = 1\n")
    assert blob.read_bytes() == b"a = 1\n"
    assert not blob.stat().st_mode & 0o222  # read-only


def test_unchanged_folder_writes_nothing_the_second_time(
    code: Code, snap: Snap, blobs: Blobs
) -> None:
    folder = code({f"m{i}.py": f"x = {i}\n" for i in range(20)})
    first = snap(folder)
    before = blobs()
    second = snap(folder)
    assert second == Snapshot(first.id, 20, first.total_bytes, new_bytes=0)
    assert blobs() == before


def test_only_the_changed_file_is_written(code: Code, snap: Snap, blobs: Blobs) -> None:
    folder = code({"a.py": "a\n", "b.py": "b\n", "c.py": "c\n"})
    first = snap(folder)
    before = blobs()
    (folder / "b.py").write_text("b changed\n")
    second = snap(folder)
    assert second.id != first.id
    assert second.new_bytes == len("b changed\n")
    assert blobs() - before == {sha(b"b changed\n")}


def test_identical_files_are_stored_once(code: Code, snap: Snap, blobs: Blobs) -> None:
    folder = code({"a.py": "same\n", "b/c.py": "same\n"})
    s = snap(folder)
    assert s.file_count == 2
    assert s.new_bytes == 5
    assert blobs() == {sha(b"same\n")}


def test_id_is_stable_across_stores_and_copies(tmp_path: Path, code: Code) -> None:
    folder = code({"a.py": "a\n", "sub/b.py": "b\n"})
    one = take_snapshot(folder, tmp_path / "s1", max_files=10, max_bytes=100)
    other = code({})
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "sub").mkdir()
    (copy / "sub" / "b.py").write_text("b\n")
    (copy / "a.py").write_text("a\n")
    two = take_snapshot(copy, tmp_path / "s2", max_files=10, max_bytes=100)
    assert one.id == two.id
    assert other == folder


@pytest.mark.parametrize("change", ["content", "path", "mode", "new file", "removed file"])
def test_id_changes_with_content_path_and_mode(code: Code, snap: Snap, change: str) -> None:
    folder = code({"a.py": "a\n", "b.py": "b\n"})
    before = snap(folder).id
    if change == "content":
        (folder / "a.py").write_text("A\n")
    elif change == "path":
        (folder / "a.py").rename(folder / "c.py")
    elif change == "mode":
        (folder / "a.py").chmod(0o755)
    elif change == "new file":
        (folder / "empty.py").write_text("")
    else:
        (folder / "b.py").unlink()
    assert snap(folder).id != before


@pytest.mark.usefixtures("no_racy_window")
def test_stat_cache_vouches_for_unchanged_files(code: Code, snap: Snap, store: Path) -> None:
    folder = code({"a.py": "a\n", "b.py": "b\n"})
    first = snap(folder)
    caches = list((store / "statcache").glob("*.json"))
    assert len(caches) == 1
    rows = json.loads(caches[0].read_bytes())
    assert {k: v[-1] for k, v in rows.items()} == {"a.py": sha(b"a\n"), "b.py": sha(b"b\n")}
    # Proof that a vouched-for file is not read again: tamper with what the cache says.
    rows["a.py"][-1] = sha(b"b\n")
    caches[0].write_text(json.dumps(rows))
    assert read_manifest(store, snap(folder).id)[0].sha256 == sha(b"b\n")
    # A new inode is not vouched for: the file is read (and here reading fails).
    (folder / "a.py").unlink()
    (folder / "a.py").symlink_to("/proc/self/mem")
    with pytest.raises(SnapshotError, match=r"cannot read a\.py"):
        snap(folder)
    assert first.file_count == 2


@pytest.mark.usefixtures("no_racy_window")
def test_stat_cache_notices_an_edit_that_keeps_size_and_mtime(
    code: Code, snap: Snap, store: Path
) -> None:
    folder = code({"a.py": "one\n"})
    first = snap(folder)
    path = folder / "a.py"
    st = path.stat()
    time.sleep(0.05)  # past the file clock's tick (the cache's RACY_NS guards this in real use)
    with path.open("r+") as fh:  # same inode, same size
        fh.write("two\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime
    second = snap(folder)
    assert second.id != first.id
    assert read_manifest(store, second.id)[0].sha256 == sha(b"two\n")


def test_fresh_files_are_not_cached(code: Code, snap: Snap, store: Path) -> None:
    folder = code({"a.py": "a\n"})  # written just now: within RACY_NS
    assert statcache.RACY_NS >= 1_000_000_000
    snap(folder)
    assert not list((store / "statcache").glob("*.json"))


@pytest.mark.usefixtures("no_racy_window")
def test_a_missing_blob_is_written_again(code: Code, snap: Snap, store: Path) -> None:
    folder = code({"a.py": "a\n"})
    snap(folder)
    blob = store / "blobs" / sha(b"a\n")[:2] / sha(b"a\n")
    blob.unlink()
    again = snap(folder)
    assert again.new_bytes == 2
    assert blob.read_bytes() == b"a\n"


def test_large_files_are_streamed(code: Code, snap: Snap, store: Path) -> None:
    data = os.urandom(SMALL_FILE + 12345)
    folder = code({"weights.bin": data, "train.py": ""})
    s = snap(folder)
    assert s.new_bytes == len(data)
    entry = read_manifest(store, s.id)[1]
    assert (entry.path, entry.sha256, entry.size) == ("weights.bin", sha(data), len(data))
    assert (store / "blobs" / entry.sha256[:2] / entry.sha256).read_bytes() == data
    assert snap(folder).new_bytes == 0
    leftovers = [p for p in (store / "blobs").rglob(".tmp-*")]
    assert leftovers == []


def test_unreadable_file_is_named(code: Code, snap: Snap, store: Path) -> None:
    folder = code({"ok.py": ""})
    (folder / "secret.py").symlink_to("/proc/self/mem")  # open works, read fails: EIO
    with pytest.raises(SnapshotError, match=r"cannot read secret\.py in the code folder"):
        snap(folder)
    assert not (store / "manifests").exists()


def test_missing_code_folder(tmp_path: Path, snap: Snap) -> None:
    with pytest.raises(SnapshotError, match="does not exist"):
        snap(tmp_path / "nope")


def test_empty_folder_is_a_valid_snapshot(code: Code, snap: Snap, store: Path) -> None:
    s = snap(code({}))
    assert (s.file_count, s.total_bytes, s.new_bytes) == (0, 0, 0)
    assert read_manifest(store, s.id) == []
