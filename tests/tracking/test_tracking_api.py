"""The in-job API as a training script sees it: a fresh process, configured by environment
variables the way the supervisor starts it, or with none (offline)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from runyard.tracking.events import read_events

PythonRunner = Callable[..., subprocess.CompletedProcess[str]]

ALL_KINDS = textwrap.dedent(
    """
    import json, runyard
    from matplotlib.figure import Figure

    runyard.log_param("optimizer", "sgd")
    runyard.log_params({"lr": 0.01, "hidden": 64})
    runyard.set_tag("stage", "baseline")
    runyard.set_tags({"seed": 1})
    for step in range(3):
        runyard.log_metric("loss", 1.0 / (step + 1))
        runyard.log_metrics({"acc": 0.5 + step / 10, "lr": 0.01}, step=step)
    runyard.log_metric("nan", float("nan"))
    runyard.log_text("notes\\n", "notes.txt")
    runyard.log_table("confusion", {"label": [0, 1], "count": [12, 3]})
    fig = Figure()
    fig.add_subplot().plot([1, 2, 3])
    runyard.log_image("curve", fig)
    runyard.log_file(__import__("pathlib").Path("notes.txt").absolute().parent / "data.txt")
    run = runyard.get_run()
    assert runyard.active_run() == run
    print(json.dumps({"id": run.id, "experiment": run.experiment, "outputs": str(run.outputs),
                      "events": str(run.events), "rank": run.rank, "offline": run.offline}))
    """
)


def test_a_script_inside_a_run_logs_every_kind(
    run_python: PythonRunner, run_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "data.txt").write_text("data")
    result = run_python(ALL_KINDS, **run_env)

    assert result.stderr == ""  # nothing said inside a run
    info = json.loads(result.stdout)
    assert info == {
        "id": "run-1",
        "experiment": "exp",
        "outputs": run_env["RUNYARD_OUTPUTS"],
        "events": run_env["RUNYARD_EVENTS"],
        "rank": 0,
        "offline": False,
    }
    batch, _ = read_events(Path(run_env["RUNYARD_EVENTS"]), 0)
    assert batch.params == {"optimizer": "sgd", "lr": "0.01", "hidden": "64"}
    assert batch.tags == {"stage": "baseline", "seed": "1"}
    assert [(p.key, p.step) for p in batch.metrics if p.key == "loss"] == [
        ("loss", 0),
        ("loss", 1),
        ("loss", 2),
    ]
    assert [p.value for p in batch.metrics if p.key == "acc"] == [0.5, 0.6, 0.7]
    assert batch.metrics[-1].key == "nan"
    assert batch.artifacts == [
        ("notes.txt", "text"),
        ("tables/confusion.json", "table"),
        ("images/curve.png", "image"),
        ("data.txt", "file"),
    ]
    outputs = Path(run_env["RUNYARD_OUTPUTS"])
    assert all((outputs / path).is_file() for path, _ in batch.artifacts)


@pytest.mark.parametrize(
    ("variables", "rank"),
    [
        ({}, 0),
        ({"RANK": "3"}, 3),
        ({"RANK": "2", "OMPI_COMM_WORLD_RANK": "5", "PMI_RANK": "7"}, 2),
        ({"OMPI_COMM_WORLD_RANK": "5", "PMI_RANK": "7"}, 5),
        ({"PMI_RANK": "7"}, 7),
        ({"RANK": "", "PMI_RANK": "4"}, 4),
    ],
)
def test_rank_comes_from_the_environment(
    run_python: PythonRunner, run_env: dict[str, str], variables: dict[str, str], rank: int
) -> None:
    code = "import runyard; runyard.log_metric('a', 1); print(runyard.get_run().rank)"
    result = run_python(code, **run_env, **variables)
    assert result.stdout.strip() == str(rank)
    (point,) = read_events(Path(run_env["RUNYARD_EVENTS"]), 0)[0].metrics
    assert point.rank == rank


def test_ranks_share_one_events_file(run_python: PythonRunner, run_env: dict[str, str]) -> None:
    code = "import runyard\nfor i in range(200): runyard.log_metric('loss', i)"
    for rank in range(3):
        run_python(code, **run_env, RANK=str(rank))
    batch, _ = read_events(Path(run_env["RUNYARD_EVENTS"]), 0)
    for rank in range(3):
        assert [p.step for p in batch.metrics if p.rank == rank] == list(range(200))


def test_outside_runyard_it_logs_offline_and_says_so_once(
    run_python: PythonRunner, tmp_path: Path
) -> None:
    (tmp_path / "data.txt").write_text("data")
    result = run_python(ALL_KINDS)

    info = json.loads(result.stdout)
    folder = Path(info["events"]).parent
    assert folder.parent == tmp_path / "runyard-offline"
    assert result.stderr == f"runyard: not inside a runyard run; logging offline to {folder}\n"
    assert info["offline"] is True
    assert info["id"] == folder.name
    assert info["outputs"] == str(folder / "outputs")
    assert sorted(p.name for p in folder.iterdir()) == ["events.log", "outputs"]
    batch, _ = read_events(folder / "events.log", 0)
    assert len(batch.metrics) == 3 + 3 * 2 + 1
    assert (folder / "outputs/tables/confusion.json").is_file()


def test_offline_dir_can_be_named(run_python: PythonRunner, tmp_path: Path) -> None:
    code = "import runyard; runyard.log_metric('a', 1); print(runyard.get_run().events)"
    result = run_python(code, RUNYARD_OFFLINE_DIR=str(tmp_path / "elsewhere"))
    events = Path(result.stdout.strip())
    assert events.parent.parent == tmp_path / "elsewhere"
    assert len(read_events(events, 0)[0].metrics) == 1
    assert not (tmp_path / "runyard-offline").exists()


def test_importing_runyard_alone_writes_nothing(run_python: PythonRunner, tmp_path: Path) -> None:
    result = run_python("import runyard")
    assert result.stderr == ""
    assert list(tmp_path.iterdir()) == []


def test_a_signal_handler_may_log_while_the_first_call_sets_up(
    clean_env: Callable[..., dict[str, str]], run_env: dict[str, str], tmp_path: Path
) -> None:
    # A SIGTERM handler that saves a metric can run in the middle of the main thread's first
    # call (a supervisor's signal arrives whenever it arrives): here it comes exactly then.
    code = textwrap.dedent(
        """
        import os, signal, runyard
        import runyard.tracking.api as api

        signal.signal(signal.SIGTERM, lambda *_: runyard.log_metric("saved", 1.0))
        make = api.Tracker

        def tracker_interrupted(info):
            if api.Tracker is tracker_interrupted:  # once
                api.Tracker = make
                os.kill(os.getpid(), signal.SIGTERM)  # handled at once, in this thread
            return make(info)

        api.Tracker = tracker_interrupted
        runyard.log_metric("loss", 0.5)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=clean_env(**run_env),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    batch, _ = read_events(Path(run_env["RUNYARD_EVENTS"]), 0)
    assert sorted(m.key for m in batch.metrics) == ["loss", "saved"]


