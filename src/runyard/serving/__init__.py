"""Serving registered models over HTTP: no-code loaders (ONNX, TorchScript, torch.export,
scikit-learn), Azure ML-style scoring scripts, the Open Inference Protocol v2 and a plain
``/score`` route, dynamic batching, API keys and Prometheus metrics; endpoints are named
deployments served by detached processes, with a traffic split between versions.

Needs the ``serve`` extra (FastAPI, uvicorn); ONNX models need the ``onnx`` extra.
Imported lazily: ``from runyard.serving import Deployment, serve_in_thread``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runyard.serving.endpoints import Endpoints
    from runyard.serving.server import RunningServer, ServeOptions, serve, serve_in_thread
    from runyard.serving.state import Deployment

__all__ = ["Deployment", "Endpoints", "RunningServer", "ServeOptions", "serve", "serve_in_thread"]

_WHERE = {
    "Deployment": "runyard.serving.state",
    "Endpoints": "runyard.serving.endpoints",
    "RunningServer": "runyard.serving.server",
    "ServeOptions": "runyard.serving.server",
    "serve": "runyard.serving.server",
    "serve_in_thread": "runyard.serving.server",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'runyard.serving' has no attribute {name!r}")
    import importlib

    try:
        module = importlib.import_module(where)
    except ImportError as e:
        if e.name in ("fastapi", "uvicorn", "starlette"):
            from runyard.errors import UserError

            raise UserError(
                "serving needs FastAPI and uvicorn: pip install 'runyard[serve]'"
            ) from e
        raise
    return getattr(module, name)
