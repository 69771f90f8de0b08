"""The events file: what a training process logs, one record per line, append-only.

The in-job API (:mod:`runyard.tracking.api`) appends records with :class:`EventWriter`; the
run supervisor tails the file with :func:`read_events` and ingests what it reads in batches.

Format (UTF-8, one record per ``\\n``-terminated line)::

    m\\t<rank>\\t<time>\\t<step>\\t<key>\\t<value>             a metric point (the hot path)
    {"kind":"params","rank":0,"time":...,"data":{"lr":"0.1"}}     params (values are strings)
    {"kind":"tags","rank":0,"time":...,"data":{"k":"v"}}          tags
    {"kind":"artifact","rank":0,"time":...,"path":"p","type":"t"}  a file under outputs/
    {"kind":"register_model","rank":0,"time":...,"name":"digits","path":"model.onnx",
     "framework":null,"framework_version":null,"description":null,"tags":{},"properties":{}}
                                        register outputs/<path> as a model when the run succeeds

``time`` is seconds since the epoch and ``value`` is Python's ``repr`` of a float, so it
round-trips exactly and writes ``nan``, ``inf`` and ``-inf``, which ``float()`` reads back.
Metric keys never contain tabs, newlines or other control characters (the API refuses them);
JSON records escape them.

Durability: the writer opens the file once with ``O_APPEND`` and writes every record with a
single ``os.write`` of a whole line and no user-space buffer, so once a logging call returns
the record is in the kernel's page cache: a crash or ``kill -9`` of the training process
loses nothing logged before it, and records from several processes (ranks) appending to the
same file never interleave within a line. The reader still tolerates a partial last line (a
power loss, a full disk) by leaving it for the next read, and skips a line it cannot parse
with a warning instead of failing.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runyard.records import MetricPoint

__all__ = ["ARTIFACT_KINDS", "EventBatch", "EventWriter", "ModelRequest", "read_events"]

log = logging.getLogger(__name__)
_time = time.time

#: What an artifact record may say a file is.
ARTIFACT_KINDS = frozenset({"text", "table", "image", "file"})

#: Corrupt lines reported one by one per :func:`read_events` call; the rest are counted.
_MAX_REPORTED = 5
#: Bytes read at a time when looking for the end of a line longer than ``max_bytes``.
_CHUNK = 1 << 16


class EventWriter:
    """Appends records to an events file. Safe to share between threads, and between
    processes that each open the same path (every record is one ``os.write``).

    Keys must be free of tabs, newlines and other control characters; the API checks them
    (:func:`runyard.tracking.tracker.check_key`) before calling. Values are written as
    ``repr(float(value))``.
    """

    __slots__ = ("_fd", "path")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def metric(self, key: str, value: float, step: int, timestamp: float, rank: int) -> None:
        if type(value) is not float:  # repr(numpy.float64(1.0)) is "np.float64(1.0)"
            value = float(value)
        data = f"m\t{rank}\t{timestamp!r}\t{step}\t{key}\t{value!r}\n".encode()
        if (n := os.write(self._fd, data)) != len(data):
            self._write_rest(data, n)

    def metrics(
        self, points: Iterable[tuple[str, float, int]], timestamp: float, rank: int
    ) -> None:
        """Several (key, value, step) points with one time, in one write."""
        head = f"m\t{rank}\t{timestamp!r}\t"
        data = "".join([f"{head}{step}\t{key}\t{float(v)!r}\n" for key, v, step in points])
        self._write(data.encode())

    def params(self, params: dict[str, Any], rank: int, timestamp: float | None = None) -> None:
        data = {str(k): str(v) for k, v in params.items()}
        self._record({"kind": "params", "rank": rank, "time": timestamp, "data": data})

    def tags(self, tags: dict[str, Any], rank: int, timestamp: float | None = None) -> None:
        data = {str(k): str(v) for k, v in tags.items()}
        self._record({"kind": "tags", "rank": rank, "time": timestamp, "data": data})

    def artifact(self, path: str, kind: str, rank: int, timestamp: float | None = None) -> None:
        """Record that ``path`` (``/``-separated, relative to the outputs folder) was
        written; ``kind`` is one of :data:`ARTIFACT_KINDS`."""
        if kind not in ARTIFACT_KINDS:
            raise ValueError(f"artifact kind {kind!r} is not one of {sorted(ARTIFACT_KINDS)}")
        self._record(
            {"kind": "artifact", "rank": rank, "time": timestamp, "path": path, "type": kind}
        )

    def register_model(
        self, request: ModelRequest, rank: int, timestamp: float | None = None
    ) -> None:
        """Ask for ``outputs/<request.path>`` to be registered as a model at the end of a
        successful run."""
        self._record(
            {"kind": "register_model", "rank": rank, "time": timestamp, **request.to_json()}
        )

    def close(self) -> None:
        """Close the file. Idempotent; writing afterwards raises ``OSError``."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _record(self, record: dict[str, Any]) -> None:
        if record["time"] is None:
            record["time"] = _time()
        self._write((json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode())

    def _write(self, data: bytes) -> None:
        if (n := os.write(self._fd, data)) != len(data):
            self._write_rest(data, n)

    def _write_rest(self, data: bytes, n: int) -> None:
        # Regular files only write short on a full disk or a signal; finish the line so the
        # file stays line-aligned (or raise, e.g. ENOSPC, and the reader skips the stub).
        view = memoryview(data)
        while n < len(data):
            n += os.write(self._fd, view[n:])


@dataclass(frozen=True)
class ModelRequest:
    """A model a run asked to register (``runyard.register_model``) when it succeeds.
    ``path`` is ``/``-separated, relative to the outputs folder."""

    name: str
    path: str
    framework: str | None = None
    framework_version: str | None = None
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "framework": self.framework,
            "framework_version": self.framework_version,
            "description": self.description,
            "tags": self.tags,
            "properties": self.properties,
        }

    @classmethod
    def from_json(cls, rec: dict[str, Any]) -> ModelRequest | None:
        """The request in a record, or None if the record is not a valid one."""
        name, path = rec.get("name"), rec.get("path")
        optional = [rec.get(k) for k in ("framework", "framework_version", "description")]
        maps = [rec.get("tags") or {}, rec.get("properties") or {}]
        if not (isinstance(name, str) and name and isinstance(path, str) and path):
            return None
        if not all(v is None or isinstance(v, str) for v in optional):
            return None
        if not all(isinstance(m, dict) for m in maps):
            return None
        framework, framework_version, description = optional
        tags, properties = ({str(k): str(v) for k, v in m.items()} for m in maps)
        return cls(name, path, framework, framework_version, description, tags, properties)


