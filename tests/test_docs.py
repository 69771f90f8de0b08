"""Every example in the README and docs/ runs: Python blocks are executed, YAML blocks are
validated as sweep specs, job specs, environments or workspace settings."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from runyard.spec import environment_from_dict, spec_from_dict
from runyard.sweep import sweep_from_dict
from runyard.workspace import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Top-level keys that make a YAML block an environment (``runyard env create -f``).
ENV_KEYS = {"python", "pip", "requirements", "conda_file", "inherit", "env_vars", "image"}
BLOCK = re.compile(r"```(python|yaml)\n(.*?)```", re.S)


def blocks(lang: str) -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        for i, m in enumerate(BLOCK.finditer(doc.read_text())):
            if m.group(1) == lang:
                out.append((f"{doc.name}#{i}", m.group(2)))
    return out


@pytest.mark.parametrize(("where", "code"), blocks("python"), ids=[w for w, _ in blocks("python")])
def test_python_examples_run(where: str, code: str, tmp_path: Path) -> None:
    env = {**os.environ, "RUNYARD_WORKSPACE": str(tmp_path / "ws")}
    env.pop("RUNYARD_EVENTS", None)
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{where} failed:\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize(("where", "text"), blocks("yaml"), ids=[w for w, _ in blocks("yaml")])
def test_yaml_examples_are_valid(where: str, text: str, tmp_path: Path) -> None:
    data = yaml.safe_load(text)
    if "search_space" in data:
        spec = sweep_from_dict(data, source=where, base_dir=tmp_path)
        assert spec.search_space
    elif "command" in data:
        spec = spec_from_dict(data, source=where, base_dir=tmp_path)
        assert spec.command
    elif ENV_KEYS & set(data):
        environment_from_dict(data, source=where)  # a SpecError names the field
    else:
        (tmp_path / "config.yaml").write_text(text)
        settings = Settings.load(tmp_path)
        assert {k: getattr(settings, k) for k in data} == data
