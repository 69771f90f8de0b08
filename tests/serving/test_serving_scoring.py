"""The scoring-script contract (Azure ML's ``init()`` / ``run(raw_data)``), over real HTTP."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from serving_helpers import ModelFiles, Serve, deployment

from runyard import Workspace
from runyard.errors import ScoringScriptError

pytestmark = [pytest.mark.serve, pytest.mark.torch]

AZURE_STYLE = """
import json, os
import joblib
import numpy as np

def init():
    global model, seen
    # Exactly as Azure ML's samples read it: the registered file is directly in the folder.
    model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "clf.joblib"))
    seen = {k: os.environ[k] for k in ("AZUREML_MODEL_DIR", "RUNYARD_MODEL_DIR")}

def run(raw_data):
    data = json.loads(raw_data)
    if data.get("crash"):
        raise ValueError("asked to crash")
    if data.get("env"):
        return seen
    rows = np.array(data["data"])
    return {"classes": model.predict(rows), "raw_type": type(raw_data).__name__}
"""


def _script(tmp_path: Path, text: str, name: str = "score.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_a_scoring_script_written_for_azure_runs_unchanged(
    ws: Workspace, model_files: ModelFiles, serve: Serve, tmp_path: Path
) -> None:
    import joblib

    mv = ws.models.register("clf", model_files.sklearn)
    d = deployment(ws, mv, score=_script(tmp_path, AZURE_STYLE))
    rows = model_files.rows[:4].astype(float).tolist()
    with serve([d]) as client:
        r = client.post("/score", json={"data": rows})
        assert r.status_code == 200, r.text
        assert r.headers["x-runyard-model"] == "clf@1"
        want = joblib.load(model_files.sklearn).predict(rows).tolist()
        assert r.json() == {"classes": want, "raw_type": "str"}
        env = client.post("/score", json={"env": True}).json()
        assert env["AZUREML_MODEL_DIR"] == env["RUNYARD_MODEL_DIR"] == str(d.model_dir)
        meta = client.get("/v2/models/clf").json()
        assert meta["platform"] == "score_script" and meta["versions"] == ["1"]
        v2 = client.post("/v2/models/clf/infer", json={"inputs": []})
        assert v2.status_code == 400 and "scoring script" in v2.json()["error"]


def test_a_crash_in_run_is_a_500_with_an_error_id_and_the_server_goes_on(
    ws: Workspace,
    model_files: ModelFiles,
    serve: Serve,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import joblib

    mv = ws.models.register("clf", model_files.sklearn)
    d = deployment(ws, mv, score=_script(tmp_path, AZURE_STYLE))
    with serve([d]) as client:
        bad = client.post("/score", json={"crash": True})
        assert bad.status_code == 500
        body = bad.json()
        assert body["error"] == "the model raised ValueError: asked to crash"
        assert len(body["error_id"]) == 12
        good = client.post("/score", json={"data": [[0.0] * 64]})
        assert good.status_code == 200
        assert (
            good.json()["classes"]
            == joblib.load(model_files.sklearn).predict([[0.0] * 64]).tolist()
        )
        metrics = client.get("/metrics").text
    assert 'route="/score",status="500"} 1' in metrics
    logged = [r for r in caplog.records if body["error_id"] in r.getMessage()]
    assert logged and logged[0].exc_info is not None  # the traceback is in the server log


def test_a_registered_folder_keeps_its_name_under_the_model_dir(
    ws: Workspace, serve: Serve, tmp_path: Path
) -> None:
    folder = tmp_path / "model_dir"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.json").write_text(json.dumps({"scale": 3}))
    (folder / "sub" / "note.txt").write_text("hi")
    mv = ws.models.register("scaler", folder)
    assert [f.path for f in mv.files] == ["model_dir/sub/note.txt", "model_dir/weights.json"]
    script = _script(
        tmp_path,
        """
        import json, os
        from helper import double   # a module beside the script

        def init():
            global scale
            root = os.environ["RUNYARD_MODEL_DIR"]
            with open(os.path.join(root, "model_dir", "weights.json")) as f:
                scale = json.load(f)["scale"]

        def run(raw_data):
            return [double(scale * x) for x in json.loads(raw_data)]
        """,
    )
    (tmp_path / "helper.py").write_text("def double(x):\n    return 2 * x\n")
    with serve([deployment(ws, mv, score=script)]) as client:
        assert client.post("/score", json=[1, 2]).json() == [6, 12]
        assert client.post("/score", content=b"[1, 2]").json() == [6, 12]
        r = client.post("/score", content=b"not json")
        assert r.status_code == 500 and "JSONDecodeError" in r.json()["error"]


def test_a_result_json_cannot_encode_is_a_500(ws: Workspace, serve: Serve, tmp_path: Path) -> None:
    (tmp_path / "m.bin").write_bytes(b"x")
    mv = ws.models.register("odd", tmp_path / "m.bin")
    script = _script(tmp_path, "def run(raw_data):\n    return object()\n", "odd.py")
    with serve([deployment(ws, mv, score=script)]) as client:
        r = client.post("/score", content=b"{}")
        assert r.status_code == 500 and "JSON cannot encode" in r.json()["error"]
        assert "error_id" in r.json()


def test_scripts_that_cannot_start_say_why(ws: Workspace, serve: Serve, tmp_path: Path) -> None:
    from runyard.errors import UserError

    (tmp_path / "m.bin").write_bytes(b"x")
    mv = ws.models.register("odd", tmp_path / "m.bin")
    no_run = _script(tmp_path, "def init():\n    pass\n", "no_run.py")
    with pytest.raises(UserError, match="has no run"), serve([deployment(ws, mv, score=no_run)]):
        pass
    failing = _script(
        tmp_path, "def init():\n    raise OSError('no GPU')\n\ndef run(d):\n    return d\n", "f.py"
    )
    with (
        pytest.raises(ScoringScriptError, match="failed to start: OSError: no GPU"),
        serve([deployment(ws, mv, score=failing)]),
    ):
        pass
