"""The HTTP API of a model server (FastAPI).

=========================================== =============================================
``GET  /v2/health/live``, ``/v2/health/ready`` liveness and readiness (no key needed)
``GET  /v2``                                 server metadata
``GET  /v2/models/{name}[/versions/{v}]``    model metadata: platform, inputs, outputs
``GET  /v2/models/{name}[/versions/{v}]/ready``
``POST /v2/models/{name}[/versions/{v}]/infer`` Open Inference Protocol v2 inference
``POST /score``                              plain JSON (no-code) or the scoring script's
                                             ``run(raw_data)``
``GET  /metrics``                            Prometheus text format
=========================================== =============================================

``{name}`` is a model name (its versions share its requests by their weights) or, on an
endpoint, the endpoint's name (the whole traffic split). A pinned version bypasses the split.
Every answer says which version served it in the ``x-runyard-model`` header.

Errors are JSON ``{"error": message}``: 400 for a malformed request (the message says what
is wrong), 401 without the right key, 404 for an unknown model, 500 when the model or the
scoring script raises — with an ``error_id`` that the server log repeats beside the
traceback; the server keeps serving.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import Response

from runyard.serving.metrics import CONTENT_TYPE, ServerMetrics
from runyard.serving.state import NoSuchModel, Served, ServingState
from runyard.serving.tensors import (
    DATATYPES,
    RequestError,
    TensorSpec,
    decode_v2_inputs,
    encode_v2_output,
    from_json_array,
)

__all__ = ["OPEN_PATHS", "ModelServer", "create_app", "key_digest"]

log = logging.getLogger("runyard.serving")

#: Paths answered without an API key (load balancers and orchestrators probe them).
OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
#: Largest request body accepted, in bytes.
MAX_BODY = 64 << 20


def key_digest(key: str) -> str:
    """What a server keeps of its API key: its SHA-256, hex."""
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()


class ModelServer:
    """The state an app serves (swapped whole by :meth:`swap`), its metrics and its key."""

    def __init__(
        self, state: ServingState, *, metrics: ServerMetrics, key_sha256: str | None = None
    ):
        self.state = state
        self.metrics = metrics
        self.key_sha256 = key_sha256
        metrics.set_models(state.describe())

    async def swap(self, state: ServingState) -> None:
        old, self.state = self.state, state
        self.metrics.set_models(state.describe())
        log.info("now serving %s", ", ".join(state.served))
        await old.close()

    def authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        """Whether raw ASGI ``headers`` carry the key (``Authorization: Bearer KEY`` or
        ``x-api-key: KEY``); always when the server has none."""
        if self.key_sha256 is None:
            return True
        given = None
        for name, value in headers:
            if name == b"x-api-key":
                given = value.decode("latin-1").strip()
            elif name == b"authorization" and value[:7].lower() == b"bearer ":
                given = given or value[7:].decode("latin-1").strip()
        if not given:
            return False
        return hmac.compare_digest(key_digest(given), self.key_sha256)


class UserCodeFailure(Exception):
    """The model or the scoring script raised while answering (a 500 with an error id)."""

    def __init__(self, served: Served, error: BaseException):
        self.error_id = uuid.uuid4().hex[:12]
        self.served = served
        self.error = error
        super().__init__(f"{served.ref} raised {type(error).__name__}: {error}")


def create_app(server: ModelServer, *, lifespan: Any = None) -> FastAPI:
    """The app answering for ``server``; ``lifespan`` as FastAPI takes it (startup and
    shutdown work of the process around it)."""
    app = FastAPI(
        title="runyard model server",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.add_middleware(_Guard, server=server)

    @app.exception_handler(RequestError)
    @app.exception_handler(NoSuchModel)
    async def client_error(_request: Request, exc: Exception) -> Response:
        return _json({"error": str(exc)}, getattr(exc, "status", 400))

    @app.exception_handler(UserCodeFailure)
    async def user_code_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, UserCodeFailure)
        log.error(
            "error %s: %s raised while answering %s %s",
            exc.error_id,
            exc.served.ref,
            request.method,
            request.url.path,
            exc_info=exc.error,
        )
        error = f"the model raised {type(exc.error).__name__}: {exc.error}"
        return _json({"error": error, "error_id": exc.error_id}, 500)

    @app.get("/v2/health/live")
    async def live() -> Response:
        return _json({"live": True})

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        return _json({"ready": True})

    @app.get("/v2")
    async def server_metadata() -> Response:
        from importlib.metadata import version

        return _json({"name": "runyard", "version": version("runyard"), "extensions": []})

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(request: Request, name: str, version: str | None = None) -> Response:
        served = _pick(server.state, request, name, version)
        group = server.state.by_name.get(served.deployment.name, [served])
        meta: dict[str, Any] = {
            "name": served.deployment.name,
            "versions": [str(s.deployment.version) for s in group],
            "platform": served.model.platform,
        }
        if not served.is_script:
            model: Any = served.model
            meta["inputs"] = [_spec(t) for t in model.inputs]
            meta["outputs"] = [_spec(t) for t in model.outputs]
        if name == server.state.endpoint and name not in server.state.by_name:
            meta["traffic"] = [
                {"model": s.ref, "weight": s.deployment.weight}
                for s in server.state.served.values()
            ]
        return _json(meta)

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(request: Request, name: str, version: str | None = None) -> Response:
        _pick(server.state, request, name, version)
        return _json({"name": name, "ready": True})

    @app.post("/v2/models/{name}/infer")
    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer(request: Request, name: str, version: str | None = None) -> Response:
        return await _infer(_pick(server.state, request, name, version), request)

    @app.post("/score")
    async def score(request: Request) -> Response:
        return await _score(_pick(server.state, request, None, None), request)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(server.metrics.render(), media_type=CONTENT_TYPE)

    return app


class _Guard:
    """ASGI middleware: refuses requests without the key (except :data:`OPEN_PATHS`), names
    the version that answered in ``x-runyard-model``, and counts every request."""

    def __init__(self, app: Any, server: ModelServer):
        self.app = app
        self.server = server

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        status = 500
        if scope["path"] not in OPEN_PATHS and not self.server.authorized(scope["headers"]):
            status = 401
            response = _json(
                {"error": "missing or wrong API key (Authorization: Bearer KEY or x-api-key)"},
                401,
                headers={"www-authenticate": "Bearer"},
            )
            await response(scope, receive, send)
        else:

            async def send_named(message: Any) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    if "model" in state:
                        message["headers"] = [
                            *message.get("headers", []),
                            (b"x-runyard-model", state["model"].encode()),
                        ]
                await send(message)

            try:
                await self.app(scope, receive, send_named)
            finally:
                model = state.get("model", "-")
                elapsed = time.perf_counter() - started
                self.server.metrics.request(_route(scope["path"]), model, status, elapsed)
            return
        self.server.metrics.request(
            _route(scope["path"]), "-", status, time.perf_counter() - started
        )


# -- helpers -----------------------------------------------------------------------------


async def _infer(served: Served, request: Request) -> Response:
    """Open Inference Protocol v2: named tensors in, named tensors out."""
    body = await _body_json(request)
    if served.is_script:
        raise RequestError(
            f"model {served.ref} is served by a scoring script: POST its input to /score"
        )
    inputs = served.conform(decode_v2_inputs(body))
    wanted = _requested_outputs(body)
    outputs = await _predict(served, inputs)
    if wanted is not None:
        unknown = [n for n in wanted if n not in outputs]
        if unknown:
            raise RequestError(
                f"unknown output {', '.join(map(repr, unknown))} "
                f"(model {served.ref} gives {', '.join(outputs)})"
            )
        outputs = {n: outputs[n] for n in wanted}
    answer: dict[str, Any] = {
        "model_name": served.deployment.name,
        "model_version": str(served.deployment.version),
        "outputs": [encode_v2_output(n, a) for n, a in outputs.items()],
    }
    if isinstance(body, dict) and "id" in body:
        answer["id"] = body["id"]
    return _json(answer)


async def _score(served: Served, request: Request) -> Response:
    """The scoring script's ``run(body)``; for a no-code model, JSON rows in, predictions out."""
    raw = await _body(request)
    if not served.is_script:
        inputs = served.conform(_score_inputs(served, _parse(raw)))
        outputs = await _predict(served, inputs)
        if len(outputs) == 1:
            return _json({"predictions": next(iter(outputs.values())).tolist()})
        return _json({"predictions": {n: a.tolist() for n, a in outputs.items()}})
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise RequestError("the request body is not UTF-8 text") from None
    try:
        result = await served.score(text)
    except Exception as e:
        raise UserCodeFailure(served, e) from e
    try:
        return Response(_dumps(result), media_type="application/json")
    except (TypeError, ValueError) as e:
        error = TypeError(f"run() returned something JSON cannot encode: {e}")
        raise UserCodeFailure(served, error) from e


