"""Pruning the cache: reclaim space, never an environment in use."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runyard.envs import (
    Environment,
    EnvironmentBuildError,
    cache,
    hold,
    list_entries,
    materialize,
    prune,
)
from runyard.spec.job import EnvironmentSpec


@pytest.fixture
def two(offline_pip: Path, envs_root: Path) -> tuple[Environment, Environment]:
    a = materialize(EnvironmentSpec(pip=("rytiny==1.0",)), envs_root=envs_root)
    b = materialize(EnvironmentSpec(pip=("rytiny==2.0",)), envs_root=envs_root)
    return a, b


def age(env: Environment, seconds: float) -> None:
    """Make ``env`` look last used ``seconds`` ago."""
    t = time.time() - seconds
    os.utime(env.path / cache.MARKER, (t, t))


def entries(root: Path) -> set[str]:
    return {e.hash for e in list_entries(root)}


def test_in_use_environments_are_kept(
    two: tuple[Environment, Environment], envs_root: Path
) -> None:
    a, b = two
    result = prune(envs_root, in_use={str(a.hash)}, grace=0)
    assert result.removed == (b.hash,) and result.kept == (a.hash,)
    assert result.freed_bytes > 0
    assert entries(envs_root) == {a.hash}
    assert not b.path.exists()
    assert not [p for p in envs_root.iterdir() if p.name.startswith(".trash-")]


def test_recently_used_environments_are_kept_by_default(
    two: tuple[Environment, Environment], envs_root: Path
) -> None:
    assert prune(envs_root).removed == ()
    assert len(entries(envs_root)) == 2


def test_older_than(two: tuple[Environment, Environment], envs_root: Path) -> None:
    a, b = two
    age(a, 40 * 86400)
    age(b, 2 * 86400)
    assert prune(envs_root, older_than=30 * 86400).removed == (a.hash,)
    assert entries(envs_root) == {b.hash}
    # a cache hit counts as a use
    age(b, 40 * 86400)
    materialize(EnvironmentSpec(pip=("rytiny==2.0",)), envs_root=envs_root)
    assert prune(envs_root, older_than=30 * 86400).removed == ()


def test_held_environment_is_kept_even_when_nobody_said_so(
    two: tuple[Environment, Environment], envs_root: Path
) -> None:
    a, b = two
    with hold(a):
        assert prune(envs_root, grace=0).removed == (b.hash,)
        assert a.python.exists()
    assert prune(envs_root, grace=0).removed == (a.hash,)


def test_held_by_another_process(two: tuple[Environment, Environment], envs_root: Path,
                                 tmp_path: Path) -> None:  # fmt: skip
    a, _ = two
    code = (
        "import sys, time; from pathlib import Path; from runyard.envs import hold, Environment\n"
        f"env = Environment(hash={a.hash!r}, path=Path({str(a.path)!r}), python=Path('x'), "
        "cached=True)\n"
        "with hold(env):\n"
        f"    Path({str(tmp_path / 'holding')!r}).touch()\n"
        "    sys.stdin.read()\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "holding").exists():
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        assert a.hash not in prune(envs_root, grace=0).removed
        assert a.python.exists()
    finally:
        holder.communicate("")
    assert a.hash in prune(envs_root, grace=0).removed


def test_environment_being_built_is_kept(
    two: tuple[Environment, Environment], envs_root: Path
) -> None:
    a, b = two
    with cache.build_lock(envs_root, str(a.hash), on_wait=lambda: None):
        assert prune(envs_root, grace=0).removed == (b.hash,)


def test_leftovers_of_killed_builds_and_deletions_are_removed(
    two: tuple[Environment, Environment], envs_root: Path
) -> None:
    a, b = two
    dead_build = envs_root / f".build-{str(a.hash)[:16]}-99999-deadbeef"
    live_build = envs_root / f".build-{str(b.hash)[:16]}-99998-cafecafe"
    trash = envs_root / ".trash-0123456789abcdef-00000000"
    for folder in (dead_build, live_build, trash):
        (folder / "lib").mkdir(parents=True)
        (folder / "lib" / "f").write_bytes(b"x" * 100)
    with cache.build_lock(envs_root, str(b.hash), on_wait=lambda: None):
        result = prune(envs_root, in_use={str(a.hash), str(b.hash)})
    assert result.removed == () and result.freed_bytes == 200
    assert not dead_build.exists() and not trash.exists()
    assert live_build.exists()  # its builder still holds the lock


def test_pruned_environment_is_rebuilt_and_a_stale_hold_says_so(
    two: tuple[Environment, Environment], envs_root: Path
) -> None:
    a, _ = two
    prune(envs_root, grace=0)
    with pytest.raises(EnvironmentBuildError, match="was removed from the cache"), hold(a):
        pass
    again = materialize(EnvironmentSpec(pip=("rytiny==1.0",)), envs_root=envs_root)
    assert not again.cached and again.hash == a.hash


def test_prune_of_a_missing_cache_is_empty(tmp_path: Path) -> None:
    result = prune(tmp_path / "nothing-here")
    assert (result.removed, result.kept, result.freed_bytes) == ((), (), 0)
