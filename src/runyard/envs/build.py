"""Materializing an environment: find it in the cache, or build it once with uv.

The cache-hit path reads two small files and stats a few (no subprocess): the pip
configuration, the requirements files, and the entry's record. A miss takes the entry's build
lock (another process building the same hash makes this one wait, then reuse its result),
builds in a ``.build-*`` folder next to the entry, and renames it into place. A failed build
removes its folder and raises :class:`EnvironmentBuildError` with uv's own message.

Building is ``uv venv --relocatable`` (``--system-site-packages`` for ``inherit: true``),
``uv pip install`` of the normalized requirements with the person's package sources, and
``uv pip freeze`` for the lock. uv hard-links from its cache, so its cache is kept on the
cache root's filesystem: uv's default when it is on the same filesystem (so packages uv has
seen before are not fetched again), else ``<envs>/.uv-cache``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from runyard.envs import cache, uv
from runyard.envs.container import container_runtime
from runyard.envs.definition import EnvironmentDefinition, content_hash, define
from runyard.envs.environment import Environment
from runyard.envs.errors import EnvironmentBuildError
from runyard.envs.indexes import IndexConfig, read_pip_config, redact_url
from runyard.envs.interpreter import InterpreterInfo, current_interpreter, select_interpreter
from runyard.spec.job import EnvironmentSpec

Log = Callable[[str], None]
REQUIREMENTS_FILE = "runyard-requirements.txt"
CONSTRAINTS_FILE = "runyard-constraints.txt"
_INHERIT_PTH = "_runyard_inherit.pth"


def _quiet(_: str) -> None:
    return None


def materialize(
    env: EnvironmentSpec | EnvironmentDefinition,
    *,
    envs_root: Path,
    base_dir: Path | None = None,
    log: Log | None = None,
    status: Log | None = None,
    indexes: IndexConfig | None = None,
    cancel: threading.Event | None = None,
) -> Environment:
    """Return the environment ``env`` describes, building it if the cache lacks it.

    ``base_dir`` is the job's code folder (relative requirement and conda files resolve
    there). ``log`` receives every line uv prints while building (store them as the run's
    ``logs/environment.txt``); ``status`` receives one-line states for a person:
    ``waiting for another build of environment <hash12>``, ``building environment <hash12>
    ...``, ``built environment <hash12> in 4.2 s``. ``indexes`` defaults to the person's pip
    configuration. A spec naming a registered environment must be looked up first
    (:func:`runyard.envs.lookup`). Setting ``cancel`` (from another thread) stops a build in
    progress (uv is killed, nothing is cached) or a wait for another process's build:
    :class:`EnvironmentBuildError` ``... canceled``.

    An environment without packages whose ``python:`` (if any) runyard's own interpreter
    satisfies is the ambient one: nothing is built. With packages, or with an interpreter
    other than runyard's, a virtual environment is built.

    Raises :class:`~runyard.errors.SpecError` (``environment.<field>``) for a definition that
    cannot be built here, :class:`EnvironmentBuildError` when uv fails."""
    log, status = log or _quiet, status or _quiet
    d = env if isinstance(env, EnvironmentDefinition) else define(env, base_dir=base_dir)
    if d.image is not None:
        return Environment(
            hash=None,
            path=Path("/"),
            python=Path("python"),
            cached=True,
            env_vars=dict(d.env_vars),
            packages=(),
            image=d.image,
            container_runtime=container_runtime(),
        )
    root = Path(envs_root)
    here = current_interpreter()
    python = (
        here if d.is_ambient else select_interpreter(d.python, cache_file=root / cache.INTERPRETERS)
    )
    if python is here and not d.has_packages:
        # Only variables, or only a python: version that runyard's interpreter satisfies
        # (a guard, not a request for an empty environment): run as is.
        return Environment(
            hash=None,
            path=here.prefix,
            python=here.path,
            cached=True,
            env_vars=dict(d.env_vars),
            python_version=here.version,
        )
    sources = indexes if indexes is not None else read_pip_config()
    digest = content_hash(d, python=python, indexes=sources)

    found = _hit(root, digest, d)
    if found is not None:
        return found
    root.mkdir(parents=True, exist_ok=True)

    def waiting() -> None:
        status(f"waiting for another build of environment {digest[:12]}")

    with cache.build_lock(root, digest, on_wait=waiting, cancel=cancel):
        found = _hit(root, digest, d)
        if found is not None:
            return found
        merged = sources.merged(d.requirements)
        return _build(root, digest, d, python, merged, log, status, cancel)


@contextlib.contextmanager
def hold(env: Environment) -> Iterator[None]:
    """Keep ``env`` from being pruned while the block runs (a shared lock; the supervisor
    holds it for the life of a run). Raises :class:`EnvironmentBuildError` if the entry was
    removed since it was materialized (then materialize it again)."""
    if env.hash is None:
        yield
        return
    with cache.use_lock(env.path.parent, env.hash) as record:
        if record is None:
            raise EnvironmentBuildError(
                f"environment {env.hash[:12]} was removed from the cache after it was prepared; "
                "prepare it again"
            )
        yield


def _hit(root: Path, digest: str, d: EnvironmentDefinition) -> Environment | None:
    if not cache.marker_path(root, digest).exists():
        return None
    with cache.use_lock(root, digest) as record:  # not while prune is removing it
        if record is None:
            return None
        cache.touch(root, digest)
    return _environment(root, digest, d, record, cached=True, seconds=None)


def _environment(
    root: Path,
    digest: str,
    d: EnvironmentDefinition,
    record: dict[str, Any],
    *,
    cached: bool,
    seconds: float | None,
) -> Environment:
    path = cache.entry_path(root, digest)
    return Environment(
        hash=digest,
        path=path,
        python=path / "bin" / "python",
        cached=cached,
        build_seconds=seconds,
        env_vars=dict(d.env_vars),
        packages=tuple(record.get("lock") or ()),
        python_version=(record.get("python") or {}).get("version"),
    )


def _build(
    root: Path,
    digest: str,
    d: EnvironmentDefinition,
    python: InterpreterInfo,
    sources: IndexConfig,
    log: Log,
    status: Log,
    cancel: threading.Event | None = None,
) -> Environment:
    short = digest[:12]
    status(f"building environment {short} (Python {python.version} at {python.path})")
    started = time.monotonic()
    cache.remove_stale_builds(root, digest)
    folder = cache.build_dir(root, digest)
    env = uv.uv_environ({**sources.uv_env(os.environ), **_uv_cache(root)})
    try:
        venv = ["venv", str(folder), "--python", str(python.path), "--no-python-downloads"]
        venv += ["--no-project", "--relocatable", "--prompt", f"runyard-{short}"]
        if d.inherit:
            venv.append("--system-site-packages")
        what = f"creating environment {short}"
        uv.run(venv, env=env, cwd=root, log=log, what=what, cancel=cancel)
        if d.inherit:
            _inherit_current_venv(folder, python)
        target = str(folder / "bin" / "python")
        reqs = d.requirements
        (folder / REQUIREMENTS_FILE).write_text(
            "".join(f"{line}\n" for line in (*reqs.options, *reqs.requirements)), encoding="utf-8"
        )
        if reqs.requirements or reqs.options:
            install = ["pip", "install", "--python", target, "-r", str(folder / REQUIREMENTS_FILE)]
            if reqs.constraints:
                (folder / CONSTRAINTS_FILE).write_text(
                    "".join(f"{line}\n" for line in reqs.constraints), encoding="utf-8"
                )
                install += ["-c", str(folder / CONSTRAINTS_FILE)]
            install += ["--no-python-downloads", *sources.uv_args()]
            what = f"installing the packages of environment {short}"
            uv.run(install, env=env, cwd=root, log=log, what=what, redact=redact_url, cancel=cancel)
        frozen = uv.capture(
            ["pip", "freeze", "--python", target],
            env=env,
            cwd=root,
            what=f"listing the packages of environment {short}",
        )
        lock = tuple(sorted(line.strip() for line in frozen.splitlines() if line.strip()))
        seconds = time.monotonic() - started
        record = {
            "format": 1,
            "hash": digest,
            "definition": _recorded(d),
            "python": python.to_dict(),
            "sources": sources.identity(),
            "lock": list(lock),
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "build_seconds": round(seconds, 3),
            "uv": _uv_version(folder),
        }
        cache.write_marker(folder, record)
        final = cache.entry_path(root, digest)
        stale = cache.retire(root, final) if final.exists() else None
        folder.rename(final)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if stale is not None:
        shutil.rmtree(stale, ignore_errors=True)
    count = f"{len(lock)} package" + ("" if len(lock) == 1 else "s")
    status(f"built environment {short} in {seconds:.1f} s ({count})")
    return _environment(root, digest, d, record, cached=False, seconds=seconds)


def _recorded(d: EnvironmentDefinition) -> dict[str, Any]:
    """The definition as the entry records it: without variables (not part of the build)
    and without credentials in index URLs."""
    data = d.to_dict()
    data["env_vars"] = {}
    r = data["requirements"]
    r["index_url"] = redact_url(r["index_url"]) if r["index_url"] else None
    r["extra_index_urls"] = [redact_url(u) for u in r["extra_index_urls"]]
    r["find_links"] = [redact_url(u) for u in r["find_links"]]
    return data


def _inherit_current_venv(folder: Path, python: InterpreterInfo) -> None:
    """``--system-site-packages`` reaches the base interpreter's packages only. When the
    interpreter is runyard's own and that is itself a virtual environment, its packages are
    what "inherit" means: add them (after the environment's own) with a ``.pth`` file."""
    if python != current_interpreter() or sys.prefix == sys.base_prefix:
        return
    import site

    inherited = [p for p in site.getsitepackages() if Path(p).is_dir()]
    for site_dir in folder.glob("lib/python*/site-packages"):
        (site_dir / _INHERIT_PTH).write_text("".join(f"{p}\n" for p in inherited))


def _uv_cache(root: Path) -> dict[str, str]:
    """``UV_CACHE_DIR`` to use: unset (uv's own) when that is on ``root``'s filesystem."""
    if os.environ.get("UV_CACHE_DIR") or os.environ.get("UV_NO_CACHE"):
        return {}
    try:
        default = uv.capture(["cache", "dir"], env=uv.uv_environ(), cwd=root, what="uv cache dir")
    except EnvironmentBuildError:
        return {"UV_CACHE_DIR": str(root / cache.UV_CACHE)}
    if _device(Path(default.strip())) == _device(root):
        return {}
    return {"UV_CACHE_DIR": str(root / cache.UV_CACHE)}


def _device(path: Path) -> int | None:
    for p in (path, *path.parents):
        with contextlib.suppress(OSError):
            return p.stat().st_dev
    return None


def _uv_version(folder: Path) -> str | None:
    with contextlib.suppress(OSError):
        for line in (folder / "pyvenv.cfg").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "uv":
                return value.strip()
    return None
