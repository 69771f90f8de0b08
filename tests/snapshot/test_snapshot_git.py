"""Git information about a code folder, from a real git in real repositories."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from runyard.snapshot import GitInfo, git_info


@pytest.fixture(autouse=True)
def git_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A git that ignores the person's own configuration, can commit, and never looks for
    a repository above the test's folder."""
    for key, value in {
        "GIT_CEILING_DIRECTORIES": str(tmp_path.parent),
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }.items():
        monkeypatch.setenv(key, value)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository on branch ``main`` with one commit: train.py and a .gitignore."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "train.py").write_text("lr = 0.1\n")
    (path / ".gitignore").write_text("*.log\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "first")
    return path


def test_clean_repository(repo: Path) -> None:
    info = git_info(repo)
    assert info == GitInfo(
        commit=git(repo, "rev-parse", "HEAD"), branch="main", dirty=False, remote=None, diff=""
    )
    assert info.to_record() == {
        "commit": git(repo, "rev-parse", "HEAD"),
        "branch": "main",
        "dirty": False,
        "remote": None,
    }


def test_modified_file_makes_it_dirty_with_its_diff(repo: Path) -> None:
    (repo / "train.py").write_text("lr = 0.2\n")
    info = git_info(repo)
    assert info is not None
    assert info.dirty
    assert "-lr = 0.1\n+lr = 0.2\n" in info.diff
    assert "diff" not in info.to_record()


def test_staged_changes_are_in_the_diff(repo: Path) -> None:
    (repo / "model.py").write_text("class Net: ...\n")
    git(repo, "add", "model.py")
    info = git_info(repo)
    assert info is not None
    assert info.dirty
    assert "+++ b/model.py" in info.diff


def test_untracked_files_make_it_dirty_and_are_listed(repo: Path) -> None:
    (repo / "notes.py").write_text("")
    (repo / "ignored.log").write_text("")
    info = git_info(repo)
    assert info is not None
    assert info.dirty
    assert info.diff == "# untracked: notes.py\n"


def test_ignored_files_keep_it_clean(repo: Path) -> None:
    (repo / "run.log").write_text("")
    info = git_info(repo)
    assert info is not None
    assert not info.dirty


def test_the_diff_applies_to_the_commit(repo: Path, tmp_path: Path) -> None:
    (repo / "train.py").write_text("lr = 0.3\nepochs = 2\n")
    (repo / "new.py").write_text("")
    info = git_info(repo)
    assert info is not None
    (tmp_path / "change.diff").write_text(info.diff)
    git(repo, "stash", "-q", "--include-untracked")
    git(repo, "apply", str(tmp_path / "change.diff"))
    assert (repo / "train.py").read_text() == "lr = 0.3\nepochs = 2\n"


def test_only_changes_inside_the_code_folder_count(repo: Path) -> None:
    (repo / "src").mkdir()
    (repo / "src" / "model.py").write_text("a = 1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "src")
    (repo / "train.py").write_text("changed outside src\n")
    (repo / "stray.py").write_text("")
    info = git_info(repo / "src")
    assert info is not None
    assert (info.dirty, info.diff) == (False, "")
    (repo / "src" / "model.py").write_text("a = 2\n")
    info = git_info(repo / "src")
    assert info is not None
    assert info.dirty
    assert "+++ b/src/model.py" in info.diff
    assert "train.py" not in info.diff


def test_detached_head_has_no_branch(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    info = git_info(repo)
    assert info is not None
    assert info.branch is None
    assert info.commit == git(repo, "rev-parse", "HEAD")


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        ("https://user:ghp_secret@github.com/org/proj.git", "https://github.com/org/proj.git"),
        ("https://ghp_token@github.com/org/proj.git", "https://github.com/org/proj.git"),
        ("ssh://git@example.com:2222/org/proj.git", "ssh://git@example.com:2222/org/proj.git"),
        ("git@github.com:org/proj.git", "git@github.com:org/proj.git"),
    ],
)
def test_remote_url_without_credentials(repo: Path, configured: str, expected: str) -> None:
    git(repo, "remote", "add", "origin", configured)
    info = git_info(repo)
    assert info is not None
    assert info.remote == expected


def test_remote_of_the_upstream_branch_wins(repo: Path, tmp_path: Path) -> None:
    upstream = tmp_path / "up.git"
    git(tmp_path, "init", "-q", "--bare", str(upstream))
    git(repo, "remote", "add", "origin", "https://example.com/other.git")
    git(repo, "remote", "add", "team/fork", str(upstream))
    git(repo, "push", "-q", "-u", "team/fork", "main")
    info = git_info(repo)
    assert info is not None
    assert info.remote == str(upstream)
    assert info.dirty is False


def test_not_a_repository(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    assert git_info(tmp_path / "code") is None
    assert git_info(tmp_path / "missing") is None


def test_repository_without_commits(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("")
    assert git_info(tmp_path) is None


def test_no_git_installed(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert git_info(repo) is None
