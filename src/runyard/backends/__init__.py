"""Compute backends, looked up by name: ``local`` (this machine); ``ray`` later."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from runyard.backends.base import Backend
from runyard.errors import UserError

if TYPE_CHECKING:
    from runyard.workspace import Resources

#: name -> "module:Class"; imported only when used (a backend may need an extra).
_BACKENDS: dict[str, str] = {
    "local": "runyard.backends.local:LocalBackend",
}


def get_backend(name: str, resources: Resources) -> Backend:
    """The backend for compute target ``name``, bound to an open workspace.

    Raises :class:`~runyard.errors.UserError` listing the known names for an unknown one."""
    target = _BACKENDS.get(name)
    if target is None:
        known = ", ".join(sorted(_BACKENDS))
        raise UserError(f"unknown compute target {name!r} (known: {known})")
    module, _, cls = target.partition(":")
    factory = getattr(importlib.import_module(module), cls)
    backend: Backend = factory(resources)
    return backend


def backend_names() -> list[str]:
    return sorted(_BACKENDS)


__all__ = ["Backend", "backend_names", "get_backend"]
