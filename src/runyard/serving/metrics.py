"""Request counts and latencies in Prometheus's text format (``GET /metrics``).

::

    runyard_requests_total{route,model,status}                 counter
    runyard_request_duration_seconds{route,model}              histogram
    runyard_batch_rows{model}                                  histogram (dynamic batching)
    runyard_model_info{model,version,platform,weight}          gauge, 1 per served version

``model`` is ``name@version`` (``-`` for requests that reached no model). With several
workers, each process counts its own requests; scrape each or run one worker per port.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Iterable

__all__ = ["CONTENT_TYPE", "ServerMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

Labels = tuple[tuple[str, str], ...]


class _Histogram:
    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value

    def lines(self, name: str, labels: Labels) -> Iterable[str]:
        running = 0
        for bound, count in zip((*self.buckets, float("inf")), self.counts, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else repr(float(bound))
            yield f"{name}_bucket{_fmt((*labels, ('le', le)))} {running}"
        yield f"{name}_sum{_fmt(labels)} {self.total!r}"
        yield f"{name}_count{_fmt(labels)} {running}"


class ServerMetrics:
    """Thread-safe counters and histograms of one server process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[Labels, int] = defaultdict(int)
        self._latency: dict[Labels, _Histogram] = {}
        self._rows: dict[Labels, _Histogram] = {}
        self._models: list[Labels] = []

    def set_models(self, models: Iterable[dict[str, str]]) -> None:
        with self._lock:
            self._models = [tuple(sorted(m.items())) for m in models]

    def request(self, route: str, model: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(("model", model), ("route", route), ("status", str(status)))] += 1
            key = (("model", model), ("route", route))
            hist = self._latency.get(key)
            if hist is None:
                hist = self._latency[key] = _Histogram(LATENCY_BUCKETS)
            hist.observe(seconds)

    def batch(self, model: str, rows: int) -> None:
        with self._lock:
            key = (("model", model),)
            hist = self._rows.get(key)
            if hist is None:
                hist = self._rows[key] = _Histogram(ROW_BUCKETS)
            hist.observe(rows)

    def render(self) -> str:
        with self._lock:
            out = [
                "# HELP runyard_requests_total Requests answered, by route, model and status.",
                "# TYPE runyard_requests_total counter",
            ]
            out += [
                f"runyard_requests_total{_fmt(k)} {v}" for k, v in sorted(self._requests.items())
            ]
            out += [
                "# HELP runyard_request_duration_seconds Time to answer a request.",
                "# TYPE runyard_request_duration_seconds histogram",
            ]
            for key, hist in sorted(self._latency.items()):
                out += hist.lines("runyard_request_duration_seconds", key)
            out += [
                "# HELP runyard_batch_rows Rows per model call under dynamic batching.",
                "# TYPE runyard_batch_rows histogram",
            ]
            for key, hist in sorted(self._rows.items()):
                out += hist.lines("runyard_batch_rows", key)
            out += [
                "# HELP runyard_model_info The model versions this server serves.",
                "# TYPE runyard_model_info gauge",
            ]
            out += [f"runyard_model_info{_fmt(m)} 1" for m in self._models]
        return "\n".join(out) + "\n"


def _fmt(labels: Labels) -> str:
    if not labels:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
    return "{" + body + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
