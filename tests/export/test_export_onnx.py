"""``export_onnx``: a real export, checked with onnxruntime, optionally registered."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from runyard import Workspace
from runyard.errors import ExportError, UserError
from runyard.export import export_onnx
from runyard.spec import JobSpec

pytestmark = [pytest.mark.serve, pytest.mark.torch]


class TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x) * scale
        return h.relu(), h.sum(dim=1)


class Noisy(nn.Module):
    """Eager and exported runs draw different noise: the check must catch it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.rand_like(x)


def test_an_export_is_checked_against_onnxruntime(tmp_path: Path) -> None:
    import onnxruntime as ort

    torch.manual_seed(0)
    model = TwoHeads().train()
    x, scale = torch.rand(2, 8), torch.rand(2, 1)
    report = export_onnx(model, (x, scale), tmp_path / "two.onnx")
    assert model.training  # put back as it was
    assert report.path == tmp_path / "two.onnx" and report.files == (tmp_path / "two.onnx",)
    assert report.input_names == ("input_0", "input_1")
    assert report.output_names == ("output_0", "output_1")
    assert report.opset is not None and report.opset >= 18
    assert 0 <= report.max_abs_diff <= report.tolerance
    session = ort.InferenceSession(str(report.path))
    rows = np.random.default_rng(0).random((5, 8), dtype=np.float32)  # another batch size
    scales = np.ones((5, 1), dtype=np.float32)
    got = session.run(None, {"input_0": rows, "input_1": scales})
    with torch.no_grad():
        want = model.eval()(torch.from_numpy(rows), torch.from_numpy(scales))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w.numpy(), atol=1e-5)
    assert "max abs diff" in str(report)


def test_an_export_that_disagrees_fails(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="disagrees with the model: max abs diff"):
        export_onnx(Noisy(), torch.zeros(1, 16), tmp_path / "noisy.onnx")
    assert (tmp_path / "noisy.onnx").is_file()  # kept for inspection


def test_bad_examples_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="tensor or a tuple of tensors"):
        export_onnx(nn.Linear(2, 2), [[1.0, 2.0]], tmp_path / "m.onnx")


def test_export_and_register_in_a_workspace(tmp_path: Path) -> None:
    with Workspace.open(tmp_path / "ws") as ws:
        report = export_onnx(
            nn.Linear(4, 2), torch.rand(1, 4), tmp_path / "m.onnx", register="lin", workspace=ws
        )
        assert report.model_version is not None
        mv = ws.models.get("lin")
        assert mv == report.model_version
        assert mv.framework == "onnx" and [f.path for f in mv.files] == ["m.onnx"]
        assert mv.properties["onnx.opset"] == str(report.opset)
        assert float(mv.properties["onnx.max_abs_diff"]) <= report.tolerance


def test_export_inside_a_run_registers_when_the_run_succeeds(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn
            from runyard.export import export_onnx
            report = export_onnx(nn.Linear(4, 2), torch.rand(1, 4), "outputs/lin.onnx",
                                 register="lin")
            print(report)
            """
        )
    )
    with Workspace.open(tmp_path / "ws") as ws:
        run = ws.run(JobSpec(command=(sys.executable, "train.py"), code=str(code)))
        assert run.status.value == "Completed", run.error
        mv = ws.models.get("lin")
        assert mv.run_id == run.id and mv.framework == "onnx"
        assert [f.path for f in mv.files] == ["lin.onnx"]
        assert mv.properties["onnx.opset"].isdigit()
