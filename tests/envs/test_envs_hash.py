"""The content hash: same content, same hash; anything that changes the build, another."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from runyard.envs import (
    EnvironmentDefinition,
    IndexConfig,
    InterpreterInfo,
    content_hash,
    define,
    definition_digest,
)
from runyard.errors import SpecError
from runyard.spec.job import EnvironmentSpec

PY = InterpreterInfo(
    path=Path("/usr/bin/python3.11"),
    version="3.11.7",
    implementation="cpython",
    platform="linux-x86_64",
    variant="default",
    prefix=Path("/usr"),
)
NO_CONFIG = IndexConfig()


def h(env: EnvironmentSpec, *, base: Path | None = None, py: InterpreterInfo = PY,
      indexes: IndexConfig = NO_CONFIG) -> str:  # fmt: skip
    return content_hash(env, base_dir=base, python=py, indexes=indexes)


def test_hash_is_stable_and_64_hex_digits() -> None:
    env = EnvironmentSpec(pip=("numpy", "scikit-learn>=1.3"))
    assert h(env) == h(EnvironmentSpec(pip=("numpy", "scikit-learn>=1.3")))
    assert len(h(env)) == 64 and int(h(env), 16) >= 0


def test_order_spelling_and_duplicates_do_not_matter() -> None:
    a = EnvironmentSpec(pip=("torch==2.13.0", "scikit-learn>=1.3,<2", "numpy"))
    b = EnvironmentSpec(pip=("NumPy", "Scikit_Learn <2, >=1.3", "numpy", "torch == 2.13.0"))
    assert h(a) == h(b)


def test_requirements_file_counts_by_content_not_path(tmp_path: Path) -> None:
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
    (tmp_path / "one" / "requirements.txt").write_text("numpy\nsix==1.17.0\n")
    (tmp_path / "two" / "reqs-other-name.txt").write_text("# same content\nsix == 1.17.0\nnumpy\n")
    one = h(EnvironmentSpec(requirements="requirements.txt"), base=tmp_path / "one")
    two = h(EnvironmentSpec(requirements="reqs-other-name.txt"), base=tmp_path / "two")
    assert one == two
    # and the same as listing them inline
    assert one == h(EnvironmentSpec(pip=("six==1.17.0", "numpy")))
    (tmp_path / "one" / "requirements.txt").write_text("numpy\nsix==1.16.0\n")
    assert h(EnvironmentSpec(requirements="requirements.txt"), base=tmp_path / "one") != one


def test_conda_file_contributes_its_pip_section_and_python(tmp_path: Path) -> None:
    (tmp_path / "env.yml").write_text(
        "name: digits\nchannels: [conda-forge]\n"
        "dependencies:\n  - python=3.11\n  - pip\n  - pip:\n      - numpy\n      - six==1.17.0\n"
    )
    conda = EnvironmentSpec(conda_file="env.yml")
    assert h(conda, base=tmp_path) == h(EnvironmentSpec(pip=("numpy", "six==1.17.0")))
    assert define(conda, base_dir=tmp_path).python == "==3.11.*"


def test_env_vars_are_not_part_of_the_build_hash_but_of_the_definition() -> None:
    a = EnvironmentSpec(pip=("six",), env_vars={"OMP_NUM_THREADS": "1"})
    b = EnvironmentSpec(pip=("six",), env_vars={"OMP_NUM_THREADS": "8"})
    assert h(a) == h(b)
    assert definition_digest(define(a)) != definition_digest(define(b))


def test_python_specifier_counts_only_through_the_interpreter_it_selects() -> None:
    assert h(EnvironmentSpec(python=">=3.10", pip=("six",))) == h(
        EnvironmentSpec(python="3.11", pip=("six",))
    )


@pytest.mark.parametrize(
    "change",
    [
        {"pip": ("six==1.16.0",)},
        {"pip": ("six==1.17.0", "idna")},
        {"pip": ("six[extra]==1.17.0",)},
        {"pip": ("six==1.17.0; python_version<'3.12'",)},
        {"inherit": True},
    ],
)
def test_content_changes_change_the_hash(change: dict[str, object]) -> None:
    base = EnvironmentSpec(pip=("six==1.17.0",))
    assert h(dataclasses.replace(base, **change)) != h(base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "other",
    [
        dataclasses.replace(PY, version="3.11.8"),
        dataclasses.replace(PY, version="3.12.1"),
        dataclasses.replace(PY, platform="macosx-14.0-arm64"),
        dataclasses.replace(PY, variant="freethreaded"),
        dataclasses.replace(PY, implementation="pypy"),
    ],
)
def test_interpreter_changes_change_the_hash(other: InterpreterInfo) -> None:
    env = EnvironmentSpec(pip=("six",))
    assert h(env, py=other) != h(env)


def test_interpreter_path_alone_does_not_change_the_hash() -> None:
    env = EnvironmentSpec(pip=("six",))
    assert h(env, py=dataclasses.replace(PY, path=Path("/opt/py/bin/python3"))) == h(env)


def test_package_sources_change_the_hash_but_credentials_do_not() -> None:
    env = EnvironmentSpec(pip=("torch==2.13.0",))
    local = IndexConfig(find_links=("/opt/wheels",))
    assert h(env, indexes=local) != h(env)
    mirror = IndexConfig(index_url="https://alice:s3cret@mirror.example/simple")
    rotated = IndexConfig(index_url="https://alice:n3w@mirror.example/simple")
    assert h(env, indexes=mirror) == h(env, indexes=rotated) != h(env)
    # how to connect is not what to install
    assert h(env, indexes=IndexConfig(cert="/etc/ssl/ca.pem")) == h(env)


def test_requirements_file_index_options_count_like_configured_ones(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("--find-links /opt/wheels\ntorch==2.13.0\n")
    from_file = h(EnvironmentSpec(requirements="requirements.txt"), base=tmp_path)
    configured = h(
        EnvironmentSpec(pip=("torch==2.13.0",)), indexes=IndexConfig(find_links=("/opt/wheels",))
    )
    assert from_file == configured


def test_inherit_counts_whose_packages_are_inherited() -> None:
    env = EnvironmentSpec(pip=("six",), inherit=True)
    assert h(env, py=dataclasses.replace(PY, prefix=Path("/opt/venv"))) != h(env)


def test_definition_round_trips_through_a_dict(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("-c c.txt\n--pre\nsix\n")
    (tmp_path / "c.txt").write_text("six<2\n")
    d = define(
        EnvironmentSpec(python=">=3.10", requirements="requirements.txt", env_vars={"A": "1"}),
        base_dir=tmp_path,
    )
    again = EnvironmentDefinition.from_dict(d.to_dict())
    assert again == d
    assert content_hash(again, python=PY, indexes=NO_CONFIG) == h(
        EnvironmentSpec(python=">=3.10", requirements="requirements.txt"), base=tmp_path
    )


def test_bad_python_field_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match=r"^environment\.python: expected a version such as"):
        define(EnvironmentSpec(python="three point eleven"))


def test_image_with_packages_is_refused() -> None:
    with pytest.raises(SpecError, match=r"^environment\.image: an image cannot be combined"):
        define(EnvironmentSpec(image="python:3.11", pip=("six",)))


def test_a_reference_must_be_looked_up_first() -> None:
    with pytest.raises(SpecError, match="names a registered environment"):
        define(EnvironmentSpec(ref="digits-env@3"))
