"""``runyard.register_model`` inside a script: checked at once, recorded in the events file."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from runyard.errors import NotFound, UserError
from runyard.tracking.events import EventWriter, ModelRequest, read_events
from runyard.tracking.tracker import RunInfo, Tracker

PythonRunner = Callable[..., subprocess.CompletedProcess[str]]


def _tracker(tmp_path: Path) -> Tracker:
    outputs = tmp_path / "work" / "outputs"
    outputs.mkdir(parents=True)
    info = RunInfo("r1", "exp", outputs, tmp_path / "events.log", rank=0, offline=False)
    return Tracker(info)


def test_a_request_is_written_and_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = _tracker(tmp_path)
    outputs = tracker.info.outputs
    (outputs / "model.onnx").write_bytes(b"x")
    (outputs / "dir").mkdir()
    (outputs / "dir" / "clf.joblib").write_bytes(b"x")
    monkeypatch.chdir(outputs.parent)
    tracker.register_model("digits", "outputs/model.onnx", tags={"k": 1}, description="d")
    tracker.register_model("digits", "model.onnx")
    tracker.register_model("clf", outputs / "dir", properties={"p": "v"})
    tracker.close()
    batch, _ = read_events(tracker.info.events, 0)
    assert [(m.name, m.path, m.framework) for m in batch.models] == [
        ("digits", "model.onnx", "onnx"),
        ("digits", "model.onnx", "onnx"),
        ("clf", "dir", "sklearn"),
    ]
    first = batch.models[0]
    assert first.tags == {"k": "1"} and first.description == "d"
    assert first.framework_version is not None  # onnx is installed here
    assert batch.models[2].properties == {"p": "v"}
    assert not batch.empty


def test_bad_requests_fail_in_the_script(tmp_path: Path) -> None:
    tracker = _tracker(tmp_path)
    (tmp_path / "elsewhere.onnx").write_bytes(b"x")
    with pytest.raises(UserError, match="invalid model name"):
        tracker.register_model("../x", tmp_path / "elsewhere.onnx")
    with pytest.raises(UserError, match="not inside the run's outputs folder"):
        tracker.register_model("digits", tmp_path / "elsewhere.onnx")
    with pytest.raises(NotFound, match="no such file or folder"):
        tracker.register_model("digits", "missing.onnx")
    with pytest.raises(UserError, match="not inside"):
        tracker.register_model("digits", tracker.info.outputs)  # the whole folder itself
    tracker.close()
    assert read_events(tracker.info.events, 0)[0].empty


def test_malformed_records_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    with EventWriter(path) as w:
        w.register_model(ModelRequest("ok", "m.onnx"), rank=0)
    with path.open("a") as f:
        f.write(json.dumps({"kind": "register_model", "name": "x"}) + "\n")
        f.write(json.dumps({"kind": "register_model", "name": "x", "path": "p", "tags": 3}) + "\n")
    batch, _ = read_events(path, 0)
    assert [m.name for m in batch.models] == ["ok"]


def test_outside_runyard_nothing_is_registered(run_python: PythonRunner, tmp_path: Path) -> None:
    done = run_python(
        "import pathlib, runyard\n"
        "out = runyard.get_run().outputs\n"
        "(out / 'model.onnx').write_bytes(b'x')\n"
        "runyard.register_model('digits', out / 'model.onnx')\n"
    )
    assert "offline run; model 'digits' is not registered" in done.stderr
