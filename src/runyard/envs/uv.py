"""Running uv: finding it, streaming its output, turning its failures into errors.

uv is looked up as the ``uv`` Python package's binary (``uv.find_uv_bin()``), then on ``PATH``
(a pyenv shim costs a shell per call, so the package's binary is preferred). Every call runs
with ``UV_PYTHON_DOWNLOADS=never`` (runyard never downloads interpreters) and without colour.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from runyard.envs.errors import EnvironmentBuildError

Log = Callable[[str], None]

#: How many of uv's last lines an error keeps.
ERROR_LINES = 25


@functools.cache
def uv_binary() -> str:
    """The uv executable; :class:`EnvironmentBuildError` when there is none."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("uv")
    if found is None:
        raise EnvironmentBuildError(
            "uv is not installed: runyard builds environments with uv (pip install uv)"
        )
    return found


def uv_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's variables as uv should see them."""
    env = dict(os.environ)
    env.update({"UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"})
    env.pop("FORCE_COLOR", None)
    env.update(extra or {})
    return env


def run(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log: Log,
    what: str,
    redact: Callable[[str], str] = lambda s: s,
    cancel: threading.Event | None = None,
) -> None:
    """Run ``uv ARGS``, passing each output line (stdout and stderr together) to ``log`` as
    it comes. On failure raise :class:`EnvironmentBuildError` ``"<what> failed"`` with uv's
    last lines. ``redact`` hides credentials in the logged command line. When ``cancel`` is
    set while uv runs, uv is killed and :class:`EnvironmentBuildError` ``"<what> canceled"``
    is raised."""
    if cancel is not None and cancel.is_set():
        raise EnvironmentBuildError(f"{what} canceled")
    log("$ uv " + " ".join(shlex.quote(redact(a)) for a in args))
    tail: deque[str] = deque(maxlen=200)
    with subprocess.Popen(
        [uv_binary(), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        bufsize=1,
        env=dict(env),
        cwd=cwd,
    ) as proc:
        watcher = _kill_when_set(cancel, proc) if cancel is not None else None
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.rstrip("\n")
                tail.append(line)
                log(line)
            code = proc.wait()
        finally:
            if proc.poll() is None:  # interrupted while reading: do not leave uv running
                proc.kill()
            if watcher is not None:
                watcher.join()
    if cancel is not None and cancel.is_set() and code != 0:
        raise EnvironmentBuildError(f"{what} canceled")
    if code != 0:
        raise EnvironmentBuildError(f"{what} failed (uv exit {code}):", output=excerpt(tail))


def _kill_when_set(cancel: threading.Event, proc: subprocess.Popen[str]) -> threading.Thread:
    """A thread that kills ``proc`` as soon as ``cancel`` is set, and ends with ``proc``."""

    def watch() -> None:
        while not cancel.wait(0.05):
            if proc.poll() is not None:
                return
        if proc.poll() is None:
            proc.kill()

    thread = threading.Thread(target=watch, name="runyard-uv-cancel", daemon=True)
    thread.start()
    return thread


def capture(args: Sequence[str], *, env: Mapping[str, str], cwd: Path, what: str) -> str:
    """Run ``uv ARGS`` and return its standard output."""
    done = subprocess.run(
        [uv_binary(), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        env=dict(env),
        cwd=cwd,
        check=False,
    )
    if done.returncode != 0:
        lines = done.stderr.splitlines() or done.stdout.splitlines()
        raise EnvironmentBuildError(
            f"{what} failed (uv exit {done.returncode}):", output=excerpt(lines)
        )
    return done.stdout


def excerpt(lines: Sequence[str] | deque[str]) -> str:
    """uv's own account of a failure: from its last ``error:`` line on (it explains the cause
    below it), else its last lines; at most :data:`ERROR_LINES` lines."""
    items = [line for line in lines if line.strip()]
    start = max((i for i, line in enumerate(items) if line.startswith("error:")), default=None)
    chosen = items[start:] if start is not None else items[-10:]
    return "\n".join(chosen[:ERROR_LINES])
