"""Runs in environments, end to end through the real command line: real supervisors, real uv
builds from local wheels (``offline_pip``), a real workspace.

Where a build has to take a while (two runs racing for it, a cancel during it), the wheels
are served over HTTP by a local server that holds wheel downloads back."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from envs_helpers import make_wheel

from runyard.envs.cache import MARKER

Runner = Callable[..., subprocess.CompletedProcess[str]]

TRAIN = """
import os, sys
import runyard
import packaging, rytiny
print("versions", packaging.__version__, rytiny.__version__)
print("prefix", sys.prefix)
print("WHO", os.environ.get("WHO"))
try:
    import yaml
    print("yaml visible")
except ImportError:
    print("yaml not visible")
runyard.log_metric("logged", 1.0)
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "config.yaml").write_text(
        "heartbeat_interval: 0.2\nheartbeat_timeout: 5\nkill_grace: 1\n"
        "system_metrics_interval: 0\nlocal_slots: 4\n"
    )
    return ws


@pytest.fixture
def runyard(offline_pip: Path, workspace: Path, tmp_path: Path) -> Runner:
    """The real ``runyard`` command, with pip's configuration pointing at the wheelhouse."""

    def run(*args: str, cwd: Path | None = None, timeout: float = 120) -> Any:
        return subprocess.run(
            [sys.executable, "-m", "runyard", *args],
            cwd=cwd or tmp_path,
            env={**os.environ, "RUNYARD_WORKSPACE": str(workspace)},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


def job(folder: Path, environment: str, script: str = TRAIN, name: str = "job.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.py").write_text(script)
    path = folder / name
    path.write_text(f"command: python train.py\ncode: .\nenvironment: {environment}\n")
    return path


def shown(runyard: Runner, run_id: str) -> dict[str, Any]:
    res = runyard("show", run_id, "--json")
    assert res.returncode == 0, res.stderr
    data: dict[str, Any] = json.loads(res.stdout)
    return data


def wait_for(condition: Callable[[], Any], timeout: float = 60, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def entries(envs: Path) -> set[str]:
    """Complete cache entries, and leftovers of builds."""
    if not envs.is_dir():
        return set()
    return {p.name for p in envs.iterdir() if len(p.name) == 64 or p.name.startswith(".build")}


@pytest.mark.slow
def test_a_job_sees_its_own_package_versions_and_the_run_records_them(
    runyard: Runner, offline_pip: Path, tmp_path: Path, workspace: Path
) -> None:
    import packaging

    assert packaging.__version__ != "0.1"  # the ambient one
    make_wheel(offline_pip, "packaging", "0.1")
    spec = job(
        tmp_path / "code",
        "{pip: [packaging==0.1, rytiny==2.0], env_vars: {WHO: me}}",
    )
    res = runyard("run", str(spec))
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout.splitlines()
    assert "versions 0.1 2.0" in out
    assert "WHO me" in out
    assert "yaml not visible" in out  # the environment is isolated from runyard's own
    assert sum(line.startswith("[runyard] building environment ") for line in out) == 1
    assert sum(line.startswith("[runyard] built environment ") for line in out) == 1
    assert "[runyard]    + packaging==0.1" in out  # uv's own progress

    run = json.loads(runyard("ls", "--json").stdout)[0]
    data = shown(runyard, run["id"])
    digest = data["tags"]["runyard.environment.hash"]
    assert f"prefix {workspace / 'envs' / digest}" in out
    assert data["tags"]["runyard.environment.python"] == ".".join(map(str, sys.version_info[:3]))
    assert data["metrics"] == {"logged": 1.0}  # runyard's in-job API works in the environment
    paths = {a["path"] for a in json.loads(runyard("artifacts", run["id"], "--json").stdout)}
    assert {"logs/environment.txt", "logs/environment.lock.txt"} <= paths

    export = runyard("env", "export", run["id"])
    assert export.returncode == 0, export.stderr
    assert export.stdout == "packaging==0.1\nrytiny==2.0\n"
    text = runyard("show", run["id"]).stdout
    assert f"environment {digest[:12]}, Python " in text
    assert f"lock: logs/environment.lock.txt (runyard env export {run['id']})" in text

    again = runyard("run", str(spec))
    assert again.returncode == 0, again.stderr
    lines = again.stdout.splitlines()
    assert lines[0].startswith(f"[runyard] environment {digest[:12]} from the cache (Python ")
    assert not any("building" in line for line in lines)
    assert "versions 0.1 2.0" in lines


def test_an_unresolvable_package_fails_the_run_with_uvs_message_and_caches_nothing(
    runyard: Runner, tmp_path: Path, workspace: Path
) -> None:
    spec = job(tmp_path / "code", "{pip: [rytiny, runyard-no-such-package==1.0]}")
    res = runyard("run", str(spec))
    assert res.returncode == 1
    assert "Failed (environment: installing the packages of environment " in res.stderr
    assert "runyard-no-such-package" in res.stderr  # uv's own words, after the summary
    assert "[runyard] environment: installing the packages of environment " in res.stdout
    run = json.loads(runyard("ls", "--json").stdout)[0]
    assert run["status"] == "Failed"
    assert run["reason"].startswith("environment: installing the packages of environment ")
    assert "runyard-no-such-package" in run["error"]
    text = runyard("show", run["id"]).stdout
    assert "runyard-no-such-package" in text
    assert entries(workspace / "envs") == set()
    log = runyard("download", run["id"], "logs/environment.txt", "-o", str(tmp_path / "dl"))
    assert log.returncode == 0, log.stderr
    assert "runyard-no-such-package" in (tmp_path / "dl/logs/environment.txt").read_text()


@pytest.mark.slow
def test_registered_environments_are_versioned_and_used_by_reference(
    runyard: Runner, tmp_path: Path
) -> None:
    folder = tmp_path / "envdef"
    folder.mkdir()
    (folder / "requirements.txt").write_text("rytiny==1.0\n")
    (folder / "env.yaml").write_text("requirements: requirements.txt\n")
    env_file = str(folder / "env.yaml")
    assert runyard("env", "create", "tiny", "-f", env_file).stdout == "tiny@1\n"
    assert runyard("env", "create", "tiny", "-f", env_file).stdout == "tiny@1 (unchanged)\n"
    (folder / "requirements.txt").write_text("rytiny==2.0\n")
    assert runyard("env", "create", "tiny", "-f", env_file).stdout == "tiny@2\n"

    listed = json.loads(runyard("env", "ls", "--json").stdout)
    assert [(e["name"], e["version"]) for e in listed] == [("tiny", 2)]
    first = runyard("env", "show", "tiny@1").stdout
    assert "rytiny==1.0" in first and "versions" in first and "2, 1" in first

    script = "import rytiny; print('rytiny', rytiny.__version__)\n"
    for ref, version in (("tiny@1", "1.0"), ("tiny", "2.0")):
        res = runyard("run", str(job(tmp_path / ref, ref, script)))
        assert res.returncode == 0, res.stdout + res.stderr
        assert f"rytiny {version}" in res.stdout.splitlines()
        run = json.loads(runyard("ls", "--json").stdout)[0]
        assert run["tags"]["runyard.environment.ref"] == f"tiny@{version[0]}"
        assert runyard("show", run["id"]).stdout.count(f"tiny@{version[0]} (environment ") == 1

    missing = runyard("run", str(job(tmp_path / "missing", "nope@1", script)))
    assert missing.returncode == 2
    assert "error: environment nope@1 not found: nothing is registered as 'nope'" in missing.stderr
    assert len(json.loads(runyard("ls", "--json").stdout)) == 2  # nothing recorded

    (folder / "bad.yaml").write_text("pip: [rytiny]\npipp: [x]\n")
    bad = runyard("env", "create", "tiny", "-f", str(folder / "bad.yaml"))
    assert bad.returncode == 2
    assert f"error: {folder / 'bad.yaml'}: pipp: unknown field" in bad.stderr
    (folder / "gone.yaml").write_text("requirements: gone.txt\n")
    gone = runyard("env", "create", "tiny", "-f", str(folder / "gone.yaml"))
    assert gone.returncode == 2
    assert f"error: {folder / 'gone.yaml'}: requirements: " in gone.stderr


def test_env_build_materializes_ahead_of_time_with_progress(
    runyard: Runner, tmp_path: Path, workspace: Path
) -> None:
    spec = job(tmp_path / "code", "{pip: [rydep]}", "import rydep\n")
    built = runyard("env", "build", str(spec))
    assert built.returncode == 0, built.stderr
    assert "runyard: building environment " in built.stderr
    assert "  + rydep==1.0" in built.stderr
    digest = next(iter(entries(workspace / "envs")))
    assert f"environment {digest[:12]} built (Python " in built.stdout
    cached = runyard("env", "build", str(spec))
    assert f"environment {digest[:12]} from the cache" in cached.stdout
    assert cached.stderr == ""
    res = runyard("run", str(spec))
    assert res.returncode == 0, res.stderr
    assert "from the cache" in res.stdout.splitlines()[0]


@pytest.mark.slow
def test_prune_never_removes_an_environment_a_running_run_uses(
    runyard: Runner, tmp_path: Path, workspace: Path
) -> None:
    go = tmp_path / "go"
    script = "import pathlib, time\nend = time.time() + 120  # never outlives a failed test\n"
    script += f"while not pathlib.Path({str(go)!r}).exists() and time.time() < end:\n"
    script += "    time.sleep(0.05)\n"
    spec = job(tmp_path / "code", "{pip: [rytiny==1.0]}", script)
    other = job(tmp_path / "other", "{pip: [rytiny==2.0]}", script)
    assert runyard("env", "build", str(other)).returncode == 0
    submitted = runyard("submit", str(spec))
    assert submitted.returncode == 0, submitted.stderr
    run_id = submitted.stdout.strip()
    wait_for(lambda: shown(runyard, run_id)["status"] == "Running", what="Running")
    used = shown(runyard, run_id)["tags"]["runyard.environment.hash"]
    unused = next(iter(entries(workspace / "envs") - {used}))

    def age_all() -> None:  # as if neither had been used for ten days
        old = time.time() - 10 * 86400
        for digest in entries(workspace / "envs"):
            os.utime(workspace / "envs" / digest / MARKER, (old, old))

    age_all()
    res = runyard("env", "prune", "--older-than", "1d")
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"removed {unused[:12]}\n"
    assert "removed 1 environment(s)" in res.stderr and "kept 1" in res.stderr
    assert entries(workspace / "envs") == {used}

    go.touch()
    wait_for(lambda: shown(runyard, run_id)["status"] == "Completed", what="Completed")
    age_all()
    assert runyard("env", "prune").stdout == f"removed {used[:12]}\n"
    assert entries(workspace / "envs") == set()
    assert runyard("env", "export", run_id).stdout == "rytiny==1.0\n"  # the record stays


# -- builds that take a while: wheels served slowly -------------------------------------------


class _SlowWheels(http.server.SimpleHTTPRequestHandler):
    delay = 0.0
    released = threading.Event()

    def do_GET(self) -> None:
        if self.path.endswith(".whl"):
            self.released.wait(self.delay)
        super().do_GET()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def slow_wheels(offline_pip: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_SlowWheels]]:
    """The wheelhouse as an HTTP find-links page whose wheel downloads take ``delay`` seconds
    (or until ``released`` is set)."""
    handler = type("Handler", (_SlowWheels,), {"released": threading.Event()})

    def make(*args: Any, **kwargs: Any) -> _SlowWheels:
        return handler(*args, directory=str(offline_pip), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("PIP_FIND_LINKS", f"http://127.0.0.1:{server.server_address[1]}/")
    yield handler
    handler.released.set()
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_two_runs_racing_for_a_new_environment_build_it_once(
    runyard: Runner, slow_wheels: type[_SlowWheels], tmp_path: Path, workspace: Path
) -> None:
    slow_wheels.delay = 5.0  # the second run arrives while the first one builds
    script = "import rytiny\nprint(rytiny.__version__)\n"
    spec = job(tmp_path / "code", "{pip: [rytiny==2.0]}", script)
    ids = []
    for _ in range(2):
        res = runyard("submit", str(spec))
        assert res.returncode == 0, res.stderr
        ids.append(res.stdout.strip())
    runs = [wait_for(lambda i=i: _ended(runyard, i), what="the runs to end") for i in ids]
    assert [r["status"] for r in runs] == ["Completed", "Completed"], runs
    assert len({r["tags"]["runyard.environment.hash"] for r in runs}) == 1
    logs = [(workspace / "runs" / i / "work/logs/environment.txt").read_text() for i in ids]
    assert sum("[runyard] built environment" in log for log in logs) == 1
    assert sum("[runyard] waiting for another build of environment" in log for log in logs) == 1
    for i in ids:
        assert runyard("logs", i).stdout.splitlines()[-1] == "2.0"
    assert len(entries(workspace / "envs")) == 1


@pytest.mark.slow
def test_a_cancel_during_the_build_stops_uv_and_leaves_nothing(
    runyard: Runner, slow_wheels: type[_SlowWheels], tmp_path: Path, workspace: Path
) -> None:
    slow_wheels.delay = 120.0  # uv waits for the wheel until it is killed
    spec = job(tmp_path / "code", "{pip: [rytiny==1.0]}", "print('never')\n")
    run_id = runyard("submit", str(spec)).stdout.strip()
    env_log = workspace / "runs" / run_id / "work/logs/environment.txt"
    wait_for(lambda: env_log.exists() and "pip install" in env_log.read_text(), what="uv")
    uv = wait_for(lambda: _uv_installing(workspace / "envs"), what="uv to run")
    asked = time.monotonic()
    assert runyard("cancel", run_id).returncode == 0
    final = wait_for(lambda: _ended(runyard, run_id), what="the run to end")
    assert time.monotonic() - asked < 10
    assert final["status"] == "Canceled" and final["reason"] == "canceled by user"
    assert not uv.is_running() or uv.status() == psutil.STATUS_ZOMBIE
    assert entries(workspace / "envs") == set()  # neither an entry nor a half-built folder
    statuses = [h["status"] for h in final["status_history"]]
    assert statuses == ["Queued", "Preparing", "Canceled"]


def _ended(runyard: Runner, run_id: str) -> dict[str, Any] | None:
    run = shown(runyard, run_id)
    return run if run["status"] in ("Completed", "Failed", "Canceled") else None


def _uv_installing(envs: Path) -> psutil.Process | None:
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "install" in cmd and any(str(envs) in part for part in cmd):
            return proc
    return None


def test_an_interrupt_during_the_build_cancels_the_run(
    slow_wheels: type[_SlowWheels], workspace: Path
) -> None:
    """What Ctrl-C does to ``runyard run`` while its environment builds."""
    from runyard.records import RunStatus
    from runyard.spec import EnvironmentSpec, JobSpec
    from runyard.supervisor import Supervisor
    from runyard.workspace import Resources

    slow_wheels.delay = 120.0
    resources = Resources.open(workspace)
    try:
        spec = JobSpec(command=("python", "-c", "pass"),
                       environment=EnvironmentSpec(pip=("rytiny==1.0",)))  # fmt: skip
        run = resources.store.create_run(experiment="e", spec=spec.to_dict())
        supervisor = Supervisor(resources, run.id)

        def interrupt_once_uv_runs() -> None:
            wait_for(lambda: _uv_installing(workspace / "envs"), what="uv to run")
            supervisor.interrupt()

        thread = threading.Thread(target=interrupt_once_uv_runs)
        thread.start()
        final = supervisor.execute()
        thread.join()
        assert final.status is RunStatus.CANCELED
        assert final.reason == "canceled by user (interrupt)"
        assert entries(workspace / "envs") == set()
    finally:
        resources.close()
