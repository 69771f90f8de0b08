"""What a materialized environment is, and the variables a process needs to run in it."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from packaging.utils import canonicalize_name


@dataclass(frozen=True)
class Environment:
    """A ready environment.

    - a built one: ``hash`` names its folder ``path`` in the cache; ``python`` is its
      interpreter; ``lock`` the exact packages installed (``uv pip freeze``).
    - the ambient one (an environment spec with only variables): ``hash`` is None, ``path``
      and ``python`` are runyard's own ``sys.prefix`` and ``sys.executable``; ``lock`` is read
      from the installed distributions the first time it is asked for.
    - an image: ``image`` and ``container_runtime`` are set, ``hash`` is None; processes run
      under :func:`runyard.envs.container_command`.
    """

    hash: str | None
    path: Path
    python: Path
    #: False only for the call that built it.
    cached: bool
    #: Seconds this call spent building it (None when it was already there).
    build_seconds: float | None = None
    #: The spec's ``env_vars`` (not part of the hash; every run gets its own).
    env_vars: Mapping[str, str] = field(default_factory=dict)
    #: ``name==version`` lines; None until asked for, for the ambient environment.
    packages: tuple[str, ...] | None = field(default=None, repr=False)
    image: str | None = None
    container_runtime: Path | None = None
    #: The interpreter's version (``3.11.9``); None for an image.
    python_version: str | None = None

    @property
    def short_hash(self) -> str | None:
        return self.hash[:12] if self.hash else None

    @cached_property
    def lock(self) -> tuple[str, ...]:
        """The exact packages: ``name==version`` per line, sorted."""
        return self.packages if self.packages is not None else ambient_lock()


def ambient_lock() -> tuple[str, ...]:
    """``name==version`` of every distribution this interpreter can import, first on
    ``sys.path`` winning, as ``pip freeze`` would list them."""
    seen: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            seen.setdefault(canonicalize_name(name), f"{canonicalize_name(name)}=={dist.version}")
    return tuple(sorted(seen.values()))


def env_vars_for(env: Environment, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables a process running in ``env`` starts with: ``base`` (default: this
    process's), with the environment's ``bin`` folder first on ``PATH`` (so ``python`` and the
    packages' commands are the environment's), ``VIRTUAL_ENV`` set and ``PYTHONHOME`` removed
    for a built environment, then the spec's ``env_vars``."""
    out = dict(os.environ if base is None else base)
    if env.image is None:
        bindir = str(env.python.parent)
        path = out.get("PATH", "")
        if path.split(os.pathsep, 1)[0] != bindir:
            out["PATH"] = bindir + (os.pathsep + path if path else "")
        if env.hash is not None:
            out["VIRTUAL_ENV"] = str(env.path)
            out.pop("PYTHONHOME", None)
    out.update(env.env_vars)
    return out


#: Under the cache root: folders holding only a link to runyard's package (see below).
API_DIR = ".runyard-api"


def tracking_path(envs_root: Path) -> Path:
    """A folder holding only runyard's own package (a link to it), for the ``PYTHONPATH`` of
    processes in a built environment that does not install runyard: ``import runyard`` there
    finds the in-job API, which needs the standard library only, and none of runyard's other
    dependencies become visible. One folder per runyard installation, made once."""
    package = Path(__file__).resolve().parent.parent
    key = hashlib.sha256(str(package).encode()).hexdigest()[:16]
    folder = Path(envs_root) / API_DIR / key
    link = folder / "runyard"
    if link.is_symlink() and link.resolve() == package:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".runyard-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(package, target_is_directory=True)
    tmp.replace(link)
    return folder
