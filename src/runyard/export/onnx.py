"""Exporting a PyTorch model to ONNX, checked against onnxruntime, optionally registered.

:func:`export_onnx` exports with torch's exporter (torch 2.13's default, the dynamo-based
one, which needs ``onnxscript``), then runs the file with onnxruntime on the example input
— and, when the batch dimension is dynamic, on a batch of three copies of it — and compares
every output with the model's own. The largest absolute difference is reported; above
``tolerance`` the export fails with :class:`~runyard.errors.ExportError` (the file is kept
for inspection).

``register="name"`` registers the file as the next version of that model: inside a runyard
run through ``runyard.register_model`` (registered when the run succeeds, from its stored
outputs, so the file must be in the outputs folder), elsewhere directly in the workspace.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.errors import ExportError, UserError

if TYPE_CHECKING:
    from runyard.client import Workspace
    from runyard.records import ModelVersion

__all__ = ["DEFAULT_TOLERANCE", "ExportReport", "export_onnx"]

DEFAULT_TOLERANCE = 1e-4
#: Above this many bytes of parameters the weights go to a ``.data`` file beside the model
#: (a protobuf cannot exceed 2 GiB).
EXTERNAL_DATA_BYTES = 1 << 30


@dataclass(frozen=True)
class ExportReport:
    path: Path
    #: Every file written: the model, and its external data file if there is one.
    files: tuple[Path, ...]
    opset: int | None
    #: The largest absolute difference between onnxruntime's outputs and the model's.
    max_abs_diff: float
    tolerance: float
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    seconds: float
    #: The version registered in the workspace (outside a run), if any.
    model_version: ModelVersion | None = None
    #: The model a run will register when it succeeds (inside a run), if any.
    register_requested: str | None = None

    def __str__(self) -> str:
        done = f"exported {self.path} (opset {self.opset}) in {self.seconds:.1f}s; "
        done += f"onnxruntime max abs diff {self.max_abs_diff:.3g} (tolerance {self.tolerance:g})"
        if self.model_version is not None:
            done += f"; registered {self.model_version.ref}"
        elif self.register_requested:
            done += f"; {self.register_requested} is registered when the run succeeds"
        return done


def export_onnx(
    model: Any,
    example_input: Any,
    path: str | Path,
    *,
    register: str | None = None,
    opset: int | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    dynamic_batch: bool = True,
    tags: Mapping[str, str] | None = None,
    description: str | None = None,
    workspace: Workspace | None = None,
) -> ExportReport:
    """Export ``model`` (a ``torch.nn.Module``) called with ``example_input`` (a tensor or
    a tuple of tensors) to ``path``, check it with onnxruntime, and optionally register it.

    Inputs are named ``input`` (``input_0``, ``input_1``... for several) and outputs
    ``output`` (``output_0``...) unless named; with ``dynamic_batch`` the first dimension of
    every input is dynamic. ``opset`` None lets the exporter choose."""
    torch = _need("torch", "torch")
    started = time.perf_counter()
    args = tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)
    if not args or not all(isinstance(a, torch.Tensor) for a in args):
        raise UserError("export_onnx: example_input must be a tensor or a tuple of tensors")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ins = list(
        input_names or (["input"] if len(args) == 1 else [f"input_{i}" for i in range(len(args))])
    )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            expected = _outputs(model(*args))
        outs = list(
            output_names
            or (["output"] if len(expected) == 1 else [f"output_{i}" for i in range(len(expected))])
        )
        external = (
            sum(p.numel() * p.element_size() for p in model.parameters()) > EXTERNAL_DATA_BYTES
        )
        _export(torch, model, args, path, ins, outs, opset, dynamic_batch, external)
        diff = _compare(path, model, args, ins, dynamic_batch, torch)
    finally:
        model.train(was_training)
    files = (path, *([Path(f"{path}.data")] if Path(f"{path}.data").is_file() else []))
    report = ExportReport(
        path=path,
        files=files,
        opset=_opset(path),
        max_abs_diff=diff,
        tolerance=tolerance,
        input_names=tuple(ins),
        output_names=tuple(outs),
        seconds=time.perf_counter() - started,
    )
    if not diff <= tolerance:  # NaN fails too
        raise ExportError(
            f"the ONNX export disagrees with the model: max abs diff {diff:.3g} > tolerance "
            f"{tolerance:g} (the file is kept at {path} for inspection)"
        )
    if register is not None:
        report = _register(report, register, tags, description, workspace)
    return report


def _need(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"export_onnx needs {module}: pip install 'runyard[{extra}]'") from None


def _outputs(result: Any) -> list[Any]:
    if isinstance(result, (tuple, list)):
        return list(result)
    if isinstance(result, dict):
        return list(result.values())
    return [result]


def _export(
    torch: Any,
    model: Any,
    args: tuple[Any, ...],
    path: Path,
    ins: list[str],
    outs: list[str],
    opset: int | None,
    dynamic_batch: bool,
    external: bool,
) -> None:
    _need("onnxscript", "onnx")
    dynamic = None
    if dynamic_batch:
        batch = torch.export.Dim("batch")
        dynamic = tuple({0: batch} if a.dim() else {} for a in args)
    # torch logs a warning per optional torchvision operator it cannot register: noise.
    quiet = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            # The exporter's own deprecation noise is not the caller's to act on.
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            # Inputs sharing the batch dimension share its name: said, and meant.
            warnings.filterwarnings("ignore", ".*The axis name", UserWarning)
            torch.onnx.export(
                model,
                args,
                str(path),
                dynamo=True,
                external_data=external,
                opset_version=opset,
                input_names=ins,
                output_names=outs,
                dynamic_shapes=dynamic,
                verbose=False,
            )
    except Exception as e:
        raise ExportError(f"torch.onnx.export failed: {type(e).__name__}: {e}") from e
    finally:
        quiet.setLevel(level)


def _compare(
    path: Path, model: Any, args: tuple[Any, ...], ins: list[str], dynamic_batch: bool, torch: Any
) -> float:
    """The largest absolute difference over every output, on the example (and a batch of
    three copies of it when the batch dimension is dynamic)."""
    import numpy as np

    ort = _need("onnxruntime", "onnx")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    cases = [args]
    if dynamic_batch and all(a.dim() for a in args):
        cases.append(tuple(torch.cat([a, a, a]) for a in args))
    worst = 0.0
    for case in cases:
        with torch.no_grad():
            expected = [t.detach().cpu().numpy() for t in _outputs(model(*case))]
        feed = {n: a.detach().cpu().numpy() for n, a in zip(ins, case, strict=True)}
        got = session.run(None, feed)
        if len(got) != len(expected):
            raise ExportError(f"the ONNX model has {len(got)} outputs, the model {len(expected)}")
        for want, have in zip(expected, got, strict=True):
            if want.shape != have.shape:
                raise ExportError(
                    f"onnxruntime output shape {list(have.shape)} != model's {list(want.shape)}"
                )
            if want.size:
                diff = np.abs(want.astype(np.float64) - have.astype(np.float64)).max()
                worst = max(worst, float(diff)) if not np.isnan(diff) else float("nan")
    return worst


def _opset(path: Path) -> int | None:
    try:
        import onnx
    except ImportError:
        return None
    proto = onnx.load(str(path), load_external_data=False)
    return next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


def _register(
    report: ExportReport,
    name: str,
    tags: Mapping[str, str] | None,
    description: str | None,
    workspace: Workspace | None,
) -> ExportReport:
    import dataclasses
    import os

    properties = {
        "onnx.opset": str(report.opset),
        "onnx.max_abs_diff": f"{report.max_abs_diff:.3g}",
    }
    if os.environ.get("RUNYARD_EVENTS") and workspace is None:
        import runyard

        target = report.path
        if len(report.files) > 1:  # the weights file must travel with the model
            folder = report.path.parent
            if {p.name for p in folder.iterdir()} != {f.name for f in report.files}:
                raise UserError(
                    f"{report.path.name} keeps its weights in a file beside it: export it to a "
                    "folder of its own (outputs/onnx/model.onnx) to register both"
                )
            target = folder
        runyard.register_model(
            name,
            target,
            framework="onnx",
            tags=tags,
            description=description,
            properties=properties,
        )
        return dataclasses.replace(report, register_requested=name)
    from runyard.client import Workspace

    ws = workspace or Workspace.open()
    try:
        mv = ws.models.register(
            name,
            list(report.files),
            framework="onnx",
            tags=tags,
            description=description,
            properties=properties,
        )
    finally:
        if workspace is None:
            ws.close()
    return dataclasses.replace(report, model_version=mv)
