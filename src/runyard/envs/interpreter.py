"""Choosing the interpreter an environment is built on.

``python:`` is a version (``"3.11"`` meaning 3.11.*) or a PEP 440 specifier (``">=3.10"``).
The interpreter runyard itself runs on is used when it fits (no subprocess at all). Otherwise
the interpreters uv can find without downloading (``uv python list --only-installed``: ``PATH``
and uv-managed ones) are considered and the highest version that fits is taken; the answer is
kept in ``<envs>/.interpreters.json`` (keyed by the specifier and ``PATH``, checked against the
interpreter file's size and time) so a cache hit runs no subprocess either.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import sys
import sysconfig
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from runyard.envs import uv
from runyard.envs.errors import EnvironmentBuildError
from runyard.errors import SpecError

FIELD = "environment.python"
#: Printed by an interpreter to describe itself; :func:`current_interpreter` computes the same.
_DESCRIBE = """
import json, platform, sys, sysconfig
print(json.dumps({
    "path": sys.executable,
    "version": platform.python_version(),
    "implementation": sys.implementation.name,
    "platform": sysconfig.get_platform(),
    "variant": "freethreaded" if sysconfig.get_config_var("Py_GIL_DISABLED") else "default",
    "prefix": sys.prefix,
}))
"""


@dataclass(frozen=True)
class InterpreterInfo:
    """An interpreter environments can be built on."""

    path: Path
    version: str
    implementation: str
    #: ``sysconfig.get_platform()``, e.g. ``linux-x86_64``.
    platform: str
    #: ``default`` or ``freethreaded``.
    variant: str
    #: Its ``sys.prefix``: whose site-packages an ``inherit: true`` environment sees.
    prefix: Path

    def identity(self) -> dict[str, str]:
        """What of the interpreter goes into an environment's hash (not its path)."""
        return {
            "implementation": self.implementation,
            "version": self.version,
            "platform": self.platform,
            "variant": self.variant,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InterpreterInfo:
        return cls(
            path=Path(data["path"]),
            version=str(data["version"]),
            implementation=str(data["implementation"]),
            platform=str(data["platform"]),
            variant=str(data["variant"]),
            prefix=Path(data["prefix"]),
        )

    def to_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}


@functools.cache
def current_interpreter() -> InterpreterInfo:
    """The interpreter runyard runs on."""
    return InterpreterInfo(
        path=Path(sys.executable),
        version=platform.python_version(),
        implementation=sys.implementation.name,
        platform=sysconfig.get_platform(),
        variant="freethreaded" if sysconfig.get_config_var("Py_GIL_DISABLED") else "default",
        prefix=Path(sys.prefix),
    )


def python_specifier(text: str) -> SpecifierSet:
    """``"3.11"`` → ``==3.11.*``, ``"3.11.4"`` → ``==3.11.4``, ``">=3.10"`` as is."""
    t = text.strip()
    try:
        Version(t)
    except InvalidVersion:
        pass
    else:
        return SpecifierSet(f"=={t}.*" if t.count(".") < 2 else f"=={t}")
    try:
        return SpecifierSet(t)
    except InvalidSpecifier:
        raise SpecError(
            f"expected a version such as '3.11' or a specifier such as '>=3.10', got {text!r}",
            field=FIELD,
        ) from None


def select_interpreter(python: str | None, *, cache_file: Path | None = None) -> InterpreterInfo:
    """The interpreter to build on for the ``python:`` field ``python`` (None: the current
    one). Raises :class:`SpecError` on ``environment.python`` when none fits, listing what
    was found."""
    here = current_interpreter()
    if python is None:
        return here
    spec = python_specifier(python)
    if spec.contains(here.version, prereleases=True):
        return here
    key = f"{spec}|{os.environ.get('PATH', '')}"
    cached = _cached(cache_file, key)
    if cached is not None:
        return cached
    found = installed_interpreters()
    fitting = [(v, p) for v, p in found if spec.contains(v, prereleases=True)]
    if not fitting:
        by_version: dict[str, str] = {}
        for v, p in [(here.version, str(here.path)), *found]:
            by_version.setdefault(v, p)
        listed = ", ".join(f"{v} at {p}" for v, p in list(by_version.items())[:6])
        raise SpecError(f"no interpreter satisfies {python!r} (found {listed})", field=FIELD)
    best = max(fitting, key=lambda vp: Version(vp[0]))  # max keeps the first of equals
    info = describe(Path(best[1]))
    _remember(cache_file, key, info)
    return info


def describe(path: Path) -> InterpreterInfo:
    """Ask the interpreter at ``path`` about itself."""
    try:
        done = subprocess.run(
            [str(path), "-I", "-c", _DESCRIBE],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise EnvironmentBuildError(f"cannot run the interpreter {path}: {e}") from None
    if done.returncode != 0:
        raise EnvironmentBuildError(f"cannot run the interpreter {path}:", output=done.stderr)
    data = json.loads(done.stdout)
    data["path"] = str(path)  # the path found, not one the interpreter resolved itself to
    return InterpreterInfo.from_dict(data)


def installed_interpreters() -> list[tuple[str, str]]:
    """``(version, path)`` of the CPython interpreters uv finds without downloading, in uv's
    order, one per real file. Interpreters uv cannot run (broken shims) are left out."""
    out = uv.capture(
        ["python", "list", "--only-installed", "--no-python-downloads", "--output-format", "json"],
        env=uv.uv_environ(),
        cwd=Path.cwd(),
        what="looking for Python interpreters",
    )
    result: dict[str, tuple[str, str]] = {}
    for item in json.loads(out or "[]"):
        path = item.get("path")
        if not path or item.get("implementation") != "cpython":
            continue
        real = os.path.realpath(path)
        result.setdefault(real, (str(item["version"]), str(path)))
    return list(result.values())


def _fingerprint(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _cached(cache_file: Path | None, key: str) -> InterpreterInfo | None:
    if cache_file is None:
        return None
    try:
        entry = json.loads(cache_file.read_text(encoding="utf-8"))[key]
        info = InterpreterInfo.from_dict(entry["info"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if _fingerprint(info.path) == entry.get("stat") else None


def _remember(cache_file: Path | None, key: str, info: InterpreterInfo) -> None:
    if cache_file is None:
        return
    try:
        data = json.loads(cache_file.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    data[key] = {"info": info.to_dict(), "stat": _fingerprint(info.path)}
    tmp = cache_file.with_name(f"{cache_file.name}.{os.getpid()}.tmp")
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(cache_file)
    except OSError:
        tmp.unlink(missing_ok=True)  # a cache only: a read-only workspace still works
