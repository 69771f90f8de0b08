"""Benchmark the SQL store on SQLite against raw sqlite3 doing the same work.

    python bench/bench_store.py                 # the issue's figures: 1M points, 10k runs
    python bench/bench_store.py --points 200000 --runs 2000 --history 200000

Three figures, each with a baseline measured in the same run on an identical database:

- ingestion: ``log_metrics`` in batches, points/s; baseline: sqlite3 ``executemany`` of the
  same rows into the same table (history only, no latest-value upsert), one transaction
  per batch.
- listing: ``search_runs`` over every run (each with tags, params and latest metrics),
  newest first and by a metric; baseline: sqlite3 fetching the same rows in the same four
  queries, without building records.
- history: ``metric_history`` of one key; baselines: sqlite3 fetching the same rows, and
  fetching them and building the same ``MetricPoint`` records (the floor for this API).

Timings of reads are the best of ``--repeat`` tries.
"""

from __future__ import annotations

import argparse
import gc
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from runyard.records import MetricPoint
from runyard.store.sql import SqlStore

KEYS = [f"metric_{i}" for i in range(10)]


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def raw(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db, isolation_level=None)
    for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON"):
        conn.execute(f"PRAGMA {pragma}")
    return conn


def report(name: str, ours: str, base: str, ratio: float, target: str) -> None:
    print(f"  {name:<34} {ours:>16}   raw sqlite3 {base:>16}   ratio {ratio:5.2f}   {target}")


def bench_ingestion(folder: Path, n: int, batch: int) -> None:
    now = time.time()
    pts = [MetricPoint(KEYS[i % 10], random.random(), i // 10, now + i * 1e-6) for i in range(n)]
    store = SqlStore.open(f"sqlite:///{folder / 'ingest.db'}")
    run_id = store.create_run(experiment="bench", spec={}).id
    start = time.perf_counter()
    for i in range(0, n, batch):
        store.log_metrics(run_id, pts[i : i + batch])
    ours = n / (time.perf_counter() - start)
    store.close()

    base_store = SqlStore.open(f"sqlite:///{folder / 'ingest-raw.db'}")
    base_run = base_store.create_run(experiment="bench", spec={}).id
    base_store.close()
    rows = [(base_run, p.key, p.rank, p.step, p.timestamp, p.value) for p in pts]
    conn = raw(folder / "ingest-raw.db")
    sql = "INSERT INTO metrics (run_id, key, rank, step, timestamp, value) VALUES (?,?,?,?,?,?)"
    start = time.perf_counter()
    for i in range(0, n, batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows[i : i + batch])
        conn.execute("COMMIT")
    base = n / (time.perf_counter() - start)
    conn.close()
    print(f"ingestion: {n:,} points, batches of {batch:,}")
    report("log_metrics", f"{ours:,.0f} pts/s", f"{base:,.0f} pts/s", ours / base,
           "target >= 200,000 pts/s")  # fmt: skip


def bench_listing(folder: Path, n_runs: int, repeat: int) -> None:
    db = folder / "listing.db"
    store = SqlStore.open(f"sqlite:///{db}")
    start = time.perf_counter()
    now = time.time()
    for i in range(n_runs):
        run_id = store.create_run(
            experiment=f"exp-{i % 5}",
            spec={"command": "python train.py", "compute": "local", "resources": {"gpus": 1}},
            name=f"run-{i}",
            tags={"team": "vision", "seed": str(i % 7), "kind": "trial"},
            params={"lr": str(0.001 * (i % 13)), "batch": "64", "epochs": "10"},
        ).id
        store.log_metrics(
            run_id,
            [MetricPoint(k, random.random(), 100, now) for k in ("acc", "loss", "f1", "lr")],
        )
    setup = time.perf_counter() - start

    def listing() -> None:
        assert len(store.search_runs()) == n_runs

    def by_metric() -> None:
        assert len(store.search_runs(order_by="metric:acc")) == n_runs

    ours, ours_metric = best_of(repeat, listing), best_of(repeat, by_metric)
    store.close()

    conn = raw(db)

    def raw_listing() -> None:
        conn.execute("BEGIN")
        conn.execute(
            "SELECT runs.*, experiments.name FROM runs JOIN experiments"
            " ON experiments.id = runs.experiment_id ORDER BY runs.created_at DESC, runs.id DESC"
        ).fetchall()
        for table in ("tags", "params"):
            conn.execute(f"SELECT run_id, key, value FROM {table}").fetchall()
        conn.execute("SELECT run_id, key, rank, value FROM latest_metrics").fetchall()
        conn.execute("COMMIT")

    base = best_of(repeat, raw_listing)
    conn.close()
    print(f"listing: {n_runs:,} runs, 3 tags, 3 params, 4 metrics each (setup {setup:.1f}s)")
    report("search_runs()", f"{ours:.3f} s", f"{base:.3f} s", ours / base, "target <= 0.3 s")
    report("search_runs(order_by=metric:acc)", f"{ours_metric:.3f} s", f"{base:.3f} s",
           ours_metric / base, "target <= 0.3 s")  # fmt: skip


def bench_history(folder: Path, n: int, repeat: int) -> None:
    db = folder / "history.db"
    store = SqlStore.open(f"sqlite:///{db}")
    run_id = store.create_run(experiment="bench", spec={}).id
    now = time.time()
    chunk = 100_000
    for i in range(0, n, chunk):
        store.log_metrics(
            run_id,
            [MetricPoint("loss", random.random(), s, now + s * 1e-6) for s in range(i, i + chunk)],
        )

    def history() -> None:
        assert len(store.metric_history(run_id, "loss")) == n

    ours = best_of(repeat, history)
    store.close()
    conn = raw(db)

    def raw_history() -> None:
        conn.execute(
            "SELECT value, step, timestamp FROM metrics WHERE run_id = ? AND key = ? AND rank = 0"
            " ORDER BY step, timestamp, id",
            (run_id, "loss"),
        ).fetchall()

    def raw_history_points() -> None:
        rows = conn.execute(
            "SELECT value, step, timestamp FROM metrics WHERE run_id = ? AND key = ? AND rank = 0"
            " ORDER BY step, timestamp, id",
            (run_id, "loss"),
        )
        gc.disable()
        try:
            [MetricPoint("loss", v, s, t, 0) for v, s, t in rows]
        finally:
            gc.enable()

    base = best_of(repeat, raw_history)
    floor = best_of(repeat, raw_history_points)
    conn.close()
    print(f"history: {n:,} points of one key")
    report("metric_history", f"{ours:.3f} s", f"{base:.3f} s", ours / base, "target <= 1 s")
    print(
        f"  {'':<34} {'':>16}   raw sqlite3 + MetricPoint objects {floor:.3f} s"
        f"   ratio {ours / floor:5.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000, help="points to ingest")
    parser.add_argument("--batch", type=int, default=10_000, help="points per log_metrics call")
    parser.add_argument("--runs", type=int, default=10_000, help="runs to list")
    parser.add_argument("--history", type=int, default=1_000_000, help="points to read back")
    parser.add_argument("--repeat", type=int, default=3, help="tries per read timing")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    random.seed(args.seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="runyard-bench-") as tmp:
        folder = Path(tmp)
        bench_ingestion(folder, args.points, args.batch)
        bench_listing(folder, args.runs, args.repeat)
        bench_history(folder, args.history, args.repeat)
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
