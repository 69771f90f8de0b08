"""Cost of one ``runyard.log_metric`` call, the events reader's throughput, and MLflow's
``log_metric`` (synchronous and ``synchronous=False``) measured in the same run for reference.

runyard is measured inside a simulated run (``RUNYARD_EVENTS`` etc. pointing into a temporary
folder), exactly as a training script started by the supervisor would call it:

- batches: ``perf_counter_ns`` around each batch of 1,000 calls; the median, p99 and mean of
  the per-call cost of each batch (timer cost spread over 1,000 calls, i.e. negligible);
- per call: ``perf_counter_ns`` before and after every single call; median and p99 (these
  include one timer read, printed separately);
- the reader: ``read_events`` over the file just written, in reads of at most 1, 8 and
  64 MiB (the supervisor tails the file with a bound), in metric lines per second.

MLflow (when ``import mlflow`` works; it is not a runyard dependency) logs against a SQLite
tracking store and a file store in the same temporary folder, with fewer calls since each
synchronous call commits a transaction or rewrites files.

    python bench/bench_logging.py [--calls 1000000] [--mlflow-calls 1000]
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BATCH = 1000
TARGET_US = 5.0
READER_TARGET = 500_000


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timer_cost_ns() -> float:
    clock = time.perf_counter_ns
    deltas = []
    for _ in range(100_000):
        t0 = clock()
        deltas.append(clock() - t0)
    return statistics.median(deltas)


def batched(log: Callable[[int], None], calls: int) -> list[float]:
    """Per-call cost (ns) of each batch of BATCH calls."""
    clock = time.perf_counter_ns
    means = []
    for start in range(0, calls, BATCH):
        t0 = clock()
        for i in range(start, start + BATCH):
            log(i)
        means.append((clock() - t0) / BATCH)
    return means


def per_call(log: Callable[[int], None], calls: int) -> list[int]:
    clock = time.perf_counter_ns
    deltas = [0] * calls
    for i in range(calls):
        t0 = clock()
        log(i)
        deltas[i] = clock() - t0
    return deltas


def report(label: str, ns: list[float] | list[int]) -> None:
    print(
        f"  {label:<34} median {statistics.median(ns) / 1000:6.2f} us   "
        f"p99 {quantile(list(ns), 0.99) / 1000:6.2f} us   "
        f"mean {statistics.fmean(ns) / 1000:6.2f} us"
    )


def bench_runyard(tmp: Path, calls: int) -> tuple[float, Path]:
    """Returns the median per-call cost (ns, batched, explicit step) and the events file."""
    events = tmp / "run" / "events.log"
    os.environ.update(
        RUNYARD_RUN_ID="bench",
        RUNYARD_EXPERIMENT="bench",
        RUNYARD_EVENTS=str(events),
        RUNYARD_OUTPUTS=str(tmp / "outputs"),
    )
    import runyard

    log_metric, log_metrics = runyard.log_metric, runyard.log_metrics
    values = [1.0 / (i + 1) for i in range(10_000)]  # realistic, full-length float reprs

    def explicit(i: int) -> None:
        log_metric("train/loss", values[i % 10_000], i)

    def automatic(i: int) -> None:
        log_metric("train/acc", values[i % 10_000])

    def three(i: int) -> None:
        log_metrics({"a": values[i % 10_000], "b": 0.5, "c": 2.0}, step=i)

    batched(explicit, 10 * BATCH)  # warm up: open the file, validate the key
    size_before = events.stat().st_size

    print(f"runyard.log_metric, {calls:,} calls each (events file on {events.parent})")
    explicit_batches = batched(explicit, calls)
    lines_written = calls
    report("log_metric(key, v, step) batched", explicit_batches)
    report("log_metric(key, v) batched", batched(automatic, calls))
    lines_written += calls
    report("log_metric(key, v, step) per call", per_call(explicit, calls))
    lines_written += calls
    three_calls = max(BATCH, calls // 10)
    three_batches = batched(three, three_calls)
    lines_written += 3 * three_calls
    report(f"log_metrics(3 keys) batched x{three_calls:,}", three_batches)
    print(f"  timer read (perf_counter_ns pair)   median {timer_cost_ns() / 1000:6.2f} us")
    median = statistics.median(explicit_batches)
    verdict = "meets" if median / 1000 <= TARGET_US else "MISSES"
    print(f"  -> median {median / 1000:.2f} us per call {verdict} the {TARGET_US} us target")
    written = events.stat().st_size - size_before
    print(f"  wrote {lines_written:,} lines, {written / 2**20:.0f} MiB")
    return median, events


def bench_reader(events: Path) -> None:
    from runyard.tracking.events import read_events

    print(f"read_events over {events.stat().st_size / 2**20:.0f} MiB, as the supervisor tails it")
    for mib in (1, 8, 64):
        gc.collect()
        t0 = time.perf_counter()
        offset, lines = 0, 0
        while True:
            batch, new = read_events(events, offset, max_bytes=mib << 20)
            if new == offset:
                break
            offset, lines = new, lines + len(batch.metrics)
            del batch
        dt = time.perf_counter() - t0
        rate = lines / dt
        verdict = "meets" if rate >= READER_TARGET else "MISSES"
        print(
            f"  max_bytes {mib:>2} MiB  {lines:,} metric lines in {dt:5.2f} s = "
            f"{rate:9,.0f} lines/s ({verdict} the {READER_TARGET:,}/s target)"
        )


def bench_mlflow(tmp: Path, calls: int, runyard_ns: float) -> None:
    try:
        import mlflow
    except ImportError:
        print("mlflow is absent (pip install mlflow to compare); skipped")
        return
    # SQLite is MLflow's default; its file store is in maintenance mode and opt-in.
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    stores = {
        "sqlite store": f"sqlite:///{tmp / 'mlflow.db'}",
        "file store": (tmp / "mlruns").as_uri(),
    }
    for store, uri in stores.items():
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment("bench")
        print(f"mlflow {mlflow.__version__} log_metric, {calls:,} calls each ({store})")
        results = {}
        with mlflow.start_run():
            mlflow.log_metric("warm", 0.0, step=0)

            def sync(i: int) -> None:
                mlflow.log_metric("train/loss", 1.0 / (i + 1), step=i)

            deltas = per_call(sync, calls)
            report("log_metric (synchronous)", deltas)
            results["synchronous"] = statistics.median(deltas)

            def async_(i: int) -> None:
                mlflow.log_metric("train/acc", 1.0 / (i + 1), step=i, synchronous=False)

            t0 = time.perf_counter()
            deltas = per_call(async_, calls)
            report("log_metric(synchronous=False)", deltas)
            results["synchronous=False"] = statistics.median(deltas)
        drained = time.perf_counter() - t0  # end_run waits for the queue to be written
        print(f"  async: {calls:,} calls queued and written in {drained:.2f} s (queue in memory)")
        for label, ns in results.items():
            print(
                f"  ratio mlflow {label} / runyard: {ns / runyard_ns:8.1f}x "
                f"({ns / 1000:.1f} us vs {runyard_ns / 1000:.2f} us)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--mlflow-calls", type=int, default=1000)
    args = parser.parse_args()
    calls = max(BATCH, args.calls // BATCH * BATCH)

    print(f"python {sys.version.split()[0]} on {os.cpu_count()} CPUs")
    tmp = Path(tempfile.mkdtemp(prefix="runyard-bench-logging-"))
    try:
        runyard_ns, events = bench_runyard(tmp, calls)
        bench_reader(events)
        events.unlink()
        bench_mlflow(tmp, args.mlflow_calls, runyard_ns)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
