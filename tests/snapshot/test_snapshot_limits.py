"""Size and file-count limits: checked before anything is written, one line naming culprits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from runyard.errors import SnapshotError, SnapshotTooLarge, UserError
from runyard.snapshot import take_snapshot

Code = Callable[[dict[str, str | bytes]], Path]
Blobs = Callable[[], set[str]]
MB = 1024 * 1024


def test_too_many_bytes_lists_the_five_largest_and_writes_nothing(code: Code, store: Path) -> None:
    sizes = {"data/big.bin": 7, "data/b.bin": 5, "c.bin": 4, "d/e/f.bin": 3, "g.bin": 2, "h.py": 1}
    folder = code({path: b"x" * (n * MB // 10) for path, n in sizes.items()})
    with pytest.raises(SnapshotTooLarge) as err:
        take_snapshot(folder, store, max_files=100, max_bytes=MB)
    message = str(err.value)
    assert "\n" not in message
    assert message == (
        f"code folder {folder.resolve()} holds 6 files / 2.2 MB, "
        "over the limit of 100 files / 1.0 MB; "
        "largest: data/big.bin (716.8 KB), data/b.bin (512.0 KB), c.bin (409.6 KB), "
        "d/e/f.bin (307.2 KB), g.bin (204.8 KB); "
        "add them to .gitignore or raise snapshot_max_bytes"
    )
    assert not store.exists()
    assert isinstance(err.value, SnapshotError)
    assert isinstance(err.value, UserError)


def test_too_many_files_names_the_crowded_folders(code: Code, store: Path) -> None:
    files: dict[str, str | bytes] = {f"venv/lib/m{i}.py": "" for i in range(8)}
    files.update({f"data/{i}.csv": "1" for i in range(3)})
    files.update({".runyardignore": "*.ckpt\n", "train.py": "print()\n"})
    folder = code(files)
    with pytest.raises(SnapshotTooLarge) as err:
        take_snapshot(folder, store, max_files=10, max_bytes=MB)
    message = str(err.value)
    assert message.startswith(
        f"code folder {folder.resolve()} holds 13 files / 18 B, "
        "over the limit of 10 files / 1.0 MB;"
    )
    assert "; most files: venv/ (8 files), data/ (3 files);" in message
    assert message.endswith("add them to .runyardignore or raise snapshot_max_files")


def test_both_limits_name_both_settings(code: Code, store: Path) -> None:
    folder = code({"a": "12345", "b": "12345"})
    with pytest.raises(SnapshotTooLarge, match=r"raise snapshot_max_files / snapshot_max_bytes$"):
        take_snapshot(folder, store, max_files=1, max_bytes=6)


def test_exactly_at_the_limits_is_allowed(code: Code, store: Path) -> None:
    folder = code({"a": "12345", "b": "12345"})
    s = take_snapshot(folder, store, max_files=2, max_bytes=10)
    assert (s.file_count, s.total_bytes) == (2, 10)


def test_an_existing_store_is_left_as_it_was(code: Code, store: Path, blobs: Blobs) -> None:
    folder = code({"a.py": "a\n"})
    take_snapshot(folder, store, max_files=10, max_bytes=MB)
    before = blobs()
    manifests = sorted((store / "manifests").iterdir())
    (folder / "huge.bin").write_bytes(b"\0" * (2 * MB))
    with pytest.raises(SnapshotTooLarge, match=r"largest: huge\.bin \(2\.0 MB\), a\.py \(2 B\)"):
        take_snapshot(folder, store, max_files=10, max_bytes=MB)
    assert blobs() == before
    assert sorted((store / "manifests").iterdir()) == manifests


def test_ignored_files_do_not_count(code: Code, store: Path) -> None:
    folder = code({".gitignore": "*.bin\n", "big.bin": b"\0" * (2 * MB), "a.py": ""})
    s = take_snapshot(folder, store, max_files=10, max_bytes=MB)
    assert s.file_count == 2


def test_a_huge_folder_fails_without_walking_all_of_it(code: Code, store: Path) -> None:
    folder = code({f"d{i // 50}/{i}.txt": "" for i in range(300)})
    with pytest.raises(SnapshotTooLarge, match=r"holds more than 20 files \(stopped counting\)"):
        take_snapshot(folder, store, max_files=2, max_bytes=MB)
