"""Writing logged files into a run's outputs folder.

Every function takes the outputs folder and a ``name`` (a ``/``-separated relative path
without ``..``), writes the file atomically (a temporary file renamed into place, so a
reader never sees half a file) and returns the path it wrote, relative to the outputs
folder, ready for an artifact record. Nothing here imports matplotlib or numpy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from runyard.errors import NotFound, UserError

__all__ = ["IMAGE_SUFFIXES", "copy_file", "write_image", "write_table", "write_text"]

#: Extensions that make an image name complete; other names get ``.png`` (a figure) or
#: the source file's extension.
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".pdf", ".tif", ".tiff", ".bmp"}
)


def write_text(outputs: Path, name: str, text: str) -> str:
    if not isinstance(text, str):
        raise UserError(f"log_text: text must be a str, got {type(text).__name__}")
    rel = _relative(name, "log_text")
    _write_atomically(outputs / rel, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return rel


def write_table(outputs: Path, name: str, data: Mapping[str, Sequence[Any]] | Sequence[Any]) -> str:
    rel = _relative(name, "log_table")
    columns, rows = _table(name, data)
    rel = f"tables/{rel}" if rel.endswith(".json") else f"tables/{rel}.json"
    body = json.dumps({"columns": columns, "data": rows}, default=_json_scalar)
    _write_atomically(outputs / rel, lambda tmp: tmp.write_text(body, encoding="utf-8"))
    return rel


def write_image(outputs: Path, name: str, image: Any) -> str:
    rel = _relative(name, "log_image")
    has_suffix = PurePosixPath(rel).suffix.lower() in IMAGE_SUFFIXES
    if isinstance(image, (str, os.PathLike)):
        src = Path(image)
        if not src.is_file():
            raise NotFound(f"log_image: no such file: {src}")
        rel = f"images/{rel}" if has_suffix else f"images/{rel}{src.suffix.lower()}"
        _write_atomically(outputs / rel, lambda tmp: _copy(src, tmp))
        return rel
    savefig = getattr(image, "savefig", None)
    if not callable(savefig):
        raise UserError(
            "log_image: expected the path of an image file or a matplotlib figure, "
            f"got {type(image).__name__}"
        )
    rel = f"images/{rel}" if has_suffix else f"images/{rel}.png"
    fmt = PurePosixPath(rel).suffix[1:].lower()
    _write_atomically(outputs / rel, lambda tmp: savefig(tmp, format=fmt))
    return rel


def copy_file(outputs: Path, src: Path, name: str | None) -> list[str]:
    """Copy ``src`` (a file, or a folder with everything under it) to ``outputs/<name>``;
    return the relative paths of the files now there. A file already at its place in the
    outputs folder is recorded without copying."""
    if not src.exists():
        raise NotFound(f"log_file: no such file: {src}")
    rel = _relative(name if name is not None else src.name, "log_file")
    if src.is_file():
        dest = outputs / rel
        if not (dest.exists() and dest.samefile(src)):
            _write_atomically(dest, lambda tmp: _copy(src, tmp))
        return [rel]
    rels = []
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rels.extend(copy_file(outputs, path, f"{rel}/{path.relative_to(src).as_posix()}"))
    return rels


def _relative(name: str, what: str) -> str:
    """``name`` as a clean relative ``/``-separated path, or :class:`UserError`."""
    if not isinstance(name, str) or not name:
        raise UserError(f"{what}: name must be a non-empty string, got {name!r}")
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise UserError(f"{what}: name {name!r} must be a relative path inside outputs/ (no '..')")
    return path.as_posix()


def _write_atomically(dest: Path, write: Callable[[Path], object]) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)


def _copy(src: Path, dest: Path) -> None:
    import shutil

    shutil.copyfile(src, dest)


def _table(name: str, data: Any) -> tuple[list[str], list[list[Any]]]:
    """(columns, rows) of a mapping of columns or a sequence of row mappings."""
    if isinstance(data, Mapping):
        columns = [str(c) for c in data]
        values = [list(v) for v in data.values()]
        lengths = {len(v) for v in values}
        if len(lengths) > 1:
            raise UserError(
                f"log_table {name!r}: columns have different lengths "
                f"({', '.join(f'{c}={len(v)}' for c, v in zip(columns, values, strict=True))})"
            )
        return columns, [list(row) for row in zip(*values, strict=True)]
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        columns = []
        seen: set[str] = set()
        for row in data:
            if not isinstance(row, Mapping):
                raise UserError(
                    f"log_table {name!r}: rows must be mappings of column to value, "
                    f"got {type(row).__name__}"
                )
            for c in row:
                if str(c) not in seen:
                    seen.add(str(c))
                    columns.append(str(c))
        named = [{str(c): v for c, v in row.items()} for row in data]
        return columns, [[row.get(c) for c in columns] for row in named]
    raise UserError(
        f"log_table {name!r}: data must be a mapping of column to values or a list of "
        f"row mappings, got {type(data).__name__}"
    )


def _json_scalar(value: Any) -> Any:
    """JSON for numpy/torch values and other odd cells: their Python value, else str()."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        try:
            return tolist()
        except (TypeError, ValueError, RuntimeError):
            pass
    return str(value)
