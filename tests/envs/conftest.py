"""Shared fixtures for the environment tests.

Most builds here are real uv builds that need no network: ``wheelhouse`` builds tiny wheels
(zipped by hand, as a wheel is) into a folder, and ``offline_pip`` points pip's configuration
at that folder only (``PIP_CONFIG_FILE=/dev/null``, ``PIP_NO_INDEX=1``,
``PIP_FIND_LINKS=<folder>``), which is also how those builds prove the configuration is
honoured: uv finds nothing without it. uv's cache is a per-test folder there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from envs_helpers import make_wheel


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    """A find-links folder with ``rytiny`` 1.0 and 2.0 (2.0 has the console script
    ``rytiny-hello``) and ``rydep`` 1.0 which requires ``rytiny<2``."""
    folder = tmp_path / "wheelhouse"
    make_wheel(folder, "rytiny", "1.0")
    make_wheel(folder, "rytiny", "2.0", script="rytiny-hello")
    make_wheel(folder, "rydep", "1.0", requires=("rytiny<2",))
    return folder


@pytest.fixture
def offline_pip(monkeypatch: pytest.MonkeyPatch, wheelhouse: Path) -> Path:
    """pip's configuration is only: no index, find links in ``wheelhouse``."""
    for key in list(os.environ):
        if key.startswith(("PIP_", "UV_INDEX", "UV_EXTRA_INDEX", "UV_FIND_LINKS", "UV_NO_INDEX")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheelhouse))
    # keep these throw-away wheels out of the person's uv cache
    monkeypatch.setenv("UV_CACHE_DIR", str(wheelhouse.parent / "uv-cache"))
    return wheelhouse


@pytest.fixture
def envs_root(tmp_path: Path) -> Path:
    return tmp_path / "envs"


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "code"
    folder.mkdir()
    return folder
