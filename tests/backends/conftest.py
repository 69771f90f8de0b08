"""A real workspace with small settings for backend tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from runyard.records import Run, RunStatus
from runyard.workspace import Resources

SETTINGS = {
    "heartbeat_interval": 0.2,
    "heartbeat_timeout": 3.0,
    "kill_grace": 1.0,
    "system_metrics_interval": 0.0,
    "local_slots": 2,
}


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Resources]:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "config.yaml").write_text(yaml.safe_dump(SETTINGS))
    resources = Resources.open(root)
    yield resources
    for run in resources.store.search_runs():  # end what a failed test left running
        if not run.status.is_terminal:
            resources.store.request_cancel(run.id, "test teardown")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
        not r.status.is_terminal for r in resources.store.search_runs()
    ):
        time.sleep(0.05)
    resources.close()


@pytest.fixture
def running(ws: Resources) -> Callable[[Run], None]:
    """Wait until a run is Running."""

    def wait(run: Run, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while ws.store.get_run(run.id).status is not RunStatus.RUNNING:
            if time.monotonic() > deadline:
                pytest.fail(f"run {run.id} not Running after {timeout}s")
            time.sleep(0.02)

    return wait
