"""The local backend: the Backend contract, the registry, and foreground runs."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest
from backend_contract import BackendContract, record

from runyard.backends import Backend, backend_names, get_backend
from runyard.backends.local import LocalBackend
from runyard.errors import UserError
from runyard.records import Run, RunStatus
from runyard.workspace import Resources


class TestLocalBackendContract(BackendContract):
    @pytest.fixture
    def backend(self, ws: Resources) -> Backend:
        return get_backend("local", ws)


def test_the_registry_knows_local_and_names_the_known_targets(ws: Resources) -> None:
    assert isinstance(get_backend("local", ws), LocalBackend)
    assert "local" in backend_names()
    with pytest.raises(UserError, match=r"unknown compute target 'gpu-cluster' \(known: .*local"):
        get_backend("gpu-cluster", ws)


def test_run_foreground_echoes_and_returns_the_final_record(ws: Resources) -> None:
    run = record(ws, "print('hello'); print('world')")
    lines: list[str] = []
    seen: list[RunStatus] = []
    final = LocalBackend(ws).run_foreground(
        run.id, lines.append, on_status=lambda r: seen.append(r.status)
    )
    assert final.status is RunStatus.COMPLETED
    assert lines == ["hello", "world"]
    # Starting is written together with Running, and a quick Finalizing with the outcome;
    # the history has each with its own time.
    assert seen == [RunStatus.PREPARING, RunStatus.RUNNING, RunStatus.COMPLETED]
    history = ws.store.status_history(run.id)
    assert [c.status for c in history] == [
        RunStatus.QUEUED,
        RunStatus.PREPARING,
        RunStatus.STARTING,
        RunStatus.RUNNING,
        RunStatus.FINALIZING,
        RunStatus.COMPLETED,
    ]
    assert [c.time for c in history] == sorted(c.time for c in history)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_cancels_a_foreground_run(
    ws: Resources, tmp_path: Path, signum: signal.Signals
) -> None:
    started = tmp_path / "started"
    run = record(
        ws,
        f"import pathlib, time; pathlib.Path({str(started)!r}).touch(); time.sleep(120)",
    )
    before = signal.getsignal(signum)

    def interrupt_when_started() -> None:
        deadline = time.monotonic() + 15
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signum)

    thread = threading.Thread(target=interrupt_when_started)
    thread.start()
    began = time.monotonic()
    final = LocalBackend(ws).run_foreground(run.id)
    thread.join()
    assert final.status is RunStatus.CANCELED
    assert final.reason == "canceled by user (interrupt)"
    assert time.monotonic() - began < 10
    assert signal.getsignal(signum) == before  # handlers restored


def test_an_interrupt_while_queued_cancels_without_running(tmp_path: Path, ws: Resources) -> None:
    backend = LocalBackend(ws)
    blockers = [record(ws, "import time; time.sleep(120)") for _ in range(2)]  # 2 slots
    for b in blockers:
        backend.submit(b.id)
    run = record(ws, "print('never')")
    waiting = threading.Event()

    def on_status(current: Run) -> None:
        if current.status is RunStatus.QUEUED:
            waiting.set()
            os.kill(os.getpid(), signal.SIGINT)

    final = backend.run_foreground(run.id, on_status=on_status)
    assert waiting.is_set()
    assert (final.status, final.reason) == (RunStatus.CANCELED, "canceled by user (interrupt)")
    assert [c.status for c in ws.store.status_history(run.id)] == [
        RunStatus.QUEUED,
        RunStatus.CANCELED,
    ]


def test_submit_starts_a_supervisor_in_its_own_session(ws: Resources) -> None:
    run = record(ws, "import time; time.sleep(0.2)")
    LocalBackend(ws).submit(run.id)
    pid = ws.store.get_run(run.id).supervisor_pid
    assert pid is not None
    assert os.getsid(pid) != os.getsid(0)  # a closing terminal does not end it
    assert psutil.Process(pid).ppid() != os.getpid()  # re-parented: never a zombie of ours
    final = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        final = ws.store.get_run(run.id)
        if final.status.is_terminal:
            break
        time.sleep(0.02)
    assert final is not None and final.status is RunStatus.COMPLETED
    assert final.supervisor_pid == pid
    assert f"run {run.id}: Completed" in ws.layout.supervisor_log(run.id).read_text()