def test_a_killed_script_loses_nothing_it_logged(
    clean_env: Callable[..., dict[str, str]], run_env: dict[str, str], tmp_path: Path
) -> None:
    code = textwrap.dedent(
        """
        import sys, time, runyard
        for i in range(1000):
            runyard.log_metric("loss", 1.0 / (i + 1))
        runyard.log_params({"done": "yes"})
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=clean_env(**run_env),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        child.kill()
        child.wait()
        if child.stdout:
            child.stdout.close()

    batch, _ = read_events(Path(run_env["RUNYARD_EVENTS"]), 0)
    assert [p.step for p in batch.metrics] == list(range(1000))
    assert [p.value for p in batch.metrics] == [1.0 / (i + 1) for i in range(1000)]
    assert batch.params == {"done": "yes"}


def test_a_bad_value_fails_the_script_with_a_clear_message(
    run_env: dict[str, str], clean_env: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import runyard; runyard.log_metric('loss', 'abc')"],
        cwd=tmp_path,
        env=clean_env(**run_env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == "runyard.errors.InvalidMetric: metric 'loss': value 'abc' (str) is not a number"


def test_should_stop_follows_the_stop_file(
    run_python: PythonRunner, run_env: dict[str, str], tmp_path: Path
) -> None:
    stop = tmp_path / "stop"
    code = textwrap.dedent(
        f"""
        import pathlib, time, runyard
        assert runyard.should_stop() is False
        pathlib.Path({str(stop)!r}).touch()
        assert runyard.should_stop() is False  # looked less than 0.5 s ago
        deadline = time.monotonic() + 5
        while not runyard.should_stop():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        pathlib.Path({str(stop)!r}).unlink()
        assert runyard.should_stop() is True  # once asked, stays asked
        print("stopped")
        """
    )
    result = run_python(code, **run_env, RUNYARD_STOP_FILE=str(stop))
    assert result.stdout == "stopped\n"


def test_should_stop_is_false_offline(run_python: PythonRunner, tmp_path: Path) -> None:
    stop = tmp_path / "stop"
    stop.touch()
    code = "import runyard; print(runyard.should_stop())"
    assert run_python(code, RUNYARD_STOP_FILE=str(stop)).stdout == "False\n"
    assert not (tmp_path / "runyard-offline").exists()


def test_importing_runyard_is_light(run_python: PythonRunner) -> None:
    heavy = ["sqlalchemy", "alembic", "click", "rich", "pydantic", "yaml", "numpy", "matplotlib"]
    code = textwrap.dedent(
        f"""
        import sys
        import runyard
        runyard.log_metric("a", 1.0)
        loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r} + ["torch"]))
        print(",".join(loaded))
        """
    )
    assert run_python(code).stdout.strip() == ""


def test_importing_runyard_is_fast(run_python: PythonRunner) -> None:
    result = run_python("import runyard", PYTHONPROFILEIMPORTTIME="1")
    rows = [line.split("|") for line in result.stderr.splitlines() if line.endswith("| runyard")]
    (cumulative_us,) = [int(row[1]) for row in rows]
    assert cumulative_us < 200_000  # ~20 ms here; a heavy dependency costs far more
