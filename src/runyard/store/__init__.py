"""Stores: the ``Store`` port and its implementations, chosen by URL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runyard.store.base import Store

if TYPE_CHECKING:
    pass


def open_store(url: str) -> Store:
    """Open the store at ``url`` (``sqlite:///path/runyard.db`` or ``postgresql://...``),
    creating or migrating its schema to the current version."""
    from runyard.store.sql import SqlStore

    return SqlStore.open(url)


__all__ = ["Store", "open_store"]
