"""Endpoints end to end: detached server processes started and changed through the real
command line, answering real HTTP requests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from serving_helpers import ModelFiles, runyard_cli

from runyard import Workspace
from runyard.errors import BackendError, ModelInUse
from runyard.records import EndpointStatus
from runyard.serving.app import key_digest

pytestmark = [pytest.mark.serve, pytest.mark.torch, pytest.mark.slow]


@pytest.fixture
def endpoints_ws(ws: Workspace) -> Iterator[Workspace]:
    """The workspace; afterwards, every endpoint server it started is stopped."""
    yield ws
    for ep in ws.store.list_endpoints():
        if ep.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(ep.pid, signal.SIGKILL)


def _ok(done: object) -> str:
    assert done.returncode == 0, done.stderr  # type: ignore[attr-defined]
    return done.stdout  # type: ignore[attr-defined,no-any-return]


def test_endpoint_lifecycle_traffic_split_and_protected_versions(
    endpoints_ws: Workspace, model_files: ModelFiles
) -> None:
    ws = endpoints_ws
    root = ws.root
    for _ in range(2):
        _ok(runyard_cli(root, "model", "register", "digits", "--path", str(model_files.onnx)))
    out = _ok(
        runyard_cli(
            root, "endpoint", "create", "web", "--model", "digits@1", "--max-batch-size", "8"
        )
    )
    assert out.startswith("endpoint web running at http://127.0.0.1:")
    [listed] = json.loads(_ok(runyard_cli(root, "endpoint", "ls", "--json")))
    assert listed["status"] == "Running" and listed["traffic"] == [
        {"model": "digits@1", "weight": 100}
    ]
    url = listed["url"]
    row = {"data": model_files.rows[:1].tolist()}
    assert httpx.post(f"{url}/score", json=row).headers["x-runyard-model"] == "digits@1"

    out = _ok(runyard_cli(root, "endpoint", "traffic", "web", "digits@1=90", "digits@2=10"))
    assert out.strip() == "endpoint web: digits@1=90 digits@2=10"
    served = Counter()
    with httpx.Client(base_url=url) as client:
        for _ in range(100):
            r = client.post("/score", json=row)
            assert r.status_code == 200
            served[r.headers["x-runyard-model"]] += 1
        assert served == {"digits@1": 90, "digits@2": 10}  # exact: weighted round-robin
        pinned = client.post(
            "/v2/models/digits/versions/2/infer",
            json={
                "inputs": [
                    {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": row["data"][0]}
                ]
            },
        )
        assert pinned.headers["x-runyard-model"] == "digits@2"
        traffic = client.get("/v2/models/web").json()["traffic"]
        assert traffic == [{"model": "digits@1", "weight": 90}, {"model": "digits@2", "weight": 10}]

    refused = runyard_cli(root, "model", "delete", "digits@2")
    assert refused.returncode == 2
    assert "digits@2 is served by endpoint web" in refused.stderr
    assert ws.models.get("digits@2").version == 2

    logs = _ok(runyard_cli(root, "endpoint", "logs", "web"))
    assert "now serving digits@1, digits@2" in logs
    shown = json.loads(_ok(runyard_cli(root, "endpoint", "show", "web", "--json")))
    pid = shown["pid"]
    assert psutil.pid_exists(pid)

    _ok(runyard_cli(root, "endpoint", "delete", "web"))
    assert not _alive(pid)
    assert json.loads(_ok(runyard_cli(root, "endpoint", "ls", "--json"))) == []
    assert _ok(runyard_cli(root, "model", "delete", "digits@2")).strip() == "deleted digits@2"


def test_an_endpoint_with_a_scoring_script_and_a_key(
    endpoints_ws: Workspace, model_files: ModelFiles, tmp_path: Path
) -> None:
    ws = endpoints_ws
    ws.models.register("clf", model_files.sklearn)
    ws.models.set_alias("clf", "production", 1)
    script = tmp_path / "score.py"
    script.write_text(
        "import json, os, joblib\n"
        "def init():\n"
        "    global model\n"
        "    model = joblib.load(os.path.join(os.environ['AZUREML_MODEL_DIR'], 'clf.joblib'))\n"
        "def run(raw_data):\n"
        "    return model.predict(json.loads(raw_data)['data']).tolist()\n"
    )
    ep = ws.endpoints.create(
        "api", "clf@production", score=script, key_sha256=key_digest("k3y"), workers=2
    )
    assert ep.status is EndpointStatus.RUNNING and ep.url is not None
    script.write_text("def run(raw_data):\n    return 'changed'\n")  # the endpoint has a copy
    body = {"data": model_files.rows[:3].astype(float).tolist()}
    assert httpx.post(f"{ep.url}/score", json=body).status_code == 401
    r = httpx.post(f"{ep.url}/score", json=body, headers={"authorization": "Bearer k3y"})
    assert r.status_code == 200, r.text
    import joblib

    assert r.json() == joblib.load(model_files.sklearn).predict(body["data"]).tolist()
    ws.endpoints.delete("api")


def test_an_endpoint_that_cannot_start_is_failed_with_the_reason(
    endpoints_ws: Workspace, model_files: ModelFiles, tmp_path: Path
) -> None:
    ws = endpoints_ws
    ws.models.register("clf", model_files.sklearn)
    script = tmp_path / "broken.py"
    script.write_text(
        "def init():\n    raise RuntimeError('no weights here')\n\ndef run(d):\n    return d\n"
    )
    with pytest.raises(BackendError, match="no weights here"):
        ws.endpoints.create("bad", "clf@1", score=script)
    ep = ws.endpoints.get("bad")
    assert ep.status is EndpointStatus.FAILED
    assert "RuntimeError: no weights here" in (ep.error or "")
    ws.models.delete("clf@1")  # a failed endpoint serves nothing


def test_a_killed_server_is_noticed_and_its_versions_freed(
    endpoints_ws: Workspace, model_files: ModelFiles
) -> None:
    ws = endpoints_ws
    ws.models.register("digits", model_files.onnx)
    ep = ws.endpoints.create("web", "digits@1")
    with pytest.raises(ModelInUse):
        ws.models.delete("digits@1")
    assert ep.pid is not None
    os.kill(ep.pid, signal.SIGKILL)
    _wait(lambda: not _alive(ep.pid))  # type: ignore[arg-type]
    [listed] = ws.endpoints.list()
    assert listed.status is EndpointStatus.FAILED
    assert listed.error == f"server process {ep.pid} exited"
    ws.models.delete("digits@1")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail("timed out")
        time.sleep(0.05)
