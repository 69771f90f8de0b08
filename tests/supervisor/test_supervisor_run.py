"""A run supervised in the test's own process, from Queued to its end."""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

from sv_helpers import RunMaker, WorkspaceMaker, alive

from runyard.records import RunStatus
from runyard.supervisor import Supervisor
from runyard.workspace import Resources

TRAIN = """
    import os, pathlib, runyard
    runyard.log_params({"lr": 0.1, "epochs": 3})
    runyard.set_tag("stage", "test")
    for step in range(3):
        runyard.log_metric("loss", 1.0 / (step + 1), step)
    pathlib.Path("outputs/model.txt").write_text("weights")
    pathlib.Path("logs/extra.txt").write_text("extra log")
    runyard.log_text("notes", "notes.txt")
    print("env", os.environ["RUNYARD_RUN_ID"], os.environ["AZUREML_RUN_ID"],
          os.environ["RUNYARD_EXPERIMENT"], os.environ["GREETING"])
    print("cwd", os.getcwd())
    print("outputs", os.environ["RUNYARD_OUTPUTS"])
    print("helper", open("helper.txt").read())
"""


def statuses(resources: Resources, run_id: str) -> list[RunStatus]:
    return [c.status for c in resources.store.status_history(run_id)]


def test_a_run_completes_with_everything_recorded(ws: Resources, new_run: RunMaker) -> None:
    run = new_run(
        ws,
        TRAIN,
        files={"helper.txt": "from the snapshot"},
        environment={"env_vars": {"GREETING": "hi"}},
    )
    lines: list[str] = []
    final = Supervisor(ws, run.id, echo=lines.append).execute()

    assert final.status is RunStatus.COMPLETED, final.error
    assert final.exit_code == 0 and final.reason is None and final.error is None
    assert final.started_at is not None and final.ended_at is not None
    assert statuses(ws, run.id) == [
        RunStatus.QUEUED,
        RunStatus.PREPARING,
        RunStatus.STARTING,
        RunStatus.RUNNING,
        RunStatus.FINALIZING,
        RunStatus.COMPLETED,
    ]
    times = [c.time for c in ws.store.status_history(run.id)]
    assert times == sorted(times)
    assert final.params == {"lr": "0.1", "epochs": "3"}
    assert final.tags["stage"] == "test"
    assert [p.value for p in ws.store.metric_history(run.id, "loss")] == [1.0, 0.5, 1 / 3]

    work = ws.layout.work_dir(run.id)
    assert f"env {run.id} {run.id} test hi" in lines
    assert f"cwd {work}" in lines
    assert f"outputs {work / 'outputs'}" in lines
    assert "helper from the snapshot" in lines

    artifacts = {a.path: a.size for a in ws.store.list_artifacts(run.id)}
    assert artifacts["outputs/model.txt"] == len("weights")
    assert artifacts["outputs/notes.txt"] == len("notes")
    assert artifacts["logs/extra.txt"] == len("extra log")
    assert "logs/std_log.txt" in artifacts
    stored = ws.artifacts.open_read(f"{run.id}/logs/std_log.txt")
    assert stored is not None and f"env {run.id}" in stored.read_text()


def test_output_is_echoed_while_the_run_goes(ws: Resources, new_run: RunMaker) -> None:
    # The script waits for a file that only the echo callback creates: if lines reached
    # the callback only at the end, the script would give up and fail.
    run = new_run(
        ws,
        """
        import pathlib, time
        print("ready", flush=True)
        deadline = time.time() + 20
        while not pathlib.Path("go").exists():
            if time.time() > deadline:
                raise SystemExit(3)
            time.sleep(0.02)
        print("done")
        """,
    )
    work = ws.layout.work_dir(run.id)
    lines: list[str] = []

    def echo(line: str) -> None:
        lines.append(line)
        if line == "ready":
            (work / "go").touch()

    final = Supervisor(ws, run.id, echo=echo).execute()
    assert final.status is RunStatus.COMPLETED
    assert lines == ["ready", "done"]


