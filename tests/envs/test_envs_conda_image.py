"""Conda files (python and pip sections only) and container images (only with a working
engine): what is accepted and how refusals read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runyard.envs import container_command, container_runtime, define, materialize
from runyard.envs.conda import read_conda_file
from runyard.errors import SpecError
from runyard.spec.job import EnvironmentSpec


def fake_tool(folder: Path, name: str, script: str) -> None:
    """An executable ``name`` in ``folder`` running the shell ``script``."""
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


@pytest.fixture
def bare_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``PATH`` is one empty folder (fake tools go there) plus /bin for the shell."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}/bin")
    return folder


def write_env(tmp_path: Path, deps: str) -> Path:
    path = tmp_path / "env.yml"
    path.write_text(f"name: digits\nchannels:\n  - conda-forge\ndependencies:\n{deps}")
    return path


@pytest.mark.parametrize(
    ("dep", "spec"),
    [("python=3.10", "==3.10.*"), ("python==3.10.4", "==3.10.4"), ("python>=3.9,<3.12",
     "<3.12,>=3.9"), ("python 3.11", "==3.11.*"), ("conda-forge::python=3.11=h12_0", "==3.11.*")],
)  # fmt: skip
def test_python_version_forms(tmp_path: Path, dep: str, spec: str) -> None:
    assert read_conda_file(write_env(tmp_path, f"  - {dep}\n")).python == spec


def test_pip_section_is_used_and_pip_itself_ignored(tmp_path: Path) -> None:
    path = write_env(tmp_path, "  - python=3.11\n  - pip>=23\n  - pip:\n    - six==1.17.0\n")
    conda = read_conda_file(path)
    assert conda.pip == ("six==1.17.0",)
    d = define(EnvironmentSpec(conda_file="env.yml", python=">=3.10"), base_dir=tmp_path)
    assert d.python == "==3.11.*,>=3.10"  # both must hold
    assert d.requirements.requirements == ("six==1.17.0",)


def test_conda_packages_refused_without_conda(tmp_path: Path, bare_path: Path) -> None:
    write_env(tmp_path, "  - python=3.11\n  - numpy\n  - cudatoolkit=11.8\n  - pip:\n    - six\n")
    with pytest.raises(SpecError) as err:
        define(EnvironmentSpec(conda_file="env.yml"), base_dir=tmp_path)
    assert str(err.value) == (
        "environment.conda_file: env.yml lists conda packages (numpy, cudatoolkit=11.8); they "
        "need conda or micromamba, which is not installed, and runyard builds environments "
        "with uv: list them under the file's 'pip:' section if pip can install them"
    )


def test_conda_packages_refused_with_conda_installed_too(tmp_path: Path, bare_path: Path) -> None:
    fake_tool(bare_path, "micromamba", "exit 0")
    write_env(tmp_path, "  - numpy\n")
    with pytest.raises(SpecError, match=r"conda environments are not supported yet \(micromamba"):
        define(EnvironmentSpec(conda_file="env.yml"), base_dir=tmp_path)


def test_malformed_conda_file(tmp_path: Path) -> None:
    (tmp_path / "env.yml").write_text("dependencies: [python=3.11\n")
    with pytest.raises(SpecError, match=r"^environment\.conda_file: cannot read conda file"):
        define(EnvironmentSpec(conda_file="env.yml"), base_dir=tmp_path)
    with pytest.raises(SpecError, match=r"conda file .*missing\.yml' does not exist"):
        define(EnvironmentSpec(conda_file="missing.yml"), base_dir=tmp_path)


def test_image_refused_when_the_engine_does_not_answer(bare_path: Path, tmp_path: Path) -> None:
    fake_tool(
        bare_path,
        "docker",
        'echo "Server:" ; echo "Cannot connect to the Docker daemon at '
        'unix:///var/run/docker.sock. Is the docker daemon running?" >&2; exit 1',
    )
    with pytest.raises(SpecError) as err:
        materialize(EnvironmentSpec(image="python:3.11"), envs_root=tmp_path / "envs")
    assert str(err.value) == (
        "environment.image: running in a container image needs docker or podman with a working "
        "engine; 'docker info' failed: Cannot connect to the Docker daemon at "
        "unix:///var/run/docker.sock. Is the docker daemon running?"
    )
    assert not (tmp_path / "envs").exists()


def test_image_refused_when_no_runtime_is_installed(bare_path: Path) -> None:
    with pytest.raises(SpecError, match="needs docker or podman, and neither is installed"):
        container_runtime()


def test_this_machines_docker_is_checked_for_real() -> None:
    """Whatever is installed here: either an engine answers or the refusal says why."""
    try:
        runtime = container_runtime()
    except SpecError as e:
        assert str(e).startswith("environment.image: running in a container image needs")
    else:
        assert runtime.name in ("docker", "podman")


def test_image_accepted_with_a_working_engine(bare_path: Path, tmp_path: Path) -> None:
    fake_tool(bare_path, "podman", "exit 0")
    env = materialize(
        EnvironmentSpec(image="python:3.11", env_vars={"A": "1"}), envs_root=tmp_path / "envs"
    )
    assert env.image == "python:3.11"
    assert env.container_runtime == bare_path / "podman"
    assert env.hash is None and env.env_vars == {"A": "1"}


def test_container_command() -> None:
    cmd = container_command(
        Path("/usr/bin/docker"),
        "python:3.11",
        ["python", "train.py"],
        workdir=Path("/ws/runs/r1/work"),
        variables={"RUNYARD_RUN_ID": "r1", "A": "1"},
        mounts=[Path("/ws/runs/r1")],
    )
    user = ["--user", f"{os.getuid()}:{os.getgid()}"]
    assert cmd == [
        "/usr/bin/docker", "run", "--rm", "--init", "--network", "host", *user,
        "--volume", "/ws/runs/r1/work:/ws/runs/r1/work", "--volume", "/ws/runs/r1:/ws/runs/r1",
        "--workdir", "/ws/runs/r1/work", "--env", "A", "--env", "RUNYARD_RUN_ID",
        "python:3.11", "python", "train.py",
    ]  # fmt: skip
