"""The model registry (:class:`ModelRegistry`) on top of the Store and ArtifactStore, and
the bookkeeping of endpoints that serve registered models.

Kept import-light: :mod:`runyard.registry.frameworks` is used by training processes (the
in-job ``runyard.register_model``), so the registry itself is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runyard.registry.models import MODELS_PREFIX, ModelRegistry, model_key

__all__ = ["MODELS_PREFIX", "ModelRegistry", "model_key"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from runyard.registry import models

        return getattr(models, name)
    raise AttributeError(f"module 'runyard.registry' has no attribute {name!r}")