@dataclass
class EventBatch:
    """The records of a stretch of an events file, in file order."""

    metrics: list[MetricPoint] = field(default_factory=list)
    #: Later values of the same key win.
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    #: (path relative to the outputs folder, kind)
    artifacts: list[tuple[str, str]] = field(default_factory=list)
    #: Models to register when the run succeeds, in the order asked.
    models: list[ModelRequest] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.metrics or self.params or self.tags or self.artifacts or self.models)


def read_events(path: Path, offset: int, *, max_bytes: int | None = None) -> tuple[EventBatch, int]:
    """Parse the complete lines of the events file at ``path`` from byte ``offset``.

    Returns the records and the offset just after the last complete line read; a partial
    last line is left for the next call. ``max_bytes`` bounds how much is read (except that
    a single line longer than it is still read whole). A missing file gives an empty batch
    and the same offset. A line that cannot be parsed is skipped with a warning on the
    ``runyard.tracking.events`` logger; this function does not raise for bad content.
    """
    batch = EventBatch()
    data = _read_complete_lines(path, offset, max_bytes)
    if not data:
        return batch, offset
    try:
        text = data.decode()
    except UnicodeDecodeError:
        text = _decode_lines(data, path, offset)
    gc_was_on = gc.isenabled()
    gc.disable()  # a batch allocates ~2 tracked objects per line and frees none: GC runs
    try:  # during the loop would only traverse them, cutting throughput by about 40%
        bad = _parse(text, batch)
    finally:
        if gc_was_on:
            gc.enable()
    if bad:
        _report(bad, path, offset)
    return batch, offset + len(data)


