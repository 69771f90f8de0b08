"""Real workspaces (SQLite under tmp_path), real snapshots, real processes."""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sv_helpers import FAST, RunMaker, Waiter, clean_up

from runyard.records import Run
from runyard.snapshot import take_snapshot
from runyard.spec import JobSpec
from runyard.workspace import Resources


@pytest.fixture
def make_workspace(tmp_path: Path) -> Iterator[Callable[..., Resources]]:
    """Open a fresh workspace with :data:`FAST` settings (overridable); on teardown, end
    every run it still has active and any process left of them."""
    opened: list[Resources] = []

    def make(**settings: Any) -> Resources:
        root = tmp_path / f"ws{len(opened)}"
        root.mkdir()
        (root / "config.yaml").write_text(yaml.safe_dump({**FAST, **settings}))
        resources = Resources.open(root)
        opened.append(resources)
        return resources

    yield make
    for resources in opened:
        clean_up(resources)
        resources.close()


@pytest.fixture
def ws(make_workspace: Callable[..., Resources]) -> Resources:
    return make_workspace()


@pytest.fixture
def new_run(tmp_path: Path) -> RunMaker:
    """Record a Queued run of a Python script (snapshotted from its own code folder), or of
    an explicit ``command`` without a snapshot."""
    count = 0

    def make(
        resources: Resources,
        script: str | None = None,
        *,
        command: str | list[str] | None = None,
        files: dict[str, str] | None = None,
        **spec: Any,
    ) -> Run:
        nonlocal count
        count += 1
        snapshot_id = None
        if script is not None or files:
            code = tmp_path / f"code{count}"
            code.mkdir()
            if script is not None:
                (code / "train.py").write_text(textwrap.dedent(script))
            for rel, text in (files or {}).items():
                (code / rel).parent.mkdir(parents=True, exist_ok=True)
                (code / rel).write_text(textwrap.dedent(text))
            snap = take_snapshot(
                code, resources.layout.snapshots, max_files=100, max_bytes=10 << 20
            )
            snapshot_id = snap.id
            spec.setdefault("code", str(code))
        if command is None:
            command = [sys.executable, "train.py"]
        job = JobSpec(
            command=command if isinstance(command, str) else tuple(command),
            experiment=spec.pop("experiment", "test"),
            **spec,
        )
        return resources.store.create_run(
            experiment=job.experiment, spec=job.to_dict(), snapshot_id=snapshot_id
        )

    return make


@pytest.fixture
def wait() -> Waiter:
    """``wait(condition, timeout=10, what=...)``: poll until ``condition()`` is truthy and
    return its value; fail the test after ``timeout`` seconds."""

    def waiter(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.02)

    return waiter
