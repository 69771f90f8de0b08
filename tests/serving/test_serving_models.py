"""Every no-code model kind answers real HTTP requests with what the framework computes."""

from __future__ import annotations

import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from serving_helpers import ModelFiles, Serve, deployment, v2_input

from runyard import Workspace

pytestmark = [pytest.mark.serve, pytest.mark.torch]


def test_onnx_model(ws: Workspace, model_files: ModelFiles, serve: Serve) -> None:
    import onnxruntime as ort

    mv = ws.models.register("digits", model_files.onnx)
    assert mv.framework == "onnx"
    rows = model_files.rows[:5]
    want = ort.InferenceSession(str(model_files.onnx)).run(None, {"input": rows})[0]
    with serve([deployment(ws, mv)]) as client:
        meta = client.get("/v2/models/digits").json()
        assert meta == {
            "name": "digits",
            "versions": ["1"],
            "platform": "onnxruntime_onnx",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}],
            "outputs": [{"name": "output", "datatype": "FP32", "shape": [-1, 10]}],
        }
        r = client.post("/v2/models/digits/infer", json={"id": "req-1", **v2_input(rows)})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model_name"] == "digits" and body["model_version"] == "1"
        assert body["id"] == "req-1"
        [out] = body["outputs"]
        assert out["name"] == "output" and out["datatype"] == "FP32" and out["shape"] == [5, 10]
        np.testing.assert_array_equal(np.array(out["data"], dtype=np.float32).reshape(5, 10), want)
        scored = client.post("/score", json={"data": rows.tolist()})
        assert scored.status_code == 200
        np.testing.assert_array_equal(np.array(scored.json()["predictions"], np.float32), want)
        assert scored.headers["x-runyard-model"] == "digits@1"


def test_torchscript_model(ws: Workspace, model_files: ModelFiles, serve: Serve) -> None:
    mv = ws.models.register("net", model_files.torchscript)
    assert mv.framework == "torchscript"
    rows = model_files.rows[:3]
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        want = torch.jit.load(str(model_files.torchscript))(torch.from_numpy(rows)).numpy()
    with serve([deployment(ws, mv)]) as client:
        meta = client.get("/v2/models/net").json()
        assert meta["platform"] == "pytorch_torchscript"
        assert [i["name"] for i in meta["inputs"]] == ["input"]
        r = client.post("/v2/models/net/infer", json=v2_input(rows))
        assert r.status_code == 200, r.text
        [out] = r.json()["outputs"]
        assert out["shape"] == [3, 10]
        np.testing.assert_array_equal(np.array(out["data"], np.float32).reshape(3, 10), want)


def test_torch_export_model(ws: Workspace, model_files: ModelFiles, serve: Serve) -> None:
    mv = ws.models.register("prog", model_files.torch_export)
    assert mv.framework == "torch.export"
    rows = model_files.rows[:4]
    with torch.inference_mode():
        want = torch.export.load(str(model_files.torch_export)).module()(torch.from_numpy(rows))
    with serve([deployment(ws, mv)]) as client:
        meta = client.get("/v2/models/prog").json()
        assert meta["platform"] == "pytorch_export"
        assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
        assert meta["outputs"] == [{"name": "output", "datatype": "FP32", "shape": [-1, 10]}]
        r = client.post("/v2/models/prog/infer", json=v2_input(rows))
        assert r.status_code == 200, r.text
        [out] = r.json()["outputs"]
        got = np.array(out["data"], np.float32).reshape(out["shape"])
        np.testing.assert_array_equal(got, want.numpy())


def test_sklearn_model(ws: Workspace, model_files: ModelFiles, serve: Serve) -> None:
    mv = ws.models.register("clf", model_files.sklearn)
    assert mv.framework == "sklearn"
    clf = joblib.load(model_files.sklearn)
    rows = model_files.rows[:6].astype(np.float64)
    with serve([deployment(ws, mv)]) as client:
        meta = client.get("/v2/models/clf").json()
        assert meta["platform"] == "sklearn"
        assert meta["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 64]}]
        assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]
        r = client.post(
            "/v2/models/clf/infer",
            json={**v2_input(rows, datatype="FP64"), "outputs": [{"name": "predict"}]},
        )
        assert r.status_code == 200, r.text
        [out] = r.json()["outputs"]
        assert out["name"] == "predict" and out["datatype"] == "INT64"
        assert out["data"] == clf.predict(rows).tolist()
        both = client.post("/score", json={"data": rows.tolist()}).json()["predictions"]
        assert both["predict"] == clf.predict(rows).tolist()
        np.testing.assert_array_equal(np.array(both["predict_proba"]), clf.predict_proba(rows))


def test_a_model_without_a_loader_needs_a_scoring_script(
    ws: Workspace, tmp_path: Path, serve: Serve
) -> None:
    from runyard.errors import UserError

    (tmp_path / "weights.bin").write_bytes(b"\0" * 8)
    mv = ws.models.register("custom", tmp_path / "weights.bin")
    assert mv.framework is None
    with pytest.raises(UserError, match="scoring script"), serve([deployment(ws, mv)]):
        pass
