"""The model registry on a real workspace: versions, files, aliases, lineage, deletion."""

from __future__ import annotations

import hashlib
import re
import socket
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from runyard import Workspace
from runyard.errors import ModelInUse, ModelNotFound, NotFound, UserError
from runyard.records import EndpointStatus, TrafficRoute
from runyard.registry import model_key
from runyard.spec import JobSpec


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "config.yaml").write_text("heartbeat_interval: 0.2\nsystem_metrics_interval: 0\n")
    with Workspace.open(root) as opened:
        yield opened


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "model.onnx"
    path.parent.mkdir()
    path.write_bytes(b"onnx bytes v1")
    return path


def test_versions_count_up_and_files_are_copied(ws: Workspace, model_file: Path) -> None:
    one = ws.models.register("digits", model_file, description="first", tags={"stage": "dev"})
    model_file.write_bytes(b"onnx bytes v2")
    two = ws.models.register("digits", model_file)
    assert (one.version, two.version) == (1, 2)
    assert one.framework == "onnx" and one.description == "first"
    assert one.files[0].path == "model.onnx"
    assert one.files[0].sha256 == hashlib.sha256(b"onnx bytes v1").hexdigest()
    assert one.source == str(model_file.resolve())
    stored = ws.resources.artifacts.open_read(model_key("digits", 1, "model.onnx"))
    assert stored is not None and stored.read_bytes() == b"onnx bytes v1"  # a copy, unchanged
    model_file.unlink()
    assert ws.models.get("digits@1").files == one.files
    assert ws.models.get("digits").version == 2


def test_folders_and_lists_of_files(ws: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "model_dir"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.bin").write_bytes(b"a")
    (folder / "sub" / "b.txt").write_text("b")
    mv = ws.models.register("bundle", folder)
    assert [f.path for f in mv.files] == ["model_dir/a.bin", "model_dir/sub/b.txt"]
    assert mv.framework is None
    listed = ws.models.register("pair", [folder / "a.bin", folder / "sub" / "b.txt"])
    assert [f.path for f in listed.files] == ["a.bin", "b.txt"]
    with pytest.raises(UserError, match=re.escape("both be stored as 'a.bin'")):
        ws.models.register("pair", [folder / "a.bin", folder / "a.bin"])
    with pytest.raises(NotFound, match="no such model file"):
        ws.models.register("pair", tmp_path / "missing.onnx")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="has no files"):
        ws.models.register("pair", tmp_path / "empty")
    assert ws.models.get("pair").version == 1  # failed registrations left nothing


def test_frameworks_are_detected_from_files(ws: Workspace, tmp_path: Path) -> None:
    import zipfile

    cases = {"m.onnx": "onnx", "m.pt2": "torch.export", "m.joblib": "sklearn", "m.pkl": "sklearn"}
    for i, (name, framework) in enumerate(cases.items()):
        path = tmp_path / name
        path.write_bytes(b"x")
        assert ws.models.register(f"m{i}", path).framework == framework
    scripted = tmp_path / "scripted.pt"
    with zipfile.ZipFile(scripted, "w") as z:
        z.writestr("scripted/code/__torch__/model.py", "")
    assert ws.models.register("ts", scripted).framework == "torchscript"
    weights = tmp_path / "weights.pt"  # a state_dict: nothing runyard can serve alone
    with zipfile.ZipFile(weights, "w") as z:
        z.writestr("weights/data.pkl", "")
    assert ws.models.register("sd", weights).framework is None
    assert ws.models.register("given", weights, framework="custom").framework == "custom"


def test_aliases_move_and_resolve(ws: Workspace, model_file: Path) -> None:
    for _ in range(3):
        ws.models.register("digits", model_file)
    ws.models.set_alias("digits", "production", 2)
    assert ws.models.get("digits@production").version == 2
    ws.models.set_alias("digits", "production", 3)
    assert ws.models.get("digits@production").aliases == ("production",)
    assert ws.models.get("digits@latest").version == 3
    ws.models.set_alias("digits", "production", None)
    with pytest.raises(ModelNotFound, match="no alias 'production'"):
        ws.models.get("digits@production")
    with pytest.raises(UserError, match="'latest' is not an alias"):
        ws.models.set_alias("digits", "latest", 1)


def test_tags_and_description_change(ws: Workspace, model_file: Path) -> None:
    ws.models.register("digits", model_file, tags={"a": "1"}, properties={"p": "x"})
    mv = ws.models.update("digits@1", set_tags={"b": "2"}, delete_tags=["a"], description="d")
    assert mv.tags == {"b": "2"} and mv.description == "d" and mv.properties == {"p": "x"}


