"""No-code model loaders, looked up by framework name.

A loader takes a model version's folder and returns a :class:`Predictor`: named arrays in,
named arrays out, rows along the first dimension, plus the v2 metadata of its inputs and
outputs. Frameworks are imported when a model of theirs is loaded, with an error naming the
extra to install when they are missing.

=============== ============================= ============================================
framework       loads                         inputs → outputs
=============== ============================= ============================================
``onnx``        onnxruntime session           the graph's own names, types and shapes
``torchscript`` ``torch.jit.load``            ``forward``'s argument names → ``output``
``torch.export`` ``torch.export.load``        the program's inputs → ``output``
``sklearn``     joblib / pickle               ``input`` → ``predict`` (+ ``predict_proba``)
=============== ============================= ============================================

**scikit-learn models are pickles: loading one runs code it contains.** Serve only files
you trust (your own runs' outputs), as with any pickle.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from runyard.errors import UserError
from runyard.registry.frameworks import model_files
from runyard.serving.tensors import TensorSpec

__all__ = ["LOADERS", "Predictor", "load_predictor", "loader"]


class Predictor(Protocol):
    """A loaded no-code model. ``predict`` is thread-safe and keeps rows independent: the
    output rows for a batch are those of each row alone (what dynamic batching relies on)."""

    #: The v2 ``platform`` (``onnxruntime_onnx``, ``pytorch_torchscript``, ...).
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def predict(
        self, inputs: dict[str, np.ndarray], outputs: tuple[str, ...] | None = None
    ) -> dict[str, np.ndarray]:
        """Outputs for the inputs (which match :attr:`inputs`): at least those named in
        ``outputs``, every one when it is None."""
        ...


LOADERS: dict[str, Callable[[Path], Predictor]] = {}


def loader(framework: str) -> Callable[[Callable[[Path], Predictor]], Callable[[Path], Predictor]]:
    """Register a loader for ``framework`` (a plug point: a new framework is one function)."""

    def add(fn: Callable[[Path], Predictor]) -> Callable[[Path], Predictor]:
        LOADERS[framework] = fn
        return fn

    return add


def load_predictor(framework: str | None, model_dir: Path) -> Predictor:
    if framework is None or framework not in LOADERS:
        known = ", ".join(sorted(LOADERS))
        raise UserError(
            f"no built-in loader for framework {framework!r} (built in: {known}); "
            "serve it with a scoring script (--score score.py)"
        )
    return LOADERS[framework](model_dir)


def _import(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(
            f"serving this model needs {module}: pip install 'runyard[{extra}]'"
        ) from None


def _one_file(framework: str, model_dir: Path) -> Path:
    files = [p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*") if p.is_file()]
    found = model_files(framework, files)
    if len(found) != 1:
        what = "no" if not found else f"{len(found)} ({', '.join(found)})"
        raise UserError(
            f"a {framework} model needs exactly one model file in its folder, found {what}; "
            "serve it with a scoring script (--score score.py) instead"
        )
    return model_dir / found[0]


# -- ONNX ------------------------------------------------------------------------------------

_ORT_TYPES = {f"tensor({t})": d for t, d in [
    ("float", "FP32"), ("double", "FP64"), ("float16", "FP16"), ("int8", "INT8"),
    ("int16", "INT16"), ("int32", "INT32"), ("int64", "INT64"), ("uint8", "UINT8"),
    ("uint16", "UINT16"), ("uint32", "UINT32"), ("uint64", "UINT64"), ("bool", "BOOL"),
    ("string", "BYTES"),
]}  # fmt: skip


class OnnxPredictor:
    platform = "onnxruntime_onnx"

    def __init__(self, path: Path):
        ort = _import("onnxruntime", "onnx")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.inputs = tuple(_ort_spec(i) for i in self.session.get_inputs())
        self.outputs = tuple(_ort_spec(o) for o in self.session.get_outputs())

    def predict(
        self, inputs: dict[str, np.ndarray], outputs: tuple[str, ...] | None = None
    ) -> dict[str, np.ndarray]:
        names = list(outputs) if outputs else [o.name for o in self.outputs]
        return dict(zip(names, self.session.run(names, inputs), strict=True))


def _ort_spec(node: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else -1 for d in (node.shape or []))
    return TensorSpec(node.name, _ORT_TYPES.get(node.type, "BYTES"), shape)


@loader("onnx")
def load_onnx(model_dir: Path) -> Predictor:
    return OnnxPredictor(_one_file("onnx", model_dir))


# -- PyTorch ---------------------------------------------------------------------------------

_TORCH_TYPES = {
    "float32": "FP32", "float64": "FP64", "float16": "FP16", "int64": "INT64", "int32": "INT32",
    "int16": "INT16", "int8": "INT8", "uint8": "UINT8", "bool": "BOOL",
}  # fmt: skip


class TorchPredictor:
    """A torch module called with the inputs in order; one tensor out is ``output``, a
    tuple ``output__0``, ``output__1``..., a dict its keys."""

    def __init__(
        self,
        module: Any,
        platform: str,
        inputs: tuple[TensorSpec, ...],
        outputs: tuple[TensorSpec, ...],
    ):
        self.torch = _import("torch", "torch")
        self.module = module
        self.platform = platform
        self.inputs = inputs
        self.outputs = outputs

    def predict(
        self, inputs: dict[str, np.ndarray], outputs: tuple[str, ...] | None = None
    ) -> dict[str, np.ndarray]:
        torch = self.torch
        args = [torch.from_numpy(np.ascontiguousarray(inputs[i.name])) for i in self.inputs]
        with torch.inference_mode():
            result = self.module(*args)
        if isinstance(result, dict):
            named = {str(k): v for k, v in result.items()}
        elif isinstance(result, (tuple, list)):
            named = {f"output__{i}": v for i, v in enumerate(result)}
        else:
            named = {"output": result}
        return {k: v.detach().cpu().numpy() for k, v in named.items()}


@loader("torchscript")
def load_torchscript(model_dir: Path) -> Predictor:
    torch = _import("torch", "torch")
    with warnings.catch_warnings():  # deprecated in favour of torch.export, still served
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(_one_file("torchscript", model_dir)), map_location="cpu")
    module.eval()
    args = [a.name for a in module.forward.schema.arguments[1:]]  # without self
    inputs = tuple(TensorSpec(name, "FP32", ()) for name in args)
    return TorchPredictor(
        module, "pytorch_torchscript", inputs, (TensorSpec("output", "FP32", ()),)
    )


@loader("torch.export")
def load_torch_export(model_dir: Path) -> Predictor:
    torch = _import("torch", "torch")
    program = torch.export.load(str(_one_file("torch.export", model_dir)))
    user_inputs = set(program.graph_signature.user_inputs)
    nodes = list(program.graph.nodes)
    inputs = tuple(
        _fake_spec(n.name, n.meta.get("val"))
        for n in nodes
        if n.op == "placeholder" and n.name in user_inputs
    )
    out = next(n for n in nodes if n.op == "output").args[0]
    values = [a.meta.get("val") if hasattr(a, "meta") else None for a in out]
    names = ["output"] if len(values) == 1 else [f"output__{i}" for i in range(len(values))]
    outputs = tuple(_fake_spec(n, v) for n, v in zip(names, values, strict=True))
    return TorchPredictor(program.module(), "pytorch_export", inputs, outputs)


def _fake_spec(name: str, value: Any) -> TensorSpec:
    if value is None or not hasattr(value, "shape"):
        return TensorSpec(name, "FP32", ())
    shape = tuple(d if isinstance(d, int) else -1 for d in value.shape)
    return TensorSpec(
        name, _TORCH_TYPES.get(str(value.dtype).removeprefix("torch."), "FP32"), shape
    )


# -- scikit-learn ----------------------------------------------------------------------------


class SklearnPredictor:
    """``input`` (rows of features) → ``predict``, and ``predict_proba`` when the estimator
    has it. Estimators are used read-only, so concurrent requests are safe."""

    platform = "sklearn"

    def __init__(self, estimator: Any):
        self.estimator = estimator
        n = getattr(estimator, "n_features_in_", None)
        self.inputs: tuple[TensorSpec, ...] = (
            TensorSpec("input", "FP64", (-1, int(n) if n else -1)),
        )
        names = ["predict"] + (["predict_proba"] if hasattr(estimator, "predict_proba") else [])
        self.outputs = tuple(TensorSpec(n, "FP64", ()) for n in names)

    def predict(
        self, inputs: dict[str, np.ndarray], outputs: tuple[str, ...] | None = None
    ) -> dict[str, np.ndarray]:
        x = inputs["input"]
        names = [o.name for o in self.outputs if outputs is None or o.name in outputs]
        return {n: np.asarray(getattr(self.estimator, n)(x)) for n in names}


@loader("sklearn")
def load_sklearn(model_dir: Path) -> Predictor:
    path = _one_file("sklearn", model_dir)
    joblib = _import("joblib", "torch")
    return SklearnPredictor(joblib.load(path))  # joblib reads plain pickles too
