"""Rules for the names people give models, aliases and endpoints, and model references.

Pure functions, used by the store (which refuses bad names whatever its caller) and by the
registry, CLI and server (which say why). A name becomes part of artifact keys and URLs, so
it is one path segment of safe characters: no ``/``, no ``..``, no leading dot or dash.

A model reference is ``NAME`` (the latest version), ``NAME@VERSION`` (``digits@3``) or
``NAME@ALIAS`` (``digits@production``); ``NAME@latest`` is the latest version too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runyard.errors import UserError

__all__ = ["LATEST", "ModelRef", "check_alias", "check_name", "parse_model_ref"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
#: The alias every model has: its newest version. It cannot be set.
LATEST = "latest"


def check_name(name: object, what: str = "model") -> str:
    """``name`` if it is a valid model or endpoint name, else :class:`UserError` saying why:
    1 to 128 letters, digits, ``_``, ``.`` and ``-``, starting with a letter or digit."""
    if not isinstance(name, str) or _NAME.fullmatch(name) is None or ".." in name:
        shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:80] + "..."
        raise UserError(
            f"invalid {what} name {shown}: use 1 to 128 letters, digits, '_', '.' and '-', "
            "starting with a letter or digit (no '/', no '..')"
        )
    return name


def check_alias(alias: object) -> str:
    """``alias`` if valid: a letter, then up to 63 letters, digits, ``_``, ``.``, ``-``
    (so that it is never mistaken for a version number); ``latest`` is reserved."""
    if not isinstance(alias, str) or _ALIAS.fullmatch(alias) is None or ".." in alias:
        raise UserError(
            f"invalid alias {alias!r}: use a letter, then up to 63 letters, digits, '_', '.' "
            "and '-'"
        )
    if alias == LATEST:
        raise UserError("'latest' is not an alias one can set: it always means the newest version")
    return alias


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: at most one of ``version`` and ``alias`` is set; neither means
    the latest version."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        return f"{self.name}@{self.alias}" if self.alias else self.name


def parse_model_ref(text: str) -> ModelRef:
    """``NAME``, ``NAME@VERSION``, ``NAME@ALIAS`` or ``NAME@latest`` as a :class:`ModelRef`."""
    if not isinstance(text, str):
        raise UserError(f"expected a model reference NAME[@VERSION|@ALIAS], got {text!r}")
    name, sep, tail = text.partition("@")
    check_name(name)
    if not sep:
        return ModelRef(name)
    if tail.isdigit():
        version = int(tail)
        if version < 1:
            raise UserError(f"{text!r}: model versions start at 1")
        return ModelRef(name, version=version)
    if tail == LATEST:
        return ModelRef(name)
    if not tail:
        raise UserError(f"{text!r}: expected a version or an alias after '@'")
    return ModelRef(name, alias=check_alias(tail))
