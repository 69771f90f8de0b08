"""``runyard.register_model`` in a training script: registered by the supervisor from the
run's stored outputs once the run has succeeded, with the run's lineage."""

from __future__ import annotations

from sv_helpers import RunMaker

from runyard.records import RunStatus
from runyard.registry import ModelRegistry
from runyard.supervisor import Supervisor
from runyard.workspace import Resources

TRAIN = """
    import pathlib, runyard
    runyard.log_params({"lr": 0.1})
    runyard.log_metric("acc", 0.5, step=0)
    pathlib.Path("outputs/model.onnx").write_bytes(b"first")
    runyard.register_model("digits", "outputs/model.onnx", tags={"stage": "dev"},
                           description="from the run")
    runyard.register_model("digits", "model.onnx")  # the same file again: registered once
    pathlib.Path("outputs/model.onnx").write_bytes(b"final")  # what is stored is registered
    pathlib.Path("outputs/tok").mkdir()
    pathlib.Path("outputs/tok/vocab.txt").write_text("a b")
    runyard.register_model("tok", pathlib.Path.cwd() / "outputs" / "tok", framework="custom")
    runyard.log_metric("acc", 0.9, step=1)
    TAIL
"""


def test_models_are_registered_when_the_run_succeeds(ws: Resources, new_run: RunMaker) -> None:
    run = new_run(ws, TRAIN.replace("TAIL", "print('done')"))
    lines: list[str] = []
    final = Supervisor(ws, run.id, echo=lines.append).execute()
    assert final.status is RunStatus.COMPLETED, final.error
    registry = ModelRegistry(ws)
    digits = registry.get("digits")
    assert digits.version == 1 and registry.list("digits") == [digits]
    assert digits.run_id == run.id
    assert digits.run_params == {"lr": "0.1"} and digits.run_metrics == {"acc": 0.9}
    assert digits.tags == {"stage": "dev"} and digits.description == "from the run"
    assert digits.framework == "onnx"
    assert digits.source == f"run:{run.id}/outputs/model.onnx"
    stored = ws.artifacts.open_read(f"models/digits/1/{digits.files[0].path}")
    assert stored is not None and stored.read_bytes() == b"final"
    tok = registry.get("tok")
    assert tok.framework == "custom" and [f.path for f in tok.files] == ["tok/vocab.txt"]
    assert final.tags["runyard.models"] == "digits@1, tok@1"
    assert "[runyard] registered model digits@1 from outputs/model.onnx" in lines
    log = ws.artifacts.open_read(f"{run.id}/logs/std_log.txt")
    assert log is not None and "registered model tok@1" in log.read_text()


def test_nothing_is_registered_when_the_run_fails(ws: Resources, new_run: RunMaker) -> None:
    run = new_run(ws, TRAIN.replace("TAIL", "raise SystemExit(3)"))
    final = Supervisor(ws, run.id).execute()
    assert final.status is RunStatus.FAILED and final.exit_code == 3
    assert ModelRegistry(ws).list() == []


def test_a_registration_that_fails_fails_the_run(ws: Resources, new_run: RunMaker) -> None:
    script = """
        import os, pathlib, runyard
        pathlib.Path("outputs/model.onnx").write_bytes(b"x")
        runyard.register_model("digits", "outputs/model.onnx")
        os.remove("outputs/model.onnx")  # gone before the run's outputs are stored
    """
    run = new_run(ws, script)
    final = Supervisor(ws, run.id).execute()
    assert final.status is RunStatus.FAILED
    assert final.reason is not None
    assert final.reason.startswith("model registration failed: digits from outputs/model.onnx")
    assert ModelRegistry(ws).list() == []
