"""Laying a snapshot out as a run's working folder: faithful, and isolated both ways."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from runyard.errors import SnapshotError
from runyard.snapshot import Snapshot, materialize, read_manifest

Code = Callable[[dict[str, str | bytes]], Path]
Snap = Callable[[Path], Snapshot]


def tree(folder: Path) -> dict[str, tuple[bytes, bool]]:
    """Every file under ``folder``: its bytes and whether it is executable."""
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes(), os.access(p, os.X_OK))
        for p in folder.rglob("*")
        if p.is_file()
    }


def test_roundtrip_restores_files_folders_and_exec_bits(
    tmp_path: Path, code: Code, snap: Snap, store: Path
) -> None:
    folder = code(
        {
            ".gitignore": "*.log\n",
            "train.py": "print('train')\n",
            "scripts/run.sh": "#!/bin/sh\necho hi\n",
            "pkg/deep/nested/m.py": "x = 1\n",
            "data.bin": bytes(range(256)),
            "empty.txt": "",
            "skipped.log": "",
        }
    )
    (folder / "scripts" / "run.sh").chmod(0o755)
    s = snap(folder)
    work = tmp_path / "runs" / "r1" / "work"
    materialize(store, s.id, work)
    expected = tree(folder)
    del expected["skipped.log"]
    assert tree(work) == expected
    assert tree(work)["scripts/run.sh"][1] is True
    assert tree(work)["train.py"][1] is False


def test_editing_the_source_afterwards_changes_nothing(
    tmp_path: Path, code: Code, snap: Snap, store: Path
) -> None:
    folder = code({"train.py": "lr = 0.1\n"})
    s = snap(folder)
    (folder / "train.py").write_text("lr = 99\n")
    (folder / "new.py").write_text("")
    materialize(store, s.id, tmp_path / "work")
    assert tree(tmp_path / "work") == {"train.py": (b"lr = 0.1\n", False)}


def test_writing_in_the_working_folder_leaves_the_store_alone(
    tmp_path: Path, code: Code, snap: Snap, store: Path
) -> None:
    folder = code({"train.py": "lr = 0.1\n"})
    s = snap(folder)
    materialize(store, s.id, tmp_path / "w1")
    (tmp_path / "w1" / "train.py").write_text("scribbled\n")
    assert (tmp_path / "w1" / "train.py").stat().st_nlink == 1  # a copy, not a link
    materialize(store, s.id, tmp_path / "w2")
    assert (tmp_path / "w2" / "train.py").read_text() == "lr = 0.1\n"
    assert read_manifest(store, s.id)[0].path == "train.py"


def test_an_existing_empty_folder_is_fine(
    tmp_path: Path, code: Code, snap: Snap, store: Path
) -> None:
    s = snap(code({"a.py": "a\n"}))
    (tmp_path / "work").mkdir()
    materialize(store, s.id, tmp_path / "work")
    assert (tmp_path / "work" / "a.py").read_text() == "a\n"


def test_a_non_empty_folder_is_refused(tmp_path: Path, code: Code, snap: Snap, store: Path) -> None:
    s = snap(code({"a.py": "a\n"}))
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "old.py").write_text("")
    with pytest.raises(SnapshotError, match="not empty"):
        materialize(store, s.id, tmp_path / "work")


@pytest.mark.parametrize("snapshot_id", ["0" * 64, "../../etc/passwd", "abc"])
def test_unknown_ids_are_refused(tmp_path: Path, store: Path, snapshot_id: str) -> None:
    with pytest.raises(SnapshotError, match="no snapshot"):
        materialize(store, snapshot_id, tmp_path / "work")
    with pytest.raises(SnapshotError, match="no snapshot"):
        read_manifest(store, snapshot_id)
    assert not (tmp_path / "work").exists()


def test_a_missing_blob_is_reported(tmp_path: Path, code: Code, snap: Snap, store: Path) -> None:
    s = snap(code({"a.py": "a\n"}))
    sha = read_manifest(store, s.id)[0].sha256
    (store / "blobs" / sha[:2] / sha).unlink()
    with pytest.raises(SnapshotError, match=r"damaged: the contents of a\.py are missing"):
        materialize(store, s.id, tmp_path / "work")


def test_a_tampered_manifest_is_refused(
    tmp_path: Path, code: Code, snap: Snap, store: Path
) -> None:
    s = snap(code({"a.py": "a\n"}))
    manifest = store / "manifests" / f"{s.id}.json"
    manifest.chmod(0o644)
    manifest.write_text(manifest.read_text().replace("a.py", "../escaped.py"))
    with pytest.raises(SnapshotError, match="damaged"):
        materialize(store, s.id, tmp_path / "work")
    assert not (tmp_path / "escaped.py").exists()
