"""``runyard sweep``: the file form, show and best (text and JSON), and clear errors."""

from __future__ import annotations

import json

import pytest
from sweep_helpers import SweepWriter, runyard_cli

from runyard.workspace import Resources


@pytest.mark.slow
def test_sweep_file_runs_then_show_and_best_read_it(ws: Resources, sweep_file: SweepWriter) -> None:
    path = sweep_file(
        {
            "x": {"type": "choice", "values": [0.3, 0.9, 0.6]},
            "silent": {"type": "choice", "values": [False]},
        },
        sampling_algorithm="grid",
    )
    done = runyard_cli(ws, "sweep", str(path))
    assert done.returncode == 0, done.stderr
    assert "Completed" in done.stderr and "best acc" in done.stderr
    assert done.stdout.endswith("\n")  # the live table's last line, in a pipe too
    sweep_id = json.loads(runyard_cli(ws, "ls", "--tag", "runyard.type=sweep", "--json").stdout)[0][
        "id"
    ]

    shown = json.loads(runyard_cli(ws, "sweep", "show", sweep_id, "--json").stdout)
    assert shown["sweep"]["status"] == "Completed"
    assert shown["objective"] == {"primary_metric": "acc", "goal": "maximize"}
    assert [t["params"]["x"] for t in shown["trials"]] == ["0.9", "0.6", "0.3"]  # best first
    assert [t["index"] for t in shown["trials"]] == [1, 2, 0]
    assert all(t["status"] == "Completed" and t["note"] is None for t in shown["trials"])
    assert shown["best"]["id"] == shown["trials"][0]["id"]

    best = json.loads(runyard_cli(ws, "sweep", "best", sweep_id, "--json").stdout)
    assert best["sweep"] == sweep_id
    assert best["metric"] == "acc"
    assert best["params"] == {"x": "0.9", "silent": "false"}
    assert best["value"] == shown["trials"][0]["value"]
    text = runyard_cli(ws, "sweep", "best", sweep_id).stdout
    assert text.startswith(f"trial 1 (run {best['id']}): acc ")
    assert "  x = 0.9" in text

    table = runyard_cli(ws, "sweep", "show", sweep_id).stdout
    assert "grid" in table and "best" in table and best["id"] in table


@pytest.mark.slow
def test_show_reports_a_trial_without_the_metric_and_best_says_there_is_none(
    ws: Resources, sweep_file: SweepWriter
) -> None:
    path = sweep_file({"silent": {"type": "choice", "values": [True]}}, sampling_algorithm="grid")
    done = runyard_cli(ws, "sweep", "run", str(path))
    assert done.returncode == 1  # the sweep Failed: nothing to rank
    assert "no trial logged acc" in done.stderr
    sweep_id = json.loads(runyard_cli(ws, "ls", "--tag", "runyard.type=sweep", "--json").stdout)[0][
        "id"
    ]
    shown = json.loads(runyard_cli(ws, "sweep", "show", sweep_id, "--json").stdout)
    assert shown["trials"][0]["note"] == "no acc logged"
    assert shown["best"] is None
    best = runyard_cli(ws, "sweep", "best", sweep_id)
    assert best.returncode == 2
    assert best.stderr.strip() == (
        f"error: sweep {sweep_id} has no best trial yet (none ended with acc logged)"
    )


def test_bad_search_space_is_one_line_exit_2_and_records_nothing(
    ws: Resources, sweep_file: SweepWriter
) -> None:
    path = sweep_file({"lr": {"type": "loguniform", "min_value": 0, "max_value": 0.1}})
    done = runyard_cli(ws, "sweep", str(path))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: {path}: search_space.lr")
    assert "Traceback" not in done.stderr
    assert json.loads(runyard_cli(ws, "ls", "--json").stdout) == []


def test_errors_for_missing_files_and_runs_that_are_not_sweeps(ws: Resources) -> None:
    done = runyard_cli(ws, "sweep", "missing.yaml")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: missing.yaml: file not found"
    run = ws.store.create_run(experiment="e", spec={"command": "true"})
    done = runyard_cli(ws, "sweep", "show", run.id)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: run {run.id} is not a sweep"
    done = runyard_cli(ws, "sweep", "resume", "nope1234")
    assert done.returncode == 2
    assert "not found" in done.stderr
