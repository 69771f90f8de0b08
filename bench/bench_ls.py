"""Listing: ``runyard ls`` over 10,000 runs, against ``runyard --version`` (the command line's
own start-up) measured in the same run.

    python bench/bench_ls.py [--runs 10000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from runyard.records import MetricPoint, RunStatus
from runyard.workspace import Resources


def populate(root: Path, n: int) -> None:
    res = Resources.open(root)
    store = res.store
    try:
        for i in range(n):
            run = store.create_run(
                experiment=f"exp{i % 5}",
                spec={"command": "python t.py"},
                tags={"team": f"t{i % 3}"},
                name=f"run-{i}",
            )
            store.log_params(run.id, {"lr": str(0.01 * (i % 7)), "hidden": "64"})
            now = time.time()
            store.log_metrics(
                run.id,
                [
                    MetricPoint("acc", (i % 100) / 100, 0, now),
                    MetricPoint("loss", 1 / (i + 1), 0, now),
                ],
            )
            for status in (
                RunStatus.PREPARING,
                RunStatus.STARTING,
                RunStatus.RUNNING,
                RunStatus.FINALIZING,
                RunStatus.COMPLETED,
            ):
                store.transition(run.id, status)
    finally:
        res.close()


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="runyard-bench-"))
    try:
        t0 = time.perf_counter()
        populate(tmp, args.runs)
        print(f"recorded {args.runs} runs in {time.perf_counter() - t0:.1f}s")
        env = {**os.environ, "RUNYARD_WORKSPACE": str(tmp)}
        exe = shutil.which("runyard") or "runyard"
        cases = {
            "runyard --version (start-up)": [exe, "--version"],
            "runyard ls (newest 50)": [exe, "ls"],
            "runyard ls --sort metric:acc": [exe, "ls", "--sort", "metric:acc"],
            f"runyard ls --all --json ({args.runs} runs)": [exe, "ls", "--all", "--json"],
        }
        results = {}
        for label, cmd in cases.items():
            timed(cmd, env)
            results[label] = statistics.median(timed(cmd, env) for _ in range(args.repeat))
        base = results["runyard --version (start-up)"]
        for label, t in results.items():
            print(f"{label:<40} {t * 1000:8.1f} ms   {t / base:5.2f}x start-up")
        print("target: runyard ls over 10,000 runs <= 500 ms")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
