"""The process behind an endpoint: ``python -m runyard.serving --endpoint NAME --workspace WS``.

Started detached by :class:`runyard.serving.endpoints.Endpoints`, with its output appended
to ``endpoints/<name>/server.log``. It reads the endpoint's record, records its pid, port and
machine, loads the versions of its traffic split and serves them; once it answers, the
endpoint is ``Running``. If it cannot start, the endpoint is ``Failed`` with the reason.
SIGTERM stops it gracefully (the endpoint is then ``Stopped``, if it still exists).
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

from runyard.errors import EndpointNotFound, InvalidTransition
from runyard.records import Endpoint, EndpointStatus
from runyard.serving.server import ServeOptions, bind, check_exposure, serve
from runyard.serving.state import Deployment
from runyard.workspace import Resources

__all__ = ["deployments_for", "endpoint_folder", "options_for", "run_endpoint"]

LIVE = [EndpointStatus.STARTING, EndpointStatus.RUNNING]


def endpoint_folder(resources: Resources, name: str) -> Path:
    """Where an endpoint keeps its log and its copy of the scoring script."""
    return resources.layout.root / "endpoints" / name


def deployments_for(resources: Resources, endpoint: Endpoint) -> list[Deployment]:
    """The endpoint's traffic split as deployments, each version's files local."""
    from runyard.registry import ModelRegistry

    registry = ModelRegistry(resources)
    score = endpoint.config.get("score")
    out = []
    for route in endpoint.traffic:
        mv = registry.get(route.ref)
        out.append(
            Deployment(
                name=mv.name,
                version=mv.version,
                model_dir=registry.local_dir(mv),
                framework=mv.framework,
                weight=route.weight,
                score=None if score is None else Path(score),
            )
        )
    return out


def options_for(resources: Resources, endpoint: Endpoint) -> ServeOptions:
    c = endpoint.config
    return ServeOptions(
        host=str(c.get("bind") or "127.0.0.1"),
        port=int(c.get("port") or 0),
        workers=int(c.get("workers") or 1),
        key_sha256=c.get("key_sha256"),
        max_batch_size=int(c.get("max_batch_size") or 1),
        max_delay_ms=float(c.get("max_delay_ms") or 0.0),
        endpoint=endpoint.name,
        workspace=str(resources.layout.root),
    )


def run_endpoint(resources: Resources, name: str) -> int:
    """Serve endpoint ``name`` until SIGTERM; the exit status."""
    import os
    import signal

    # uvicorn shuts down gracefully on SIGTERM, then raises it again for whoever handled it
    # before: that is this no-op, so that the endpoint can be marked Stopped afterwards.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: None)
    store = resources.store
    endpoint = store.get_endpoint(name)
    store.update_endpoint(
        name, {"pid": os.getpid(), "hostname": socket.gethostname()}, expected=LIVE
    )
    try:
        options = options_for(resources, endpoint)
        check_exposure(options)
        deployments = deployments_for(resources, endpoint)
        sock = bind(options.host, options.port)
        store.update_endpoint(name, {"port": int(sock.getsockname()[1])})
        serve(deployments, options, sock=sock)
    except BaseException as e:
        why = f"{type(e).__name__}: {e}" if not isinstance(e, KeyboardInterrupt) else "interrupted"
        with contextlib.suppress(EndpointNotFound, InvalidTransition):
            store.update_endpoint(
                name, {"status": EndpointStatus.FAILED, "error": why}, expected=LIVE
            )
        if isinstance(e, Exception):
            print(f"endpoint {name}: cannot serve: {why}", flush=True)
            return 1
        raise
    with contextlib.suppress(EndpointNotFound, InvalidTransition):
        store.update_endpoint(name, {"status": EndpointStatus.STOPPED}, expected=LIVE)
    return 0
