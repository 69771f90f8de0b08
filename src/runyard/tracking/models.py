"""``runyard.register_model`` inside a training script: checked at once, registered later.

The in-job API never touches the store: the call checks the name and finds the files in the
run's outputs folder, then appends a ``register_model`` record to the events file. The run's
supervisor registers the files, as they were stored from the outputs folder, once the run
has succeeded (see :mod:`runyard.supervisor.models`). Only standard-library imports here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runyard.errors import NotFound, UserError
from runyard.naming import check_name
from runyard.registry import frameworks
from runyard.tracking.events import ModelRequest

__all__ = ["model_request"]


def model_request(
    outputs: Path,
    name: str,
    path: str | os.PathLike[str],
    *,
    framework: str | None = None,
    tags: Mapping[str, Any] | None = None,
    description: str | None = None,
    properties: Mapping[str, Any] | None = None,
) -> ModelRequest:
    """The request to register ``path`` (a file or folder inside ``outputs``) as ``name``.

    ``path`` may be absolute, relative to the current folder, relative to the outputs
    folder, or written as the run's artifact path (``outputs/model.onnx``, as Azure ML's
    ``run.register_model(model_path=...)`` takes it)."""
    check_name(name)
    rel, full = _inside_outputs(outputs, Path(path))
    if framework is None:
        files = [(full.name, full)] if full.is_file() else _files(full)
        framework = frameworks.detect_framework(files)
    return ModelRequest(
        name=name,
        path=rel,
        framework=framework,
        framework_version=frameworks.framework_version(framework),
        description=description,
        tags={str(k): str(v) for k, v in (tags or {}).items()},
        properties={str(k): str(v) for k, v in (properties or {}).items()},
    )


def _inside_outputs(outputs: Path, path: Path) -> tuple[str, Path]:
    root = outputs.resolve()
    if path.is_absolute():
        candidates = [path]
    else:
        candidates = [Path.cwd() / path, root / path]
        if path.parts[:1] == ("outputs",) and len(path.parts) > 1:
            candidates.append(root.joinpath(*path.parts[1:]))
    for candidate in candidates:
        if not candidate.exists():
            continue
        full = candidate.resolve()
        if full != root and root in full.parents:
            return full.relative_to(root).as_posix(), full
        raise UserError(
            f"register_model: {str(path)!r} is not inside the run's outputs folder ({root}); "
            "save the model there (or copy it there with runyard.log_file)"
        )
    raise NotFound(f"register_model: no such file or folder: {str(path)!r} (looked in {root})")


def _files(folder: Path) -> list[tuple[str, Path]]:
    return [(p.relative_to(folder).as_posix(), p) for p in folder.rglob("*") if p.is_file()]
