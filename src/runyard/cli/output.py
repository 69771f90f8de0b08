"""Turning records into what people and scripts read: JSON, CSV and tables.

JSON output is stable for scripts: keys are as below, times are seconds since the epoch, and
non-finite metric values are the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``."""

from __future__ import annotations

import json
import math
import time
from typing import Any

from runyard.records import MetricPoint, Run


def number(v: float) -> float | str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def run_dict(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "experiment": run.experiment,
        "name": run.name,
        "status": run.status.value,
        "compute": run.compute,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "duration": run.duration,
        "exit_code": run.exit_code,
        "reason": run.reason,
        "error": run.error,
        "parent_id": run.parent_id,
        "snapshot_id": run.snapshot_id,
        "git": run.git,
        "tags": run.tags,
        "params": run.params,
        "metrics": {k: number(v) for k, v in run.metrics.items()},
    }


def to_json(data: Any, *, indent: int | None = 2) -> str:
    return json.dumps(data, indent=indent)


def run_to_json(run: Run) -> str:
    return to_json(run_dict(run))


def point_dict(p: MetricPoint) -> dict[str, Any]:
    return {"step": p.step, "value": number(p.value), "timestamp": p.timestamp, "rank": p.rank}


def fmt_value(v: float) -> str:
    if math.isnan(v) or math.isinf(v):
        return str(v)
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.6g}"


def fmt_time(t: float | None) -> str:
    if t is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def fmt_size(n: int) -> str:
    """``512 B``, ``1.5 KB``, ``3.2 MB``, ``1.0 GB`` (GB the largest unit)."""
    if n < 1024:
        return f"{n} B"
    size = n / 1024
    for unit in ("KB", "MB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


STATUS_STYLE = {
    "Completed": "green",
    "Failed": "red",
    "Canceled": "yellow",
    "Running": "cyan",
    "Queued": "dim",
}
