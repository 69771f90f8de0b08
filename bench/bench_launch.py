"""Launch overhead: ``runyard run -- python -c pass`` against bare ``python -c pass``.

Both are measured in the same run, alternating, on a warm workspace (the store created, one
run already done). Prints the medians, the time runyard adds and the ratio.

    python bench/bench_launch.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        cmd, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="runyard-bench-"))
    try:
        code = tmp / "code"
        code.mkdir()
        (code / "train.py").write_text("pass\n")
        env = {
            **os.environ,
            "RUNYARD_WORKSPACE": str(tmp / "ws"),
            "RUNYARD_SYSTEM_METRICS_INTERVAL": "0",
        }
        runyard = shutil.which("runyard") or "runyard"
        bare = [sys.executable, "-c", "pass"]
        tracked = [runyard, "run", "--", sys.executable, "-c", "pass"]
        timed(tracked, env, code)  # warm: create the store, fill caches
        bare_t, tracked_t = [], []
        for _ in range(args.repeat):
            bare_t.append(timed(bare, env, code))
            tracked_t.append(timed(tracked, env, code))
        b, r = statistics.median(bare_t), statistics.median(tracked_t)
        print(f"bare python -c pass         median {b * 1000:7.1f} ms")
        print(f"runyard run -- python ...   median {r * 1000:7.1f} ms")
        print(
            f"added by runyard            {(r - b) * 1000:7.1f} ms  (target <= 500 ms, aim 300 ms)"
        )
        print(f"ratio runyard/bare          {r / b:7.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