def test_finalizing_is_written_up_front_only_when_it_may_take_a_while(
    ws: Resources, new_run: RunMaker
) -> None:
    # A quick finalization is written with the outcome; storing 9 MB of outputs is not quick.
    quick = new_run(ws, "print('done')\n")
    large = new_run(
        ws, "import pathlib; pathlib.Path('outputs/big.bin').write_bytes(b'0' * (9 << 20))\n"
    )
    seen: dict[str, list[RunStatus]] = {quick.id: [], large.id: []}
    for run in (quick, large):
        final = Supervisor(ws, run.id, on_status=lambda r: seen[r.id].append(r.status)).execute()
        assert final.status is RunStatus.COMPLETED, final.error
        assert statuses(ws, run.id)[-2:] == [RunStatus.FINALIZING, RunStatus.COMPLETED]
    assert seen[quick.id] == [RunStatus.PREPARING, RunStatus.RUNNING, RunStatus.COMPLETED]
    assert seen[large.id] == [
        RunStatus.PREPARING,
        RunStatus.RUNNING,
        RunStatus.FINALIZING,
        RunStatus.COMPLETED,
    ]
    sizes = {a.path: a.size for a in ws.store.list_artifacts(large.id)}
    assert sizes["outputs/big.bin"] == 9 << 20


def test_a_failing_script_records_exit_code_and_error_tail(
    ws: Resources, new_run: RunMaker
) -> None:
    run = new_run(
        ws,
        """
        import sys
        for i in range(100):
            print(f"line {i}")
        raise RuntimeError("boom in training")
        """,
    )
    final = Supervisor(ws, run.id).execute()
    assert final.status is RunStatus.FAILED
    assert final.exit_code == 1
    assert final.reason == "exit code 1"
    assert final.error is not None
    assert "RuntimeError: boom in training" in final.error
    assert "line 99" in final.error and "line 50" not in final.error
    assert len(final.error.splitlines()) <= 30


