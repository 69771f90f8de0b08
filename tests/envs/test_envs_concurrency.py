"""Runs that need the same new environment at once build it once; the others wait and reuse."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from runyard.envs import (
    EnvironmentBuildError,
    content_hash,
    current_interpreter,
    list_entries,
    materialize,
)
from runyard.envs.cache import build_lock
from runyard.spec.job import EnvironmentSpec

WORKER = """
import json, sys, time
from pathlib import Path
from runyard.envs import materialize
from runyard.spec.job import EnvironmentSpec

root, ready, go, slow = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
states = []

def status(line):
    states.append(line)
    if slow == "1" and line.startswith("building"):
        (root.parent / "building").touch()  # tell the test, then take our time
        time.sleep(1.0)

ready.touch()
while not go.exists():
    time.sleep(0.001)
env = materialize(EnvironmentSpec(pip=("rytiny==1.0",)), envs_root=root, status=status)
print(json.dumps({"cached": env.cached, "hash": env.hash, "states": states}))
"""


def wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.005)


def start_workers(
    tmp_path: Path, envs_root: Path, n: int, *, slow: bool
) -> list[subprocess.Popen[str]]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    go = tmp_path / "go"
    procs = []
    for i in range(n):
        ready = tmp_path / f"ready-{i}"
        procs.append(
            subprocess.Popen(
                [sys.executable, str(script), str(envs_root), str(ready), str(go), str(int(slow))],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for i in range(n):
        wait_for(tmp_path / f"ready-{i}")
    go.touch()  # all start materializing at the same moment
    return procs


def results(procs: list[subprocess.Popen[str]]) -> list[dict[str, object]]:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
        out.append(json.loads(stdout))
    return out


def test_processes_racing_for_a_new_environment_build_it_once(
    offline_pip: Path, envs_root: Path, tmp_path: Path
) -> None:
    found = results(start_workers(tmp_path, envs_root, 4, slow=False))
    assert len({r["hash"] for r in found}) == 1
    builders = [r for r in found if not r["cached"]]
    assert len(builders) == 1
    short = str(found[0]["hash"])[:12]
    for r in found:
        if r["cached"]:  # either waited for the build or came after it
            assert r["states"] in ([], [f"waiting for another build of environment {short}"])
    assert [p.name for p in envs_root.iterdir() if not p.name.startswith(".")] == [found[0]["hash"]]


def test_a_waiter_says_so_then_reuses_the_build(
    offline_pip: Path, envs_root: Path, tmp_path: Path
) -> None:
    (builder,) = start_workers(tmp_path, envs_root, 1, slow=True)
    wait_for(tmp_path / "building")  # the other process holds the build lock now
    states: list[str] = []
    env = materialize(EnvironmentSpec(pip=("rytiny==1.0",)), envs_root=envs_root,
                      status=states.append)  # fmt: skip
    (built,) = results([builder])
    assert not built["cached"]
    assert env.cached and env.hash == built["hash"]
    assert env.hash is not None
    assert states == [f"waiting for another build of environment {env.hash[:12]}"]


def test_a_wait_for_another_build_stops_when_canceled(offline_pip: Path, envs_root: Path) -> None:
    spec = EnvironmentSpec(pip=("rytiny==1.0",))
    digest = content_hash(spec, python=current_interpreter())
    cancel = threading.Event()
    states: list[str] = []
    with build_lock(envs_root, digest, on_wait=lambda: None):  # another build holds it
        timer = threading.Timer(0.3, cancel.set)
        timer.start()
        started = time.monotonic()
        with pytest.raises(EnvironmentBuildError, match=r"waiting for .* canceled"):
            materialize(spec, envs_root=envs_root, status=states.append, cancel=cancel)
        assert time.monotonic() - started < 5
    assert states == [f"waiting for another build of environment {digest[:12]}"]
    assert list_entries(envs_root) == []
