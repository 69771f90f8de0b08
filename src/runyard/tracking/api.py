"""The in-job API: what a training script calls, re-exported as ``runyard.log_metric`` etc.

Inside a runyard run the supervisor sets ``RUNYARD_EVENTS`` (the events file),
``RUNYARD_OUTPUTS``, ``RUNYARD_RUN_ID`` and ``RUNYARD_EXPERIMENT``; every call appends one
record to the events file (see :mod:`runyard.tracking.events`) and never touches a network
or a database. The process rank comes from ``RUNYARD_RANK`` (set by runyard's launcher),
else ``RANK``, else ``OMPI_COMM_WORLD_RANK``, else ``PMI_RANK``, else 0.

Outside runyard the same script runs unchanged: the first call creates
``./runyard-offline/<time>-<id>/`` (``events.log`` and ``outputs/``; ``RUNYARD_OFFLINE_DIR``
names another parent folder), says so once on stderr, and logs there.

The environment is read once, on the first call, not at import.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, SupportsFloat

from runyard.tracking.tracker import RunInfo, Tracker

__all__ = [
    "RunInfo",
    "active_run",
    "get_run",
    "log_file",
    "log_image",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_table",
    "log_text",
    "register_model",
    "set_tag",
    "set_tags",
    "should_stop",
]

RANK_VARIABLES = ("RUNYARD_RANK", "RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")
OFFLINE_DIR = "runyard-offline"
#: Seconds between two looks for the stop file.
STOP_CHECK_INTERVAL = 0.5

_tracker: Tracker | None = None
#: Re-entrant: a signal handler that logs (a SIGTERM handler saving its state) may run while
#: the main thread is inside :func:`_start`, in that same thread.
_start_lock = threading.RLock()


def log_metric(key: str, value: SupportsFloat, step: int | None = None) -> None:
    """Log one value of metric ``key``. ``value`` is any real number (int, float, bool,
    numpy scalar, 0-d tensor); NaN and infinities are stored as such. ``step=None`` takes
    one more than the previous step of ``key`` in this process (0 first)."""
    (_tracker or _start()).log_metric(key, value, step)


def log_metrics(metrics: Mapping[str, SupportsFloat], step: int | None = None) -> None:
    """Log several metrics at once, with one timestamp (and ``step`` for all if given)."""
    (_tracker or _start()).log_metrics(metrics, step)


def log_param(key: str, value: Any) -> None:
    """Record a parameter of the run; stored as ``str(value)``."""
    (_tracker or _start()).log_params({key: value})


def log_params(params: Mapping[str, Any]) -> None:
    (_tracker or _start()).log_params(params)


def set_tag(key: str, value: Any) -> None:
    """Set a tag on the run; stored as ``str(value)``."""
    (_tracker or _start()).set_tags({key: value})


def set_tags(tags: Mapping[str, Any]) -> None:
    (_tracker or _start()).set_tags(tags)


def log_text(text: str, name: str) -> str:
    """Write ``text`` to ``outputs/<name>``; returns the path relative to outputs."""
    return (_tracker or _start()).log_text(text, name)


def log_table(name: str, data: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]]) -> str:
    """Store a table (a mapping of column to values, or a list of row mappings) as
    ``outputs/tables/<name>.json``; returns the path relative to outputs."""
    return (_tracker or _start()).log_table(name, data)


def log_image(name: str, image: Any) -> str:
    """Store an image as ``outputs/images/<name>``: the path of an image file, or a
    matplotlib figure (saved as PNG unless ``name`` says otherwise)."""
    return (_tracker or _start()).log_image(name, image)


def log_file(path: str | os.PathLike[str], name: str | None = None) -> list[str]:
    """Copy a file or folder into ``outputs/`` (as ``name``, default its own name)."""
    return (_tracker or _start()).log_file(Path(path), name)


def register_model(
    name: str,
    path: str | os.PathLike[str],
    *,
    framework: str | None = None,
    tags: Mapping[str, Any] | None = None,
    description: str | None = None,
    properties: Mapping[str, Any] | None = None,
) -> None:
    """Register ``path`` (a file or folder in the outputs folder) as the next version of
    model ``name`` when the run ends successfully, with the run's params and final metrics
    as its lineage. ``path`` may also be given as ``outputs/model.onnx``. ``framework`` is
    detected from the files when not given. Checked now (name, files); registered by runyard
    after the run's outputs are stored. Outside runyard nothing is registered."""
    tracker = _tracker or _start()
    tracker.register_model(
        name,
        Path(path),
        framework=framework,
        tags=tags,
        description=description,
        properties=properties,
    )
    if tracker.info.offline:
        print(
            f"runyard: offline run; model {name!r} is not registered (later: "
            f"runyard model register {name} --path {tracker.info.outputs / Path(path).name})",
            file=sys.stderr,
        )


def get_run() -> RunInfo:
    """The run this process logs to (starting an offline one outside runyard)."""
    return (_tracker or _start()).info


active_run = get_run


class _StopFile:
    """Whether ``RUNYARD_STOP_FILE`` exists, looked at most every ``STOP_CHECK_INTERVAL``."""

    def __init__(self) -> None:
        self.stop = False
        self.checked_at = -STOP_CHECK_INTERVAL

    def __call__(self) -> bool:
        if self.stop:
            return True
        now = time.monotonic()
        if now - self.checked_at < STOP_CHECK_INTERVAL:
            return False
        self.checked_at = now
        stop_file = os.environ.get("RUNYARD_STOP_FILE")
        if stop_file and os.environ.get("RUNYARD_EVENTS"):
            self.stop = Path(stop_file).exists()
        return self.stop


_stop_file = _StopFile()


def should_stop() -> bool:
    """True once runyard asked this run to stop early (a sweep's early-termination policy):
    the file named by ``RUNYARD_STOP_FILE`` exists. Looks at most every 0.5 s, so it is
    cheap to call every step. Always False outside runyard."""
    return _stop_file()


def _start() -> Tracker:
    global _tracker  # noqa: PLW0603 - the process's one tracker, set once
    with _start_lock:
        if _tracker is None:
            _tracker = Tracker(_run_from_environment())
        return _tracker


def _run_from_environment() -> RunInfo:
    env = os.environ
    rank = _rank(env)
    events = env.get("RUNYARD_EVENTS")
    if not events:
        return _offline_run(env, rank)
    events_path = Path(events).absolute()
    events_path.parent.mkdir(parents=True, exist_ok=True)
    return RunInfo(
        id=env.get("RUNYARD_RUN_ID") or events_path.parent.name,
        experiment=env.get("RUNYARD_EXPERIMENT") or "Default",
        outputs=Path(env.get("RUNYARD_OUTPUTS") or "outputs").absolute(),
        events=events_path,
        rank=rank,
        offline=False,
    )


def _rank(env: Mapping[str, str]) -> int:
    for name in RANK_VARIABLES:
        value = env.get(name, "").strip()
        if value:
            try:
                return int(value)
            except ValueError:
                continue
    return 0


def _offline_run(env: Mapping[str, str], rank: int) -> RunInfo:
    parent = Path(env.get("RUNYARD_OFFLINE_DIR") or OFFLINE_DIR).absolute()
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(3).hex()}"
    folder = parent / run_id
    (folder / "outputs").mkdir(parents=True)
    print(f"runyard: not inside a runyard run; logging offline to {folder}", file=sys.stderr)
    return RunInfo(
        id=run_id,
        experiment="offline",
        outputs=folder / "outputs",
        events=folder / "events.log",
        rank=rank,
        offline=True,
    )
