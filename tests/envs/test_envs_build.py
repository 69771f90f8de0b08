"""Real builds with uv: build once, reuse, isolate, fail cleanly, and honour pip's sources.

Unless marked, these build from the local ``wheelhouse`` with no index (``offline_pip``).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from envs_helpers import make_wheel

from runyard.envs import (
    Environment,
    EnvironmentBuildError,
    env_vars_for,
    list_entries,
    materialize,
)
from runyard.envs.build import _uv_cache
from runyard.envs.cache import MARKER, UV_CACHE
from runyard.envs.interpreter import installed_interpreters
from runyard.spec.job import EnvironmentSpec


def run_in(env: Environment, code: str) -> subprocess.CompletedProcess[str]:
    """``python -c code`` as a run in ``env`` would start it: ``python`` found on ``PATH``."""
    return subprocess.run(
        ["python", "-c", code], env=env_vars_for(env), capture_output=True, text=True, check=False
    )


def cache_contents(root: Path) -> set[str]:
    return {p.name for p in root.iterdir()} - {".locks", ".interpreters.json", UV_CACHE}


def test_build_then_cache_hit(offline_pip: Path, envs_root: Path) -> None:
    logs: list[str] = []
    states: list[str] = []
    spec = EnvironmentSpec(pip=("rytiny==1.0",))
    built = materialize(spec, envs_root=envs_root, log=logs.append, status=states.append)
    assert not built.cached and built.build_seconds is not None
    assert built.hash is not None and built.path == envs_root / built.hash
    assert built.python == built.path / "bin" / "python" and built.python.exists()
    assert built.lock == ("rytiny==1.0",)
    assert any(line.startswith("$ uv venv ") for line in logs)
    assert " + rytiny==1.0" in logs
    assert states[0].startswith(f"building environment {built.hash[:12]} (Python ")
    assert states[-1].startswith(f"built environment {built.hash[:12]} in ")
    record = json.loads((built.path / MARKER).read_text())
    assert record["hash"] == built.hash
    assert record["lock"] == ["rytiny==1.0"]
    assert record["definition"]["requirements"]["requirements"] == ["rytiny==1.0"]
    assert record["python"]["version"] and record["build_seconds"] >= 0 and record["built_at"]
    assert cache_contents(envs_root) == {built.hash}

    states.clear()
    again = materialize(spec, envs_root=envs_root, status=states.append)
    assert again.cached and again.build_seconds is None
    assert (again.hash, again.path, again.lock) == (built.hash, built.path, built.lock)
    assert states == []


def test_cache_hit_starts_no_process(
    offline_pip: Path, envs_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = EnvironmentSpec(pip=("rytiny==1.0",))
    major_minor = ".".join(map(str, sys.version_info[:2]))
    with_python = EnvironmentSpec(python=f">={major_minor}", pip=("rytiny==1.0",))
    first = materialize(spec, envs_root=envs_root)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a cache hit started a process")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(subprocess, "run", refuse)
    assert materialize(spec, envs_root=envs_root).cached
    assert materialize(with_python, envs_root=envs_root).hash == first.hash


def test_variables_do_not_rebuild_but_reach_the_run(offline_pip: Path, envs_root: Path) -> None:
    a = materialize(EnvironmentSpec(pip=("rytiny",), env_vars={"WHO": "a"}), envs_root=envs_root)
    b = materialize(EnvironmentSpec(pip=("rytiny",), env_vars={"WHO": "b"}), envs_root=envs_root)
    assert b.cached and a.hash == b.hash
    assert run_in(b, "import os; print(os.environ['WHO'])").stdout == "b\n"


def test_runs_see_the_environments_own_packages_only(offline_pip: Path, envs_root: Path) -> None:
    env = materialize(EnvironmentSpec(pip=("rydep",)), envs_root=envs_root)
    assert env.lock == ("rydep==1.0", "rytiny==1.0")  # rydep requires rytiny<2
    done = run_in(env, "import sys, rytiny; print(rytiny.__version__, sys.prefix)")
    assert done.stdout.split() == ["1.0", str(env.path)]
    # runyard's own packages (yaml here) are not visible: the environment is isolated
    assert "ModuleNotFoundError" in run_in(env, "import yaml").stderr
    variables = env_vars_for(env, {"PATH": "/usr/bin", "PYTHONHOME": "/x"})
    assert variables == {"PATH": f"{env.path}/bin:/usr/bin", "VIRTUAL_ENV": str(env.path)}


def test_inherit_adds_the_current_interpreters_packages_below_its_own(
    offline_pip: Path, envs_root: Path
) -> None:
    env = materialize(EnvironmentSpec(pip=("rytiny==2.0",), inherit=True), envs_root=envs_root)
    done = run_in(env, "import yaml, rytiny; print(rytiny.__version__)")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "2.0\n"
    isolated = materialize(EnvironmentSpec(pip=("rytiny==2.0",)), envs_root=envs_root)
    assert isolated.hash != env.hash


def test_console_scripts_work_after_the_move_into_the_cache(
    offline_pip: Path, envs_root: Path
) -> None:
    env = materialize(EnvironmentSpec(pip=("rytiny==2.0",)), envs_root=envs_root)
    done = subprocess.run(
        ["rytiny-hello"], env=env_vars_for(env), capture_output=True, text=True, check=False
    )
    assert done.stdout == "rytiny 2.0\n", done.stderr


def test_requirements_file_relative_to_the_code_folder(
    offline_pip: Path, envs_root: Path, code_dir: Path
) -> None:
    (code_dir / "requirements.txt").write_text("rytiny==2.0\n")
    env = materialize(
        EnvironmentSpec(requirements="requirements.txt"), envs_root=envs_root, base_dir=code_dir
    )
    assert env.lock == ("rytiny==2.0",)
    assert (env.path / "runyard-requirements.txt").read_text() == "rytiny==2.0\n"


def test_unresolvable_package_fails_with_uvs_message_and_caches_nothing(
    offline_pip: Path, envs_root: Path
) -> None:
    logs: list[str] = []
    spec = EnvironmentSpec(pip=("rytiny", "this-package-does-not-exist-runyard==1.0"))
    with pytest.raises(EnvironmentBuildError) as err:
        materialize(spec, envs_root=envs_root, log=logs.append)
    message = str(err.value)
    assert message.startswith("installing the packages of environment ")
    assert "failed (uv exit 1):\nerror:" in message or "failed (uv exit 2):\nerror:" in message
    assert "this-package-does-not-exist-runyard" in err.value.output
    assert err.value.output.splitlines()[0].startswith("error:")
    assert err.value.output.splitlines()[0] in logs  # the log has it all too
    assert cache_contents(envs_root) == set()


def test_find_links_from_pip_configuration_is_what_finds_the_wheel(
    offline_pip: Path, envs_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PIP_FIND_LINKS")
    with pytest.raises(EnvironmentBuildError, match="rytiny"):
        materialize(EnvironmentSpec(pip=("rytiny==1.0",)), envs_root=envs_root)
    config = offline_pip.parent / "pip.conf"
    config.write_text(f"[global]\nno-index = true\nfind-links = {offline_pip}\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    monkeypatch.delenv("PIP_NO_INDEX")
    env = materialize(EnvironmentSpec(pip=("rytiny==1.0",)), envs_root=envs_root)
    assert env.lock == ("rytiny==1.0",)


def test_a_later_build_after_a_failure_works(offline_pip: Path, envs_root: Path) -> None:
    spec = EnvironmentSpec(pip=("rytiny==9.9",))
    with pytest.raises(EnvironmentBuildError):
        materialize(spec, envs_root=envs_root)
    make_wheel(offline_pip, "rytiny", "9.9")  # the package is published meanwhile
    env = materialize(spec, envs_root=envs_root)
    assert not env.cached and env.lock == ("rytiny==9.9",)


def test_leftover_of_a_killed_build_is_removed_by_the_next_build(
    offline_pip: Path, envs_root: Path
) -> None:
    spec = EnvironmentSpec(pip=("rytiny==1.0",))
    env = materialize(spec, envs_root=envs_root)
    assert env.hash is not None
    # a build killed half-way: a .build folder, and the entry not there
    leftover = envs_root / f".build-{env.hash[:16]}-99999-deadbeef"
    env.path.rename(leftover)
    rebuilt = materialize(spec, envs_root=envs_root)
    assert not rebuilt.cached
    assert cache_contents(envs_root) == {env.hash}


def test_entry_whose_interpreter_is_gone_is_rebuilt(offline_pip: Path, envs_root: Path) -> None:
    spec = EnvironmentSpec(pip=("rytiny==1.0",))
    env = materialize(spec, envs_root=envs_root)
    env.python.unlink()  # as if the base interpreter had been uninstalled
    again = materialize(spec, envs_root=envs_root)
    assert not again.cached and again.python.exists()
    assert cache_contents(envs_root) == {env.hash}


def test_ambient_environment_builds_nothing(envs_root: Path) -> None:
    env = materialize(EnvironmentSpec(env_vars={"OMP_NUM_THREADS": "1"}), envs_root=envs_root)
    assert env.hash is None and env.cached
    assert env.python == Path(sys.executable)
    assert not envs_root.exists()
    assert env.packages is None  # not computed until asked
    assert any(line.startswith("pyyaml==") for line in env.lock)
    variables = env_vars_for(env, {"PATH": "/usr/bin"})
    assert variables["PATH"] == f"{Path(sys.executable).parent}:/usr/bin"
    assert variables["OMP_NUM_THREADS"] == "1"


def test_uv_cache_stays_on_the_cache_filesystem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UV_CACHE_DIR", raising=False)
    monkeypatch.delenv("UV_NO_CACHE", raising=False)
    tmp_path.mkdir(exist_ok=True)
    default = subprocess.run(["uv", "cache", "dir"], capture_output=True, text=True).stdout
    same_fs = _device(Path(default.strip())) == os.stat(tmp_path).st_dev
    expected = {} if same_fs else {"UV_CACHE_DIR": str(tmp_path / UV_CACHE)}
    assert _uv_cache(tmp_path) == expected
    monkeypatch.setenv("UV_CACHE_DIR", "/somewhere/chosen")
    assert _uv_cache(tmp_path) == {}  # the person's choice stands


def _device(path: Path) -> int:
    while not path.exists():
        path = path.parent
    return path.stat().st_dev


@pytest.mark.slow
def test_pinned_version_differs_from_the_ambient_one(envs_root: Path) -> None:
    """``packaging==23.2`` from the real package sources, while runyard runs on a newer one."""
    import packaging

    assert packaging.__version__ != "23.2"
    env = materialize(EnvironmentSpec(pip=("packaging==23.2",)), envs_root=envs_root)
    assert "packaging==23.2" in env.lock
    assert run_in(env, "import packaging; print(packaging.__version__)").stdout == "23.2\n"


@pytest.mark.slow
def test_unresolvable_package_on_the_real_index(envs_root: Path) -> None:
    with pytest.raises(EnvironmentBuildError) as err:
        materialize(
            EnvironmentSpec(pip=("this-package-does-not-exist-runyard==1.0",)),
            envs_root=envs_root,
        )
    assert "this-package-does-not-exist-runyard" in err.value.output
    assert cache_contents(envs_root) == set()


@pytest.mark.slow
@pytest.mark.torch
def test_torch_resolves_through_the_configured_sources(tmp_path: Path) -> None:
    """On these machines ``torch==2.13.0`` comes from pip's find-links folder: with the
    sources runyard hands uv, a dry run resolves it (nothing is installed)."""
    from runyard.envs import read_pip_config

    venv = tmp_path / "venv"
    subprocess.run(["uv", "venv", "-q", str(venv), "--python", sys.executable], check=True)
    done = subprocess.run(
        ["uv", "pip", "install", "--dry-run", "--python", str(venv / "bin" / "python"),
         "torch==2.13.0", *read_pip_config().uv_args()],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert " + torch==2.13.0" in done.stderr


def test_a_python_field_alone_that_runyards_interpreter_satisfies_builds_nothing(
    envs_root: Path,
) -> None:
    major_minor = ".".join(map(str, sys.version_info[:2]))
    env = materialize(EnvironmentSpec(python=major_minor), envs_root=envs_root)
    assert env.hash is None and env.python == Path(sys.executable)
    assert not envs_root.exists()


def test_environments_build_on_the_interpreter_their_python_field_selects(
    offline_pip: Path, envs_root: Path
) -> None:
    """Every interpreter uv finds here (runyard's own included) can carry an environment."""
    found = {version for version, _ in installed_interpreters()}
    assert platform.python_version() in found
    for version in sorted(found):
        env = materialize(
            EnvironmentSpec(python=f"=={version}", pip=("rytiny==1.0",)), envs_root=envs_root
        )
        done = run_in(env, "import platform, rytiny; print(platform.python_version())")
        assert done.stdout == f"{version}\n", done.stderr
    assert len(list_entries(envs_root)) == len(found)  # one entry per interpreter version


def test_credentials_stay_out_of_the_cache_and_the_log(
    offline_pip: Path, envs_root: Path, code_dir: Path
) -> None:
    (code_dir / "requirements.txt").write_text(
        "--extra-index-url https://alice:s3cret@mirror.invalid/simple\nrytiny==1.0\n"
    )
    logs: list[str] = []
    env = materialize(
        EnvironmentSpec(requirements="requirements.txt"),
        envs_root=envs_root,
        base_dir=code_dir,
        log=logs.append,
    )
    assert env.lock == ("rytiny==1.0",)
    assert any("https://***@mirror.invalid/simple" in line for line in logs)
    assert not any("s3cret" in line for line in logs)
    for path in env.path.glob("runyard-*"):
        assert "s3cret" not in path.read_text()