@pytest.mark.parametrize(
    "name", ["../etc", "a/b", "..", ".x", "-x", "a b", "a\\b", "x" * 129, "é", "a@b"]
)
def test_names_with_path_tricks_are_refused(ws: Workspace, model_file: Path, name: str) -> None:
    with pytest.raises(UserError, match="invalid model name"):
        ws.models.register(name, model_file)
    assert ws.models.list() == []
    assert not (ws.root / "artifacts" / "models").exists()


def test_download_checks_hashes(ws: Workspace, model_file: Path, tmp_path: Path) -> None:
    ws.models.register("digits", model_file)
    ws.models.set_alias("digits", "production", 1)
    [got] = ws.models.download("digits@production", tmp_path / "out")
    assert got == tmp_path / "out" / "model.onnx" and got.read_bytes() == b"onnx bytes v1"
    stored = ws.resources.artifacts.open_read(model_key("digits", 1, "model.onnx"))
    assert stored is not None
    stored.write_bytes(b"tampered")
    with pytest.raises(UserError, match="does not match its recorded hash"):
        ws.models.download("digits@1", tmp_path / "again")


def test_delete_removes_files_and_keeps_numbers(ws: Workspace, model_file: Path) -> None:
    ws.models.register("digits", model_file)
    ws.models.register("digits", model_file)
    with pytest.raises(UserError, match="say which version"):
        ws.models.delete("digits")
    assert ws.models.delete("digits@2").version == 2
    assert ws.resources.artifacts.open_read(model_key("digits", 2, "model.onnx")) is not None
    assert not (ws.root / "artifacts" / model_key("digits", 2)).exists()
    assert ws.models.register("digits", model_file).version == 3


def test_a_version_a_live_endpoint_serves_is_not_deleted(ws: Workspace, model_file: Path) -> None:
    ws.models.register("digits", model_file)
    # An endpoint served from another machine: this one cannot tell it is gone.
    ws.store.create_endpoint("web", [TrafficRoute("digits", 1, 100)], {})
    ws.store.update_endpoint(
        "web", {"status": EndpointStatus.RUNNING, "hostname": "elsewhere", "pid": 1}
    )
    with pytest.raises(ModelInUse, match="served by endpoint web"):
        ws.models.delete("digits@1")
    assert ws.models.get("digits@1").version == 1
    assert ws.resources.artifacts.open_read(model_key("digits", 1, "model.onnx")).is_file()  # type: ignore[union-attr]


def test_an_endpoint_whose_server_died_here_no_longer_protects(
    ws: Workspace, model_file: Path
) -> None:
    ws.models.register("digits", model_file)
    ws.store.create_endpoint("web", [TrafficRoute("digits", 1, 100)], {})
    ws.store.update_endpoint(
        "web",
        {"status": EndpointStatus.RUNNING, "hostname": socket.gethostname(), "pid": 2**22 + 17},
    )
    ws.models.delete("digits@1")
    assert ws.store.get_endpoint("web").status is EndpointStatus.FAILED


def test_registering_from_a_run_copies_its_outputs_with_lineage(
    ws: Workspace, tmp_path: Path
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(
        textwrap.dedent(
            """
            import os, runyard
            runyard.log_params({"lr": 0.1})
            runyard.log_metric("acc", 0.5, step=0)
            runyard.log_metric("acc", 0.9, step=1)
            out = os.environ["RUNYARD_OUTPUTS"]
            open(os.path.join(out, "model.onnx"), "wb").write(b"from the run")
            os.makedirs(os.path.join(out, "tok"))
            open(os.path.join(out, "tok", "vocab.txt"), "w").write("a b")
            """
        )
    )
    run = ws.run(JobSpec(command=(sys.executable, "train.py"), code=str(code)))
    assert run.status.value == "Completed", run.error
    mv = ws.models.register("digits", "outputs/model.onnx", run_id=run.id[:8])
    assert mv.run_id == run.id
    assert mv.run_params == {"lr": "0.1"} and mv.run_metrics["acc"] == 0.9
    assert mv.source == f"run:{run.id}/outputs/model.onnx"
    assert mv.framework == "onnx"
    folder = ws.models.register("tok", "tok", run_id=run.id)  # outputs/ is implied
    assert [f.path for f in folder.files] == ["tok/vocab.txt"]
    with pytest.raises(NotFound, match=re.escape("no stored artifact at 'outputs/nope.onnx'")):
        ws.models.register("digits", "outputs/nope.onnx", run_id=run.id)
    with pytest.raises(UserError, match=re.escape("without '..'")):
        ws.models.register("digits", "../x", run_id=run.id)
