"""Choosing the interpreter for ``python:`` without downloading, and without a subprocess when
the answer is already known."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runyard.envs import current_interpreter, select_interpreter
from runyard.envs.interpreter import describe, installed_interpreters, python_specifier
from runyard.errors import SpecError


@pytest.fixture
def no_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything starts a process."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"unexpected subprocess: {args[0] if args else kwargs}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(subprocess, "run", refuse)


@pytest.mark.parametrize(
    ("text", "spec"),
    [("3.11", "==3.11.*"), ("3", "==3.*"), ("3.11.4", "==3.11.4"), (">=3.10", ">=3.10"),
     (">=3.10, <3.13", "<3.13,>=3.10")],
)  # fmt: skip
def test_python_field_forms(text: str, spec: str) -> None:
    assert str(python_specifier(text)) == spec


def test_current_interpreter_is_used_without_a_subprocess(no_subprocess: None) -> None:
    here = current_interpreter()
    assert here.path == Path(sys.executable)
    assert here.version == platform.python_version()
    assert select_interpreter(None) is here
    major_minor = ".".join(platform.python_version_tuple()[:2])
    assert select_interpreter(major_minor) is here
    assert select_interpreter(">=3.8") is here


def test_no_interpreter_fits_is_one_clear_line() -> None:
    with pytest.raises(SpecError) as err:
        select_interpreter("==3.99")
    message = str(err.value)
    assert message.startswith("environment.python: no interpreter satisfies '==3.99' (found ")
    assert f"{platform.python_version()} at " in message
    assert "\n" not in message


def test_every_interpreter_uv_finds_can_be_chosen_and_is_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_file = tmp_path / "interpreters.json"
    found = installed_interpreters()
    # uv finds this interpreter's version (from a virtual environment it may list it only
    # through other paths, such as pyenv's shims)
    assert platform.python_version() in {v for v, _ in found}
    for version, path in found:
        info = select_interpreter(f"=={version}", cache_file=cache_file)
        assert info.version == version
        if version == platform.python_version():
            assert info is current_interpreter()
        else:
            assert info.path == Path(path)
    others = [(v, p) for v, p in found if v != platform.python_version()]
    remembered = json.loads(cache_file.read_text()) if others else {}
    assert len(remembered) == len({v for v, _ in others})
    # remembered answers need no subprocess
    monkeypatch.setattr(subprocess, "run", None)
    for version, _ in others:
        assert select_interpreter(f"=={version}", cache_file=cache_file).version == version


def test_describe_matches_the_in_process_description() -> None:
    assert describe(Path(sys.executable)) == current_interpreter()
