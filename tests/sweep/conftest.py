"""Real sweeps on local compute: a tmp workspace with small heartbeat / kill_grace settings,
trial scripts that log synthetic curves depending on their parameters, and a teardown that
ends every run and every controller the test left behind."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sweep_helpers import CURVE, FAST, SweepWriter, clean_up

from runyard.workspace import Resources


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Resources]:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "config.yaml").write_text(yaml.safe_dump(FAST))
    resources = Resources.open(root)
    yield resources
    clean_up(resources)
    resources.close()


@pytest.fixture
def code(tmp_path: Path) -> Path:
    """A code folder holding ``curve.py`` (see :data:`CURVE`)."""
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "curve.py").write_text(textwrap.dedent(CURVE))
    return folder


@pytest.fixture
def sweep_file(tmp_path: Path, code: Path) -> SweepWriter:
    """Write a sweep YAML over ``curve.py``: ``sweep_file(search_space, command=..., **top)``."""
    count = 0

    def write(space: dict[str, Any], *, command: str = "python curve.py", **top: Any) -> Path:
        nonlocal count
        count += 1
        data = {
            "type": "sweep",
            "trial": {"code": str(code), "command": command},
            "search_space": space,
            "objective": {"primary_metric": "acc", "goal": "maximize"},
            "sampling_algorithm": {"type": "random", "seed": 7},
            "limits": {"max_total_trials": 4, "max_concurrent_trials": 2},
            **top,
        }
        path = tmp_path / f"sweep{count}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write
