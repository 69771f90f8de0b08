"""Container images: accepted only where docker or podman is installed and its engine answers.

:func:`container_runtime` finds one (``<tool> info`` must succeed) or refuses with the tool's
own complaint. :func:`container_command` is the argv that runs a command in the image, for
the supervisor; it is a pure function, golden-tested.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from runyard.errors import SpecError

FIELD = "environment.image"
RUNTIMES = ("docker", "podman")
#: Seconds ``<tool> info`` may take.
INFO_TIMEOUT = 20.0


def container_runtime() -> Path:
    """The first of docker, podman whose ``info`` succeeds; :class:`SpecError` on
    ``environment.image`` saying why none can be used."""
    problems: list[str] = []
    for tool in RUNTIMES:
        exe = shutil.which(tool)
        if exe is None:
            continue
        try:
            done = subprocess.run(
                [exe, "info"], capture_output=True, text=True, timeout=INFO_TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            problems.append(f"'{tool} info' failed: {e}")
            continue
        if done.returncode == 0:
            return Path(exe)
        said = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
        said = said or [ln.strip() for ln in done.stdout.splitlines() if ln.strip()]
        problems.append(f"'{tool} info' failed: {said[-1] if said else f'exit {done.returncode}'}")
    if not problems:
        raise SpecError(
            "running in a container image needs docker or podman, and neither is installed",
            field=FIELD,
        )
    raise SpecError(
        "running in a container image needs docker or podman with a working engine; "
        + "; ".join(problems),
        field=FIELD,
    )


def container_command(
    runtime: Path,
    image: str,
    argv: Sequence[str],
    *,
    workdir: Path,
    variables: Mapping[str, str],
    mounts: Sequence[Path] = (),
) -> list[str]:
    """``<runtime> run`` of ``argv`` in ``image``: the working folder and ``mounts`` bound at
    the same paths, the host's network (distributed runs address each other by host), the
    caller's user, and ``variables`` passed by name (their values must be in the runtime's
    own environment, so they never appear on a command line)."""
    cmd = [str(runtime), "run", "--rm", "--init", "--network", "host"]
    if hasattr(os, "getuid"):
        cmd += ["--user", f"{os.getuid()}:{os.getgid()}"]
    for path in dict.fromkeys([workdir, *mounts]):
        cmd += ["--volume", f"{path}:{path}"]
    cmd += ["--workdir", str(workdir)]
    for name in sorted(variables):
        cmd += ["--env", name]
    return [*cmd, image, *argv]
