"""A :class:`Tracker` logs one process's records for one run: it validates keys and values,
numbers steps, writes files into the outputs folder and appends records through an
:class:`~runyard.tracking.events.EventWriter`.

The module-level functions in :mod:`runyard.tracking.api` use one tracker per process, found
from the environment; a tracker can also be made directly for a given events file.
"""

from __future__ import annotations

import operator
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

from runyard.errors import InvalidMetric
from runyard.tracking import outputs
from runyard.tracking.events import EventWriter, ModelRequest

__all__ = ["MAX_KEY_LENGTH", "RunInfo", "Tracker", "check_key"]

MAX_KEY_LENGTH = 250

_BAD_KEY_CHAR = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: Keys already found valid; checked once, then a set lookup on the hot path. Shared by
#: metric, param and tag keys (the rules are the same).
_good_keys: set[str] = set()
_time = time.time


@dataclass(frozen=True)
class RunInfo:
    """The run a process logs to."""

    id: str
    experiment: str
    #: The outputs folder: files there are stored with the run.
    outputs: Path
    #: The events file records are appended to.
    events: Path
    #: The process rank in a distributed run (0 otherwise).
    rank: int
    #: True when logging outside runyard, to a local folder.
    offline: bool


class Tracker:
    """Logs to one events file and outputs folder as one rank.

    Thread-safe: every record is one ``os.write``. Steps numbered automatically come from one
    counter per key, so concurrent threads never get the same step for the same key.
    """

    __slots__ = ("_rank", "_steps", "_write_metric", "info", "writer")

    def __init__(self, info: RunInfo, writer: EventWriter | None = None) -> None:
        self.info = info
        self.writer = writer if writer is not None else EventWriter(info.events)
        self._rank = info.rank
        self._write_metric = self.writer.metric
        #: key -> the counter giving its next automatic step
        self._steps: dict[str, count[int]] = {}

    # -- metrics -------------------------------------------------------------------------

    def log_metric(self, key: str, value: Any, step: int | None = None) -> None:
        """Append one point. ``step=None`` takes one more than the previous step logged for
        ``key`` by this tracker (0 first)."""
        try:
            if key not in _good_keys:
                check_key(key, "metric")
        except TypeError:  # unhashable
            check_key(key, "metric")
        if type(value) is not float:
            value = to_float(key, value)
        if step is None:
            counter = self._steps.get(key)
            if counter is None:
                counter = self._steps.setdefault(key, count())
            step = next(counter)
        else:
            step = self._explicit_step(key, step)
        self._write_metric(key, value, step, _time(), self._rank)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Append one point per key, all with the same time; nothing is written unless every
        key and value is valid."""
        if not isinstance(metrics, Mapping):
            raise InvalidMetric(
                f"log_metrics expects a mapping of key to value, got {type(metrics).__name__}"
            )
        points = []
        for key, value in metrics.items():
            check_key(key, "metric")
            points.append((key, value if type(value) is float else to_float(key, value)))
        if step is not None and type(step) is not int:
            step = _as_step(", ".join(metrics), step)
        steps = self._steps
        rows = []
        for key, value in points:
            if step is None:
                counter = steps.get(key)
                if counter is None:
                    counter = steps.setdefault(key, count())
                rows.append((key, value, next(counter)))
            else:
                steps[key] = count(step + 1)
                rows.append((key, value, step))
        self.writer.metrics(rows, _time(), self._rank)

    def _explicit_step(self, key: str, step: Any) -> int:
        if type(step) is not int:
            step = _as_step(key, step)
        self._steps[key] = count(step + 1)
        return step

    # -- params and tags -----------------------------------------------------------------

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record params; values are stored as ``str(value)``."""
        self.writer.params(_str_dict(params, "param"), self._rank)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Record tags; values are stored as ``str(value)``."""
        self.writer.tags(_str_dict(tags, "tag"), self._rank)

    # -- files ---------------------------------------------------------------------------

    def log_text(self, text: str, name: str) -> str:
        """Write ``text`` to ``outputs/<name>``; return the path relative to outputs."""
        rel = outputs.write_text(self.info.outputs, name, text)
        self.writer.artifact(rel, "text", self._rank)
        return rel

    def log_table(self, name: str, data: Mapping[str, Sequence[Any]] | Sequence[Any]) -> str:
        """Write a table (a mapping of column name to values, or a list of row mappings) as
        JSON ``{"columns": [...], "data": [[...], ...]}`` to ``outputs/tables/<name>.json``."""
        rel = outputs.write_table(self.info.outputs, name, data)
        self.writer.artifact(rel, "table", self._rank)
        return rel

    def log_image(self, name: str, image: Any) -> str:
        """Store an image under ``outputs/images/<name>``: a path to an image file (copied),
        or anything with ``savefig`` (a matplotlib figure; PNG unless ``name`` has another
        extension matplotlib knows)."""
        rel = outputs.write_image(self.info.outputs, name, image)
        self.writer.artifact(rel, "image", self._rank)
        return rel

    def log_file(self, path: str | Path, name: str | None = None) -> list[str]:
        """Copy a file (or a folder, recursively) to ``outputs/<name>`` (default: its own
        name); return the paths recorded, relative to outputs."""
        rels = outputs.copy_file(self.info.outputs, Path(path), name)
        for rel in rels:
            self.writer.artifact(rel, "file", self._rank)
        return rels

    # -- models --------------------------------------------------------------------------

    def register_model(self, name: str, path: str | Path, **options: Any) -> ModelRequest:
        """Ask for ``path`` (inside the outputs folder) to be registered as model ``name``
        when the run succeeds; see :func:`runyard.tracking.models.model_request`."""
        from runyard.tracking.models import model_request  # only scripts that register pay

        request = model_request(self.info.outputs, name, path, **options)
        self.writer.register_model(request, self._rank)
        return request

    def close(self) -> None:
        self.writer.close()


def check_key(key: object, what: str) -> None:
    """Raise :class:`InvalidMetric` naming ``key`` unless it is a valid metric, param or
    tag key: a non-empty string of at most 250 characters, without control characters
    (tabs, newlines), not starting with ``/``. Valid keys are remembered."""
    if not isinstance(key, str):
        raise InvalidMetric(f"{what} key {key!r} ({type(key).__name__}) is not a string")
    if key in _good_keys:
        return
    problem = None
    if not key:
        problem = "must not be empty"
    elif len(key) > MAX_KEY_LENGTH:
        problem = f"is {len(key)} characters long, more than {MAX_KEY_LENGTH}"
    elif _BAD_KEY_CHAR.search(key):
        problem = "must not contain control characters (tab, newline, ...)"
    elif key.startswith("/"):
        problem = "must not start with '/'"
    if problem:
        shown = key if len(key) <= 60 else key[:60] + "..."
        raise InvalidMetric(f"{what} key {shown!r} {problem}")
    _good_keys.add(str(key))


def to_float(key: str, value: Any) -> float:
    """``value`` as a float, for any real number (int, bool, numpy scalar, 0-d tensor: any
    object with ``__float__``); :class:`InvalidMetric` naming ``key`` otherwise. NaN and
    infinities are kept."""
    if not isinstance(value, (str, bytes, bytearray)) and hasattr(value, "__float__"):
        try:
            return float(value)
        except (TypeError, ValueError, OverflowError, RuntimeError):
            pass  # e.g. a tensor with several elements
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:60] + "..."
    raise InvalidMetric(f"metric {key!r}: value {shown} ({type(value).__name__}) is not a number")


def _as_step(key: str, step: Any) -> int:
    """``step`` as an int (numpy integers too); bools and floats are refused."""
    if not isinstance(step, bool):
        try:
            return operator.index(step)
        except TypeError:
            pass
    raise InvalidMetric(f"metric {key!r}: step {step!r} ({type(step).__name__}) is not an integer")


def _str_dict(values: Mapping[str, Any], what: str) -> dict[str, str]:
    if not isinstance(values, Mapping):
        raise InvalidMetric(
            f"{what}s must be a mapping of key to value, got {type(values).__name__}"
        )
    for key in values:
        check_key(key, what)
    return {key: str(value) for key, value in values.items()}