def _read_complete_lines(path: Path, offset: int, max_bytes: int | None) -> bytes:
    """Bytes from ``offset`` up to and including the last ``\\n`` (b"" if none)."""
    try:
        f = open(path, "rb")  # noqa: PTH123, SIM115 - closed below; a missing file is normal
    except FileNotFoundError:
        return b""
    with f:
        f.seek(offset)
        if max_bytes is None:
            data = f.read()
            return data[: data.rfind(b"\n") + 1]
        data = f.read(max(1, max_bytes))
        end = data.rfind(b"\n")
        while end < 0:  # one line longer than max_bytes: read on to its end
            more = f.read(_CHUNK)
            if not more:
                return b""
            end = more.find(b"\n")
            data += more
            if end >= 0:
                end = len(data) - len(more) + end
        return data[: end + 1]


def _decode_lines(data: bytes, path: Path, offset: int) -> str:
    """Decode line by line; a line that is not UTF-8 becomes empty (and is reported)."""
    kept = []
    for n, raw in enumerate(data.split(b"\n")):
        try:
            kept.append(raw.decode())
        except UnicodeDecodeError:
            kept.append("")
            log.warning(
                "events file %s: skipping line %d of the read from byte %d: not UTF-8: %.120r",
                path,
                n + 1,
                offset,
                raw,
            )
    return "\n".join(kept)


def _parse(text: str, batch: EventBatch) -> list[tuple[int, str]]:
    """Add the records in ``text`` to ``batch``; return (line number, line) of bad lines."""
    bad: list[tuple[int, str]] = []
    add_metric = batch.metrics.append
    for n, line in enumerate(text.split("\n"), 1):
        if line[:2] == "m\t":
            try:  # a wrong field count, step, rank or number: ValueError
                _, rank, stamp, step, key, value = line.split("\t")
                if key:
                    add_metric(MetricPoint(key, float(value), int(step), float(stamp), int(rank)))
                    continue
            except ValueError:
                pass
        elif line[:1] == "{":
            if _parse_json(line, batch):
                continue
        elif not line:
            continue
        bad.append((n, line))
    return bad


def _parse_json(line: str, batch: EventBatch) -> bool:
    try:
        rec = json.loads(line)
    except ValueError:
        return False
    if not isinstance(rec, dict):
        return False
    kind = rec.get("kind")
    if kind in ("params", "tags"):
        data = rec.get("data")
        if not isinstance(data, dict):
            return False
        target = batch.params if kind == "params" else batch.tags
        target.update((str(k), str(v)) for k, v in data.items())
        return True
    if kind == "artifact":
        path, typ = rec.get("path"), rec.get("type")
        if not (isinstance(path, str) and path and typ in ARTIFACT_KINDS):
            return False
        batch.artifacts.append((path, typ))
        return True
    if kind == "register_model":
        request = ModelRequest.from_json(rec)
        if request is None:
            return False
        batch.models.append(request)
        return True
    return False


def _report(bad: list[tuple[int, str]], path: Path, offset: int) -> None:
    for lineno, line in bad[:_MAX_REPORTED]:
        log.warning(
            "events file %s: skipping unreadable line %d of the read from byte %d: %.120r",
            path,
            lineno,
            offset,
            line,
        )
    if len(bad) > _MAX_REPORTED:
        log.warning(
            "events file %s: skipped %d more unreadable lines of the read from byte %d",
            path,
            len(bad) - _MAX_REPORTED,
            offset,
        )
