"""Real models of every kind, registered in real workspaces, served on loopback ports.

The model files are made once per session (exporting to ONNX takes seconds); each test
registers them in a workspace of its own.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from serving_helpers import ModelFiles, Serve

from runyard import Workspace
from runyard.serving import Deployment, ServeOptions, serve_in_thread


@pytest.fixture(scope="session")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> ModelFiles:
    import joblib
    import torch
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from torch import nn

    from runyard.export import export_onnx

    folder = tmp_path_factory.mktemp("models")
    x, y = load_digits(return_X_y=True)
    rows = (x / 16.0).astype(np.float32)
    clf = LogisticRegression(max_iter=300).fit(rows[:500], y[:500])
    joblib.dump(clf, folder / "clf.joblib")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    with warnings.catch_warnings():  # TorchScript is deprecated, and still served
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(net).save(str(folder / "net.pt"))
    batch = torch.export.Dim("batch")
    program = torch.export.export(net, (torch.rand(2, 64),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(folder / "net.pt2"))
    export_onnx(net, torch.from_numpy(rows[:1]), folder / "onnx" / "digits.onnx")
    return ModelFiles(
        sklearn=folder / "clf.joblib",
        torchscript=folder / "net.pt",
        torch_export=folder / "net.pt2",
        onnx=folder / "onnx" / "digits.onnx",
        rows=rows,
    )


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "config.yaml").write_text("heartbeat_interval: 0.2\nsystem_metrics_interval: 0\n")
    with Workspace.open(root) as opened:
        yield opened


@pytest.fixture
def serve() -> Serve:
    """``with serve(deployments, **options) as client:`` a real server on a free loopback
    port in this process, and an httpx client for it (``client.running``: the server)."""

    @contextmanager
    def run(deployments: list[Deployment], **options: Any) -> Iterator[httpx.Client]:
        options.setdefault("port", 0)
        with (
            serve_in_thread(deployments, ServeOptions(**options)) as server,
            httpx.Client(base_url=server.url, timeout=30) as client,
        ):
            client.running = server  # type: ignore[attr-defined]
            yield client

    return run