def _route(path: str) -> str:
    """The route template of ``path`` (bounded label values for the metrics)."""
    parts = path.split("/")
    if len(parts) >= 4 and parts[1:3] == ["v2", "models"]:
        rest = parts[4:]
        if rest[:1] == ["versions"]:
            rest = rest[2:]
        return "/v2/models/{name}" + "".join(f"/{p}" for p in rest)
    known = {"/v2", "/v2/health/live", "/v2/health/ready", "/score", "/metrics"}
    return path if path in known else "other"


def _pick(state: ServingState, request: Request, name: str | None, version: str | None) -> Served:
    number = None
    if version is not None:
        if not version.isdigit():
            raise RequestError(f"model version must be a number, got {version!r}")
        number = int(version)
    served = state.pick(name, number)
    request.state.model = served.ref  # for _Guard: the header and the metrics
    return served


async def _predict(served: Served, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    try:
        return await served.predict(inputs)
    except Exception as e:
        raise UserCodeFailure(served, e) from e


async def _body(request: Request) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        raise RequestError(f"the request body is larger than {MAX_BODY} bytes")
    return await request.body()


async def _body_json(request: Request) -> Any:
    return _parse(await _body(request))


def _parse(raw: bytes) -> Any:
    if not raw.strip():
        raise RequestError("the request body is empty; expected JSON")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise RequestError(f"the request body is not valid JSON: {e}") from None


def _requested_outputs(body: Any) -> list[str] | None:
    outputs = body.get("outputs") if isinstance(body, dict) else None
    if outputs is None:
        return None
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise RequestError("'outputs' must be a list of {\"name\": ...}")
    return [o["name"] for o in outputs]


def _score_inputs(served: Served, body: Any) -> dict[str, np.ndarray]:
    """``{"data": rows}`` for a model of one input, ``{"inputs": {name: rows}}`` for any."""
    model: Any = served.model
    specs: dict[str, TensorSpec] = {s.name: s for s in model.inputs}
    if isinstance(body, dict) and isinstance(body.get("inputs"), dict):
        given = body["inputs"]
    elif isinstance(body, dict) and "data" in body:
        if len(specs) != 1:
            raise RequestError(
                f"model {served.ref} takes {len(specs)} inputs ({', '.join(specs)}): "
                'send {"inputs": {name: rows, ...}}'
            )
        given = {next(iter(specs)): body["data"]}
    else:
        raise RequestError('expected {"data": [[...], ...]} or {"inputs": {name: [[...]]}}')
    out = {}
    for name, data in given.items():
        spec = specs.get(name)
        dtype = DATATYPES.get(spec.datatype if spec else "FP32", DATATYPES["FP32"])
        out[name] = from_json_array(name, data, dtype)
    return out


def _spec(t: TensorSpec) -> dict[str, Any]:
    return t.to_json()


def _jsonable(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dumps(content: Any) -> bytes:
    return json.dumps(content, default=_jsonable, separators=(",", ":")).encode()


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        _dumps(content), status_code=status, media_type="application/json", headers=headers
    )
