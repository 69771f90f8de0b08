"""runyard: run unmodified training scripts as tracked, reproducible runs.

Inside a training script::

    import runyard

    runyard.log_params({"lr": 0.01})
    for step in range(steps):
        runyard.log_metric("loss", loss, step)

Importing ``runyard`` loads the in-job API only (standard library, no database or CLI
packages), so it is cheap in every training process. The SDK's :class:`Workspace` is
imported on first use (``from runyard import Workspace``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runyard.tracking.api import (
    RunInfo,
    active_run,
    get_run,
    log_file,
    log_image,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    log_table,
    log_text,
    register_model,
    set_tag,
    set_tags,
    should_stop,
)

__all__ = [
    "RunInfo",
    "Workspace",
    "__version__",
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


if TYPE_CHECKING:
    from runyard.client import Workspace


def __getattr__(name: str) -> Any:
    # Looked up on first use, so that training scripts never pay for the SDK's imports
    # (SQLAlchemy, YAML, ...) or for importlib.metadata.
    if name == "Workspace":
        from runyard.client import Workspace

        return Workspace
    if name == "__version__":
        from importlib.metadata import version

        return version("runyard")
    raise AttributeError(f"module 'runyard' has no attribute {name!r}")
