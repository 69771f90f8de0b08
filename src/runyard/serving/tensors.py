"""Tensors on the wire: the Open Inference Protocol v2's JSON tensors and plain JSON arrays.

A v2 input is ``{"name", "shape", "datatype", "data"}`` where ``data`` holds the elements in
row-major order, flat or nested. Everything a client can get wrong raises
:class:`RequestError` with a message that names the input and the problem; the server
answers it with 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DATATYPES",
    "RequestError",
    "TensorSpec",
    "conform",
    "datatype_of",
    "decode_v2_inputs",
    "encode_v2_output",
    "from_json_array",
]

#: v2 datatype -> numpy dtype.
DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_BY_DTYPE = {dtype: name for name, dtype in DATATYPES.items()}


class RequestError(Exception):
    """The request is malformed; the message says how (answered with 400)."""

    status = 400


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output as the v2 metadata describes it; -1 is a variable dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def datatype_of(array: np.ndarray) -> str:
    if array.dtype.kind in "OUS":
        return "BYTES"
    try:
        return _BY_DTYPE[array.dtype]
    except KeyError:
        raise RequestError(f"cannot send a tensor of numpy type {array.dtype}") from None


def decode_v2_inputs(body: Any) -> dict[str, np.ndarray]:
    """The named arrays of a v2 inference request body (already parsed from JSON)."""
    if not isinstance(body, Mapping):
        raise RequestError("the request body must be a JSON object with an 'inputs' list")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError("'inputs' must be a non-empty list of {name, shape, datatype, data}")
    out: dict[str, np.ndarray] = {}
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, Mapping):
            raise RequestError(f"inputs[{i}] must be an object with name, shape, datatype, data")
        name = tensor.get("name")
        if not isinstance(name, str) or not name:
            raise RequestError(f"inputs[{i}] needs a 'name'")
        if name in out:
            raise RequestError(f"input {name!r} is given twice")
        missing = [k for k in ("shape", "datatype", "data") if k not in tensor]
        if missing:
            raise RequestError(f"input {name!r} has no {', '.join(repr(k) for k in missing)}")
        out[name] = _decode(name, tensor["shape"], tensor["datatype"], tensor["data"])
    return out


def _decode(name: str, shape: Any, datatype: Any, data: Any) -> np.ndarray:
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise RequestError(f"input {name!r}: shape must be a list of whole numbers >= 0")
    dtype = DATATYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise RequestError(
            f"input {name!r}: unknown datatype {datatype!r} (one of {', '.join(DATATYPES)})"
        )
    array = _array(name, data, dtype)
    expected = int(np.prod(shape)) if shape else 1
    if array.size != expected:
        raise RequestError(
            f"input {name!r}: shape {shape} needs {expected} elements, data has {array.size}"
        )
    return array.reshape(shape)


def _array(name: str, data: Any, dtype: np.dtype[Any]) -> np.ndarray:
    if dtype.kind == "O":
        flat = list(_flatten(name, data))
        if not all(isinstance(v, str) for v in flat):
            raise RequestError(f"input {name!r}: BYTES data must be strings")
        return np.array(flat, dtype=object)
    try:
        array = np.asarray(data)
    except ValueError:
        raise RequestError(f"input {name!r}: data is a ragged (non-rectangular) list") from None
    if array.dtype.kind not in "biuf" or (array.dtype.kind == "f" and dtype.kind in "biu"):
        raise RequestError(
            f"input {name!r}: data must be {'booleans' if dtype.kind == 'b' else 'numbers'} "
            f"for datatype {_BY_DTYPE[dtype]}"
        )
    if dtype.kind in "iu" and array.size:
        info = np.iinfo(dtype)
        if array.min() < info.min or array.max() > info.max:
            raise RequestError(f"input {name!r}: a value does not fit {_BY_DTYPE[dtype]}")
    try:
        with np.errstate(over="raise", invalid="raise"):
            return array.astype(dtype).ravel()
    except FloatingPointError:
        raise RequestError(f"input {name!r}: a value does not fit {_BY_DTYPE[dtype]}") from None


def _flatten(name: str, data: Any) -> Any:
    if isinstance(data, list):
        for item in data:
            yield from _flatten(name, item)
    else:
        yield data


def from_json_array(name: str, data: Any, dtype: np.dtype[Any]) -> np.ndarray:
    """A plain JSON (nested list) array as ``dtype``, for the simple ``/score`` route."""
    if dtype.kind == "O":
        return np.array(data, dtype=object)
    try:
        array = np.asarray(data)
    except ValueError:
        raise RequestError(f"{name!r}: data is a ragged (non-rectangular) list") from None
    if array.dtype.kind not in "biuf":
        raise RequestError(f"{name!r}: data must be numbers (a list of rows)")
    return array.astype(dtype)


def conform(name: str, array: np.ndarray, spec: TensorSpec | None) -> np.ndarray:
    """``array`` as the model's input ``spec`` wants it: its datatype (numbers convert to
    numbers) and rank; dimensions the model fixes must match."""
    if spec is None:
        return array
    want = DATATYPES.get(spec.datatype)
    if want is not None and array.dtype != want:
        if (want.kind == "O") != (array.dtype.kind == "O"):
            raise RequestError(f"input {name!r} must be {spec.datatype}, got {datatype_of(array)}")
        array = array.astype(want)
    if spec.shape and len(spec.shape) != array.ndim:
        raise RequestError(
            f"input {name!r} must have {len(spec.shape)} dimensions {list(spec.shape)}, "
            f"got shape {list(array.shape)}"
        )
    for i, (want_dim, got) in enumerate(zip(spec.shape, array.shape, strict=False)):
        if want_dim >= 0 and want_dim != got:
            raise RequestError(
                f"input {name!r}: dimension {i} must be {want_dim}, got {got} "
                f"(shape {list(array.shape)}; the model takes {list(spec.shape)})"
            )
    return array


def encode_v2_output(name: str, array: np.ndarray) -> dict[str, Any]:
    array = np.asarray(array)
    datatype = datatype_of(array)
    data = array.ravel().tolist()
    if datatype == "BYTES":
        data = [v.decode() if isinstance(v, bytes) else str(v) for v in data]
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}