def test_death_by_signal_is_named(ws: Resources, new_run: RunMaker) -> None:
    run = new_run(ws, "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    final = Supervisor(ws, run.id).execute()
    assert final.status is RunStatus.FAILED
    assert final.reason == "killed by signal SIGSEGV"
    assert final.exit_code == 128 + 11


def test_a_shell_command_runs_in_the_work_dir(ws: Resources, new_run: RunMaker) -> None:
    run = new_run(ws, command="echo in $(pwd); echo oops >&2; exit 4")
    lines: list[str] = []
    final = Supervisor(ws, run.id, echo=lines.append).execute()
    assert final.status is RunStatus.FAILED
    assert (final.exit_code, final.reason) == (4, "exit code 4")
    assert lines == [f"in {ws.layout.work_dir(run.id)}", "oops"]
    assert final.error == f"in {ws.layout.work_dir(run.id)}\noops"


def test_outputs_placeholder_resolves_to_a_folder_that_exists(
    ws: Resources, new_run: RunMaker
) -> None:
    run = new_run(
        ws,
        command="echo trained > ${{outputs.model}}/model.txt",
        outputs={"model": {}},
    )
    final = Supervisor(ws, run.id).execute()
    assert final.status is RunStatus.COMPLETED, final.error
    assert "outputs/model/model.txt" in {a.path for a in ws.store.list_artifacts(run.id)}


def test_a_command_that_cannot_start_fails_the_run(ws: Resources, new_run: RunMaker) -> None:
    run = new_run(ws, command=["/nonexistent/program", "--flag"])
    final = Supervisor(ws, run.id).execute()
    assert final.status is RunStatus.FAILED
    assert final.reason is not None and final.reason.startswith("cannot start the command")
    assert statuses(ws, run.id)[-2:] == [RunStatus.STARTING, RunStatus.FAILED]


def test_an_unknown_placeholder_fails_the_run(ws: Resources, new_run: RunMaker) -> None:
    run = new_run(ws, command="echo ${{inputs.missing}}")
    final = Supervisor(ws, run.id).execute()
    assert final.status is RunStatus.FAILED
    assert final.reason is not None and "inputs.missing" in final.reason


def test_a_damaged_snapshot_fails_while_preparing(ws: Resources, new_run: RunMaker) -> None:
    run = new_run(ws, "print('never')\n")
    for blob in (ws.layout.snapshots / "blobs").rglob("*"):
        if blob.is_file():
            blob.unlink()
    final = Supervisor(ws, run.id).execute()
    assert final.status is RunStatus.FAILED
    assert final.reason is not None and final.reason.startswith("preparing failed:")
    assert statuses(ws, run.id) == [RunStatus.QUEUED, RunStatus.PREPARING, RunStatus.FAILED]


def test_a_supervisor_error_fails_the_run_and_ends_its_processes(
    ws: Resources, new_run: RunMaker, tmp_path: Path
) -> None:
    # The artifact store cannot be written (its folder is a file): the supervisor fails
    # while the command runs, and must not leave it running.
    ws.layout.artifacts.write_text("not a folder")
    pid_file = tmp_path / "pid"
    run = new_run(
        ws,
        f"""
        import os, pathlib, time
        pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))
        time.sleep(60)
        """,
    )
    started = time.monotonic()
    final = Supervisor(ws, run.id).execute()
    assert time.monotonic() - started < 10
    assert final.status is RunStatus.FAILED
    assert final.reason is not None and final.reason.startswith("supervisor error:")
    assert final.error is not None and "Traceback" in final.error
    assert not alive(int(pid_file.read_text()))
    log = ws.layout.supervisor_log(run.id).read_text()
    assert "supervisor error" in log


def test_an_environment_that_runyards_interpreter_satisfies_is_used_and_recorded(
    ws: Resources, new_run: RunMaker
) -> None:
    """Built environments are tested in tests/envs (test_envs_runs.py)."""
    version = platform.python_version()
    run = new_run(
        ws,
        "import sys; print(sys.executable)\n",
        command="python train.py",
        environment={"python": ">=" + version, "env_vars": {"WHO": "me"}},
    )
    lines: list[str] = []
    final = Supervisor(ws, run.id, echo=lines.append).execute()
    assert final.status is RunStatus.COMPLETED, final.error
    assert final.tags["runyard.environment.python"] == version
    assert "runyard.environment.hash" not in final.tags
    assert lines == [f"[runyard] environment: runyard's own interpreter (Python {version})",
                     sys.executable]  # fmt: skip
    lock = (ws.layout.work_dir(run.id) / "logs" / "environment.lock.txt").read_text()
    assert any(line.startswith("pyyaml==") for line in lock.splitlines())
    assert "logs/environment.lock.txt" in {a.path for a in ws.store.list_artifacts(run.id)}


def test_system_metrics_are_sampled(make_workspace: WorkspaceMaker, new_run: RunMaker) -> None:
    ws = make_workspace(system_metrics_interval=0.3)
    run = new_run(
        ws,
        """
        import time
        data = bytearray(50 * 1024 * 1024)
        end = time.time() + 2
        while time.time() < end:
            sum(range(10000))
        """,
    )
    final = Supervisor(ws, run.id).execute()
    assert final.status is RunStatus.COMPLETED, final.error
    keys = set(ws.store.metric_keys(run.id))
    assert {
        "system/cpu_percent",
        "system/memory_used_mb",
        "system/process_cpu_percent",
        "system/process_rss_mb",
    } <= keys
    rss = ws.store.metric_history(run.id, "system/process_rss_mb")
    assert len(rss) >= 3
    assert max(p.value for p in rss) > 50
    assert [p.step for p in rss] == list(range(len(rss)))
    cpu = ws.store.metric_history(run.id, "system/process_cpu_percent")
    assert max(p.value for p in cpu) > 20


def test_a_terminal_run_is_returned_as_is(ws: Resources, new_run: RunMaker) -> None:
    run = new_run(ws, command="true")
    ws.store.request_cancel(run.id)
    final = Supervisor(ws, run.id).execute()
    assert final.status is RunStatus.CANCELED
    assert statuses(ws, run.id) == [RunStatus.QUEUED, RunStatus.CANCELED]
