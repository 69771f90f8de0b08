"""Registering the models a run asked for (``runyard.register_model``) once it succeeded.

Called while the run is Finalizing, after its outputs are stored: each request registers the
stored ``outputs/<path>`` (so the version holds exactly what the run produced), with the
run's params and final metrics as lineage. A request made by several ranks, or twice, is
registered once. What happened is written to the run's log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from runyard.errors import RunyardError
from runyard.records import ModelVersion
from runyard.tracking.events import ModelRequest
from runyard.workspace import Resources

#: The run tag listing the versions a run registered (``digits@3, other@1``).
MODELS_TAG = "runyard.models"


def register_requested(
    resources: Resources,
    run_id: str,
    requests: Sequence[ModelRequest],
    log: Path,
    echo: Callable[[str], None],
) -> str | None:
    """Register every requested model; None when all were, else why the first one failed
    (the versions registered before it stay)."""
    from runyard.registry import ModelRegistry

    registry = ModelRegistry(resources)
    done: list[ModelVersion] = []
    failure = None
    seen: set[tuple[str, str]] = set()
    for r in requests:
        if (r.name, r.path) in seen:
            continue
        seen.add((r.name, r.path))
        try:
            mv = registry.register(
                r.name,
                f"outputs/{r.path}",
                run_id=run_id,
                framework=r.framework,
                framework_version=r.framework_version,
                description=r.description,
                tags=r.tags,
                properties=r.properties,
            )
        except RunyardError as e:
            failure = f"model registration failed: {r.name} from outputs/{r.path}: {e}"
            _say(log, echo, failure)
            break
        done.append(mv)
        _say(log, echo, f"registered model {mv.ref} from outputs/{r.path}")
    if done:
        resources.store.set_tags(run_id, {MODELS_TAG: ", ".join(v.ref for v in done)})
    return failure


def _say(log: Path, echo: Callable[[str], None], message: str) -> None:
    line = f"[runyard] {message}"
    with log.open("a", encoding="utf-8") as f:
        f.write(line + "\n")
    echo(line)
