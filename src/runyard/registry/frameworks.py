"""Which framework a model's files belong to, told from the files alone (nothing is loaded).

=============== ============================================ ==========================
framework       files                                        loaded by (serving)
=============== ============================================ ==========================
``onnx``        ``*.onnx``                                   onnxruntime
``torch.export`` ``*.pt2`` (``torch.export.save``)           ``torch.export.load``
``torchscript`` ``*.pt``/``*.pth``/``*.ts`` zip archives     ``torch.jit.load``
                with TorchScript code (``torch.jit.save``)
``sklearn``     ``*.pkl``, ``*.pickle``, ``*.joblib``        joblib (trusted files only)
=============== ============================================ ==========================

Anything else (a ``state_dict`` saved with ``torch.save``, a folder of custom files) has no
framework runyard can serve without a scoring script.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path, PurePosixPath

__all__ = ["FRAMEWORKS", "detect_framework", "framework_version", "model_files"]

#: Framework name -> (file suffixes, the distribution whose version is recorded).
FRAMEWORKS: dict[str, tuple[frozenset[str], str | None]] = {
    "onnx": (frozenset({".onnx"}), "onnx"),
    "torch.export": (frozenset({".pt2"}), "torch"),
    "torchscript": (frozenset({".pt", ".pth", ".ts", ".torchscript"}), "torch"),
    "sklearn": (frozenset({".pkl", ".pickle", ".joblib"}), "scikit-learn"),
}


def model_files(framework: str, paths: Iterable[str]) -> list[str]:
    """The paths (relative, ``/``-separated) that hold a model of ``framework``."""
    suffixes = FRAMEWORKS.get(framework, (frozenset(), None))[0]
    return sorted(p for p in paths if PurePosixPath(p).suffix.lower() in suffixes)


def detect_framework(files: Iterable[tuple[str, Path]]) -> str | None:
    """The framework of a model made of ``files`` ((relative path, local file) pairs), or
    None when the files do not say."""
    found = list(files)
    names = [rel for rel, _ in found]
    for framework in ("onnx", "torch.export", "sklearn"):
        if model_files(framework, names):
            return framework
    local = dict(found)
    for rel in model_files("torchscript", names):
        if _is_torchscript(local[rel]):
            return "torchscript"
    return None


def _is_torchscript(path: Path) -> bool:
    """A ``torch.jit.save`` archive has a ``code/`` folder; a ``torch.save`` one does not."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in n for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def framework_version(framework: str | None) -> str | None:
    """The installed version of the framework's package here, if any."""
    from importlib import metadata

    dist = FRAMEWORKS.get(framework or "", (frozenset(), None))[1]
    if dist is None:
        return None
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
