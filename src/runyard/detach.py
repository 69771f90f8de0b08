"""Starting long-lived runyard processes (supervisors, sweep controllers, endpoint servers)
that outlive the command that starts them."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from runyard.errors import BackendError

#: A shell starts the process in the background and prints its pid: the process is the
#: shell's child, not ours, so it leaves no zombie and no open pipe behind in the caller.
_DETACH = '"$@" </dev/null >>"$0" 2>&1 & echo $!'


def start_detached(argv: Sequence[str], log: Path, *, what: str) -> int:
    """Start ``argv`` in a new session with stdin closed and output appended to ``log``;
    return its pid. ``what`` names it in the error (``a supervisor for run abc``)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", _DETACH, str(log), *argv],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            start_new_session=True,
            close_fds=True,
            timeout=30,
            check=True,
        )
        return int(done.stdout.strip())
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        raise BackendError(f"could not start {what}: {e}") from e
