"""Environments: cache-hit time, and a cold build with uv against ``python -m venv`` + pip.

- cache hit: ``materialize()`` of an environment already in the cache, in a warm process
  (median and 95th percentile of many calls), and ``runyard.envs`` imported and called in a
  fresh interpreter. Target: <= 50 ms.
- cold build: a new environment with numpy and scikit-learn, the packages already in the
  installer's cache (each tool is warmed once first), runyard (uv) and ``python -m venv`` +
  ``pip install`` alternating, same package sources (the person's pip configuration). Target:
  runyard at least 5x faster.
- a run: ``runyard run job.yaml`` of ``python -c pass`` whose environment is in the cache,
  against the same job without an environment (runyard's own interpreter), alternating; and
  the Preparing step of each from the runs' status history (what the environment adds to it:
  import, cache hit, hold, tags, lock).

    python bench/bench_envs.py [--repeat 3] [--packages numpy scikit-learn]

One command, a few minutes at most; everything is written under a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from runyard.envs import materialize
from runyard.spec.job import EnvironmentSpec


def uv_build(spec: EnvironmentSpec, root: Path) -> tuple[float, tuple[str, ...]]:
    t0 = time.perf_counter()
    env = materialize(spec, envs_root=root)
    seconds = time.perf_counter() - t0
    assert not env.cached
    return seconds, env.lock


def pip_build(packages: list[str], folder: Path) -> float:
    t0 = time.perf_counter()
    # ensurepip warns about the pip configuration's extra index folders: keep it quiet
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, capture_output=True)
    done = subprocess.run(
        [str(folder / "bin" / "python"), "-m", "pip", "install", "-q", *packages],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"pip install failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - t0


def pip_versions(folder: Path, packages: list[str]) -> str:
    out = subprocess.run(
        [str(folder / "bin" / "python"), "-m", "pip", "list", "--format", "freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wanted = {p.lower().replace("_", "-") for p in packages}
    return " ".join(ln for ln in out.split() if ln.split("==")[0].lower() in wanted)


def hits(spec: EnvironmentSpec, root: Path, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        env = materialize(spec, envs_root=root)
        times.append(time.perf_counter() - t0)
        assert env.cached
    return times


def fresh_process_hit(spec: EnvironmentSpec, root: Path) -> float:
    code = (
        "import time; t0 = time.perf_counter()\n"
        "from pathlib import Path\n"
        "from runyard.envs import materialize\n"
        "from runyard.spec.job import EnvironmentSpec\n"
        f"env = materialize(EnvironmentSpec(pip={spec.pip!r}), envs_root=Path({str(root)!r}))\n"
        "assert env.cached\n"
        "print(time.perf_counter() - t0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout)


def run_level(spec: EnvironmentSpec, tmp: Path, n: int) -> None:
    code = tmp / "run-code"
    code.mkdir()
    pip = ", ".join(spec.pip)
    (code / "env.yaml").write_text(
        f"command: python -c pass\ncode: .\nenvironment: {{pip: [{pip}]}}\n"
    )
    (code / "bare.yaml").write_text("command: python -c pass\ncode: .\n")
    env = {**os.environ, "RUNYARD_WORKSPACE": str(tmp / "run-ws"),
           "RUNYARD_SYSTEM_METRICS_INTERVAL": "0"}  # fmt: skip
    runyard = [sys.executable, "-m", "runyard"]

    def timed(job: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([*runyard, "run", job], env=env, cwd=code, check=True, capture_output=True)
        return time.perf_counter() - t0

    timed("env.yaml")  # builds it (uv's cache is warm by now)
    timed("bare.yaml")
    with_env, without = [], []
    for _ in range(n):
        with_env.append(timed("env.yaml"))
        without.append(timed("bare.yaml"))
    runs = json.loads(
        subprocess.run([*runyard, "ls", "--all", "--json"], env=env, check=True,
                       capture_output=True, text=True).stdout
    )  # fmt: skip
    preparing: dict[bool, list[float]] = {True: [], False: []}
    for r in runs[: 2 * n]:
        shown = subprocess.run([*runyard, "show", r["id"], "--json"], env=env, check=True,
                               capture_output=True, text=True).stdout  # fmt: skip
        times = {h["status"]: h["time"] for h in json.loads(shown)["status_history"]}
        has_env = "runyard.environment.hash" in r["tags"]
        preparing[has_env].append(times["Starting"] - times["Preparing"])
    w, b = statistics.median(with_env), statistics.median(without)
    pw, pb = statistics.median(preparing[True]), statistics.median(preparing[False])
    row = "{:<33}{:>7.1f} ms   Preparing {}{:.1f} ms"
    print(row.format("runyard run, cached environment", w * 1000, "", pw * 1000))
    print(row.format("runyard run, no environment", b * 1000, "", pb * 1000))
    print(row.format("added by the environment", (w - b) * 1000, "+", (pw - pb) * 1000)
          + "  (target <= 50 ms)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--hits", type=int, default=200)
    parser.add_argument("--packages", nargs="+", default=["numpy", "scikit-learn"])
    parser.add_argument("--runs", type=int, default=7, help="runs of each kind (run level)")
    args = parser.parse_args()
    spec = EnvironmentSpec(pip=tuple(args.packages))
    tmp = Path(tempfile.mkdtemp(prefix="runyard-bench-envs-"))
    try:
        print(f"packages: {' '.join(args.packages)}  (python {sys.version.split()[0]})")
        # warm both installers' caches (downloads, wheel builds) once
        _, lock = uv_build(spec, tmp / "warm-uv")
        pip_build(args.packages, tmp / "warm-pip")
        print(f"uv  resolved: {' '.join(lock)}")
        print(f"pip resolved: {pip_versions(tmp / 'warm-pip', args.packages)}")

        uv_t, pip_t = [], []
        for i in range(args.repeat):
            uv_t.append(uv_build(spec, tmp / f"uv-{i}")[0])
            pip_t.append(pip_build(args.packages, tmp / f"pip-{i}"))
            shutil.rmtree(tmp / f"uv-{i}", ignore_errors=True)
            shutil.rmtree(tmp / f"pip-{i}", ignore_errors=True)
        u, p = statistics.median(uv_t), statistics.median(pip_t)
        print(f"cold build, runyard (uv)          median {u:7.2f} s   runs {fmt(uv_t)}")
        print(f"cold build, python -m venv + pip  median {p:7.2f} s   runs {fmt(pip_t)}")
        print(f"ratio pip/runyard                 {p / u:7.1f}x  (target >= 5x)")

        times = sorted(hits(spec, tmp / "warm-uv", args.hits))
        p95 = times[int(0.95 * (len(times) - 1))]
        print(
            f"cache hit, warm process           median {statistics.median(times) * 1000:7.2f} ms"
            f"   p95 {p95 * 1000:.2f} ms  (target <= 50 ms)"
        )
        fresh = [fresh_process_hit(spec, tmp / "warm-uv") for _ in range(5)]
        print(
            f"cache hit, fresh process (import) median {statistics.median(fresh) * 1000:7.2f} ms"
            "   (import runyard.envs + materialize)"
        )
        run_level(spec, tmp, args.runs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fmt(values: list[float]) -> str:
    return " ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
