"""Reading a conda environment file (``env.yml``) for what runyard can build with uv.

From ``dependencies`` runyard takes the ``python`` version (``python=3.10`` means 3.10.*, as in
conda) and the ``pip:`` sub-list; ``pip`` itself is ignored. Any other conda package is
refused with a message that says how to proceed: runyard builds environments with uv, so
conda packages are not supported (yet) — whether or not conda or micromamba is installed, but
the message differs. ``name``, ``channels`` and ``prefix`` are ignored.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from runyard.errors import SpecError

FIELD = "environment.conda_file"
_MATCH_SPEC = re.compile(r"^([A-Za-z0-9_.\-]+)\s*(.*)$")
_CONDA_TOOLS = ("conda", "mamba", "micromamba")


@dataclass(frozen=True)
class CondaFile:
    """What runyard uses of a conda environment file."""

    path: Path
    #: A PEP 440 version specifier for the interpreter (``==3.10.*``), or None.
    python: str | None
    #: The ``pip:`` section's lines, as written.
    pip: tuple[str, ...]


def read_conda_file(path: Path) -> CondaFile:
    """Parse ``path``; raise :class:`SpecError` on ``environment.conda_file`` for a missing or
    malformed file or for conda-only packages."""
    import yaml  # only when a conda file is used

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"conda file {str(path)!r} does not exist", field=FIELD) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise SpecError(f"cannot read conda file {str(path)!r}: {e}", field=FIELD) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{path.name}: expected a mapping with 'dependencies'", field=FIELD)
    deps = data.get("dependencies") or []
    if not isinstance(deps, list):
        raise SpecError(f"{path.name}: 'dependencies' must be a list", field=FIELD)

    pythons: list[str] = []
    pip: list[str] = []
    conda_only: list[str] = []
    for dep in deps:
        if isinstance(dep, dict) and set(dep) == {"pip"} and isinstance(dep["pip"], list):
            pip.extend(str(line) for line in dep["pip"])
            continue
        if not isinstance(dep, str):
            raise SpecError(f"{path.name}: unexpected dependency {dep!r}", field=FIELD)
        name, version = _match_spec(dep)
        if name == "python":
            pythons.append(_python_specifier(version, dep, path))
        elif name != "pip":
            conda_only.append(dep)
    if conda_only:
        raise SpecError(_refusal(path, conda_only), field=FIELD)
    python = None
    if pythons:
        python = str(SpecifierSet(",".join(p for p in pythons if p)))
    return CondaFile(path=path, python=python or None, pip=tuple(pip))


def _match_spec(dep: str) -> tuple[str, str]:
    text = dep.split("::", 1)[-1].strip()  # conda-forge::python=3.10
    m = _MATCH_SPEC.match(text)
    if not m:
        return text.lower(), ""
    return m.group(1).lower(), m.group(2).strip()


def _python_specifier(version: str, dep: str, path: Path) -> str:
    """conda's version syntax → PEP 440: ``=3.10`` and ``3.10`` → ``==3.10.*``,
    ``==3.10.4`` stays, ``>=3.9,<3.12`` stays; a build string (``=3.10=h12_0``) is dropped."""
    v = version.strip()
    if not v:
        return ""
    if v.startswith("=") and not v.startswith("=="):
        v = v[1:].split("=", 1)[0]
        spec = f"=={v}" if v.endswith("*") else f"=={v}.*"
    elif v[0].isdigit():
        v = v.split("=", 1)[0].strip()
        spec = f"=={v}" if v.endswith("*") else f"=={v}.*"
    else:
        spec = v
    try:
        return str(SpecifierSet(spec))
    except InvalidSpecifier:
        raise SpecError(
            f"{path.name}: cannot read the python version in {dep!r}", field=FIELD
        ) from None


def _refusal(path: Path, packages: list[str]) -> str:
    shown = ", ".join(packages[:6]) + (
        f" and {len(packages) - 6} more" if len(packages) > 6 else ""
    )
    tool = next((t for t in _CONDA_TOOLS if shutil.which(t)), None)
    move = "list them under the file's 'pip:' section if pip can install them"
    if tool is None:
        return (
            f"{path.name} lists conda packages ({shown}); they need conda or micromamba, "
            f"which is not installed, and runyard builds environments with uv: {move}"
        )
    return (
        f"{path.name} lists conda packages ({shown}); conda environments are not supported "
        f"yet ({tool} is installed, but runyard builds environments with uv): {move}"
    )
