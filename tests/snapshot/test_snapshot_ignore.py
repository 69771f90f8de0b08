"""Which files a snapshot takes: ignore files, the paths always left out, symbolic links."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from runyard.snapshot import IgnoreRules, Snapshot

Code = Callable[[dict[str, str | bytes]], Path]
Snap = Callable[[Path], Snapshot]
Paths = Callable[[Snapshot], list[str]]


def test_gitignore_is_used_when_there_is_no_runyardignore(
    code: Code, snap: Snap, paths: Paths
) -> None:
    folder = code(
        {
            ".gitignore": "*.log\ndata/\n",
            "train.py": "",
            "run.log": "",
            "data/a.csv": "",
            "src/data": "a file named like the ignored folder",
        }
    )
    assert paths(snap(folder)) == [".gitignore", "src/data", "train.py"]


def test_runyardignore_replaces_gitignore(code: Code, snap: Snap, paths: Paths) -> None:
    folder = code(
        {
            ".gitignore": "*.log\n",
            ".runyardignore": "*.ckpt\n",
            "run.log": "",
            "model.ckpt": "",
            "train.py": "",
        }
    )
    assert paths(snap(folder)) == [".gitignore", ".runyardignore", "run.log", "train.py"]


def test_negation_takes_a_file_back(code: Code, snap: Snap, paths: Paths) -> None:
    folder = code(
        {
            ".runyardignore": "# comment\n\n*.json\n!config.json\n",
            "a.json": "",
            "config.json": "",
            "sub/b.json": "",
            "sub/config.json": "",
        }
    )
    assert paths(snap(folder)) == [".runyardignore", "config.json", "sub/config.json"]


def test_files_below_an_ignored_folder_cannot_be_taken_back(
    code: Code, snap: Snap, paths: Paths
) -> None:
    folder = code({".gitignore": "build/\n!build/keep.txt\n", "build/keep.txt": "", "a.py": ""})
    assert paths(snap(folder)) == [".gitignore", "a.py"]


def test_nested_ignore_files_apply_below_their_folder(code: Code, snap: Snap, paths: Paths) -> None:
    folder = code(
        {
            ".gitignore": "*.tmp\n",
            "a.csv": "",
            "x.tmp": "",
            "data/.gitignore": "*.csv\n/local.txt\n!wanted.tmp\n",
            "data/b.csv": "",
            "data/local.txt": "",
            "data/deep/local.txt": "",
            "data/wanted.tmp": "",
            "data/other.tmp": "",
        }
    )
    assert paths(snap(folder)) == [
        ".gitignore",
        "a.csv",
        "data/.gitignore",
        "data/deep/local.txt",
        "data/wanted.tmp",
    ]


def test_always_ignored_paths_cannot_be_taken_back(code: Code, snap: Snap, paths: Paths) -> None:
    folder = code(
        {
            ".runyardignore": "!outputs/\n!logs/\n!*.pyc\n",
            ".git/HEAD": "ref: refs/heads/main\n",
            "pkg/__pycache__/m.cpython-311.pyc": b"\0",
            "pkg/m.py": "",
            "pkg/old.pyc": b"\0",
            "outputs/model.pt": b"\0",
            "logs/std_log.txt": "",
            # only the top-level outputs/ and logs/ belong to runs
            "pkg/outputs/x.py": "",
            "pkg/logs/y.py": "",
        }
    )
    assert paths(snap(folder)) == [
        ".runyardignore",
        "pkg/logs/y.py",
        "pkg/m.py",
        "pkg/outputs/x.py",
    ]


def test_a_store_inside_the_code_folder_is_left_out(tmp_path: Path, code: Code) -> None:
    from runyard.snapshot import read_manifest, take_snapshot

    folder = code({"train.py": ""})
    store = folder / ".runyard" / "snapshots"
    (folder / ".runyard" / "runs" / "r1" / "work").mkdir(parents=True)
    (folder / ".runyard" / "runs" / "r1" / "work" / "train.py").write_text("")
    first = take_snapshot(folder, store, max_files=10, max_bytes=1000)
    second = take_snapshot(folder, store, max_files=10, max_bytes=1000)
    assert first.id == second.id
    assert [e.path for e in read_manifest(store, first.id)] == ["train.py"]


def test_symbolic_links(tmp_path: Path, code: Code, snap: Snap, paths: Paths) -> None:
    outside = tmp_path / "outside"
    (outside / "pkg").mkdir(parents=True)
    (outside / "pkg" / "big.bin").write_text("outside")
    (outside / "shared.py").write_text("shared = 1\n")
    folder = code({"lib/util.py": "u = 1\n", "lib/sub/x.py": "", "train.py": ""})
    (folder / "shared.py").symlink_to(outside / "shared.py")  # file outside: taken as content
    (folder / "ext").symlink_to(outside / "pkg")  # folder outside: passed over
    (folder / "alias").symlink_to("lib")  # folder inside: walked
    (folder / "lib" / "loop").symlink_to("..")  # back to an enclosing folder: passed over
    (folder / "lib" / "sub" / "up").symlink_to("..")  # likewise
    (folder / "dangling.py").symlink_to(folder / "missing.py")  # passed over
    os.mkfifo(folder / "pipe")  # not a regular file: passed over
    s = snap(folder)
    assert paths(s) == [
        "alias/sub/x.py",
        "alias/util.py",
        "lib/sub/x.py",
        "lib/util.py",
        "shared.py",
        "train.py",
    ]
    assert s.total_bytes == len("u = 1\n") * 2 + len("shared = 1\n")


def test_rules_can_be_asked_directly(tmp_path: Path) -> None:
    (tmp_path / ".runyardignore").write_text("data/\n*.bin\n!keep.bin\n")
    rules = IgnoreRules.for_code_dir(tmp_path)
    assert rules.filename == ".runyardignore"
    assert rules.ignored("data", is_dir=True)
    assert not rules.ignored("data", is_dir=False)
    assert rules.ignored("x/y.bin", is_dir=False)
    assert not rules.ignored("keep.bin", is_dir=False)
    assert rules.ignored("outputs", is_dir=True)
    assert not rules.ignored("src/outputs", is_dir=True)
    assert rules.ignored("src/__pycache__", is_dir=True)
