"""The Open Inference Protocol v2 responses, malformed requests, API keys and metrics, over
real HTTP against an ONNX model."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
from serving_helpers import ModelFiles, Serve, deployment, runyard_cli, v2_input

from runyard import Workspace
from runyard.errors import UserError
from runyard.serving import Deployment, ServeOptions, serve_in_thread
from runyard.serving.app import key_digest

pytestmark = [pytest.mark.serve, pytest.mark.torch]


@pytest.fixture
def digits(ws: Workspace, model_files: ModelFiles) -> Deployment:
    return deployment(ws, ws.models.register("digits", model_files.onnx))


def test_v2_health_server_and_model_endpoints(digits: Deployment, serve: Serve) -> None:
    with serve([digits]) as client:
        assert client.get("/v2/health/live").json() == {"live": True}
        assert client.get("/v2/health/ready").json() == {"ready": True}
        server = client.get("/v2").json()
        assert server["name"] == "runyard" and server["extensions"] == []
        assert client.get("/v2/models/digits/ready").json() == {"name": "digits", "ready": True}
        assert client.get("/v2/models/digits/versions/1/ready").status_code == 200
        pinned = client.get("/v2/models/digits/versions/1").json()
        assert pinned["name"] == "digits" and pinned["versions"] == ["1"]
        missing = client.get("/v2/models/other")
        assert missing.status_code == 404
        assert "not served here (served: digits)" in missing.json()["error"]
        assert client.get("/v2/models/digits/versions/7").status_code == 404


def test_v2_infer_accepts_nested_data_and_integers(
    digits: Deployment, model_files: ModelFiles, serve: Serve
) -> None:
    rows = model_files.rows[:2]
    with serve([digits]) as client:
        flat = client.post("/v2/models/digits/infer", json=v2_input(rows)).json()
        nested = {
            "inputs": [
                {"name": "input", "shape": [2, 64], "datatype": "FP32", "data": rows.tolist()}
            ]
        }
        assert client.post("/v2/models/digits/infer", json=nested).json() == flat
        ints = np.zeros((1, 64), dtype=np.int64)
        r = client.post("/v2/models/digits/infer", json=v2_input(ints, datatype="INT64"))
        assert r.status_code == 200  # numbers convert to the model's FP32
        assert r.json()["outputs"][0]["shape"] == [1, 10]


def _error(client: httpx.Client, body: Any, path: str = "/v2/models/digits/infer") -> str:
    r = (
        client.post(path, json=body)
        if not isinstance(body, bytes)
        else client.post(path, content=body)
    )
    assert r.status_code == 400, r.text
    message = r.json()["error"]
    assert isinstance(message, str) and message
    return message


def test_malformed_requests_get_400_with_a_clear_message(
    digits: Deployment, model_files: ModelFiles, serve: Serve
) -> None:
    good = v2_input(model_files.rows[:1])["inputs"][0]
    with serve([digits]) as client:
        assert "not valid JSON" in _error(client, b"{not json")
        assert "empty" in _error(client, b"")
        assert "'inputs' must be a non-empty list" in _error(client, {"inputs": []})
        assert "must be a JSON object" in _error(client, [1, 2])
        no_type = {k: v for k, v in good.items() if k != "datatype"}
        assert "has no 'datatype'" in _error(client, {"inputs": [no_type]})
        assert "unknown datatype 'FLOAT'" in _error(
            client, {"inputs": [{**good, "datatype": "FLOAT"}]}
        )
        assert "shape [2, 64] needs 128 elements, data has 64" in _error(
            client, {"inputs": [{**good, "shape": [2, 64]}]}
        )
        assert "dimension 1 must be 64, got 8" in _error(
            client, {"inputs": [{**good, "shape": [8, 8]}]}
        )
        assert "must have 2 dimensions" in _error(client, {"inputs": [{**good, "shape": [64]}]})
        assert "data must be numbers" in _error(client, {"inputs": [{**good, "data": ["a"] * 64}]})
        assert "missing input 'input'" in _error(client, {"inputs": [{**good, "name": "x"}]})
        assert "given twice" in _error(client, {"inputs": [good, good]})
        assert "ragged" in _error(client, {"inputs": [{**good, "data": [[1.0], [1.0, 2.0]]}]})
        assert "unknown output 'nope'" in _error(
            client, {"inputs": [good], "outputs": [{"name": "nope"}]}
        )
        assert "version must be a number" in _error(
            client, {"inputs": [good]}, "/v2/models/digits/versions/x/infer"
        )
        assert 'expected {"data"' in _error(client, {"rows": []}, "/score")
        assert "ragged" in _error(client, {"data": [[1.0], [1.0, 2.0]]}, "/score")
        # and the server is fine afterwards
        assert client.post("/v2/models/digits/infer", json={"inputs": [good]}).status_code == 200


def test_an_api_key_is_required_when_set(digits: Deployment, serve: Serve) -> None:
    with serve([digits], key_sha256=key_digest("s3cret")) as client:
        refused = client.get("/v2/models/digits")
        assert refused.status_code == 401
        assert "API key" in refused.json()["error"]
        assert refused.headers["www-authenticate"] == "Bearer"
        assert client.post("/score", json={"data": [[0.0] * 64]}).status_code == 401
        assert client.get("/metrics").status_code == 401
        wrong = client.get("/v2/models/digits", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        bearer = client.get("/v2/models/digits", headers={"authorization": "Bearer s3cret"})
        assert bearer.status_code == 200
        header = client.get("/v2/models/digits", headers={"x-api-key": "s3cret"})
        assert header.status_code == 200
        assert client.get("/v2/health/ready").status_code == 200  # probes need no key


def test_a_server_beyond_loopback_needs_a_key(digits: Deployment) -> None:
    with pytest.raises(UserError, match="without an API key"):  # noqa: SIM117
        with serve_in_thread([digits], ServeOptions(host="0.0.0.0", port=0)):
            pass
    with serve_in_thread(
        [digits],
        ServeOptions(host="0.0.0.0", port=0, key_sha256=key_digest("k")),
    ) as server:
        r = httpx.get(
            f"http://127.0.0.1:{server.port}/v2/models/digits", headers={"x-api-key": "k"}
        )
        assert r.status_code == 200


def test_the_cli_refuses_to_serve_beyond_loopback_without_a_key(ws: Workspace) -> None:
    done = runyard_cli(ws.root, "serve", "digits", "--host", "0.0.0.0")
    assert done.returncode == 2
    assert "without an API key" in done.stderr
    assert "Traceback" not in done.stderr


def test_metrics_count_requests_and_latencies(
    digits: Deployment, model_files: ModelFiles, serve: Serve
) -> None:
    with serve([digits]) as client:
        for _ in range(3):
            client.post("/v2/models/digits/infer", json=v2_input(model_files.rows[:1]))
        client.post("/v2/models/digits/infer", json={"inputs": []})
        text = client.get("/metrics").text
    assert (
        'runyard_requests_total{model="digits@1",route="/v2/models/{name}/infer",status="200"} 3'
        in text
    )
    assert (
        'runyard_requests_total{model="digits@1",route="/v2/models/{name}/infer",status="400"} 1'
        in text
    )
    assert (
        'runyard_request_duration_seconds_count{model="digits@1",route="/v2/models/{name}/infer"} 4'
        in text
    )
    assert "# TYPE runyard_request_duration_seconds histogram" in text
    assert 'runyard_model_info{model="digits@1",platform="onnxruntime_onnx",weight="100"} 1' in text


def test_sockets_say_tcp_so_answers_are_not_delayed() -> None:
    """asyncio turns Nagle's algorithm off only on sockets created as TCP; without it each
    answer waited ~40 ms for a delayed ACK."""
    import socket

    from runyard.serving.server import bind

    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
