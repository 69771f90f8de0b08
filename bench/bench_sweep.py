"""Sweeps: what the controller costs, and what early termination saves.

    python bench/bench_sweep.py overhead [--trials 200] [--concurrency 2] [--command "..."]
    python bench/bench_sweep.py value [--trials 12] [--max-epochs 30] [--seed 0]
    python bench/bench_sweep.py                  # both, with the defaults

- overhead: a sweep of ``--trials`` trials of a trivial command (default ``python -c pass``,
  each trial given ``--i N``) at ``--concurrency``, against the same commands run with the
  same concurrency without runyard (a thread pool of ``subprocess.run``). Prints both wall
  times, the ratio (target: at most 1.3x) and the time added per trial. Every trial is a
  recorded run with its whole history, supervised by the controller's supervisor pool, as in
  any sweep.
- value: the digits example (``examples/digits/train.py``: lr, hidden size, epochs up to
  ``--max-epochs``) swept three times with the same seed and trial count: no early
  termination, bandit (``--slack-factor``, delay 3) and ASHA (grace 3, reduction factor 3).
  Prints each sweep's best validation accuracy and the epochs it trained (the sum over its
  trials of the ``val_acc`` values logged), and the epochs at the policies' decisions (what
  an instant reaction would have trained). Target: bandit and ASHA within 1 point of the
  sweep without early termination while training at most half of its epochs.

  Early termination reacts in about half a second (ingestion, the controller's judgment,
  the stop file), then the script has ``kill_grace`` to stop itself before SIGTERM
  (``train.py`` does not look at ``should_stop()``, so it trains on until SIGTERM). At the
  example's batch size (64) an epoch takes 15-50 ms here and 30 epochs are over before any
  reaction, so the benchmark trains with ``--batch-size 1`` (an epoch of 0.3-0.5 s, still
  short next to real training) and ``--kill-grace 1``.

Each sweep runs in a fresh workspace under a temporary folder, with ``local_slots`` equal to
the concurrency and system metrics off.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from runyard.records import RunStatus
from runyard.spec import EnvironmentSpec, JobSpec
from runyard.sweep import (
    Objective,
    SamplingAlgorithm,
    SweepLimits,
    SweepSpec,
    best_trial,
    parse_search_space,
    policy_from_dict,
    run_sweep,
    sweep_trials,
)
from runyard.workspace import Resources

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "digits"


def workspace(tmp: Path, name: str, slots: int, **settings: Any) -> Resources:
    root = tmp / name
    root.mkdir()
    (root / "config.yaml").write_text(
        yaml.safe_dump({"local_slots": slots, "system_metrics_interval": 0, **settings})
    )
    return Resources.open(root)


def overhead(tmp: Path, trials: int, concurrency: int, command: str) -> None:
    argv = tuple(shlex.split(command))
    spec = SweepSpec(
        trial=JobSpec(command=argv, experiment="bench-sweep"),
        search_space=parse_search_space({"i": {"type": "randint", "upper": 1_000_000}}),
        objective=Objective("none"),
        limits=SweepLimits(max_total_trials=trials, max_concurrent_trials=concurrency),
        sampling_algorithm=SamplingAlgorithm("random", seed=0),
    )
    sampler = spec.sampler()
    commands = [[*argv, "--i", str((sampler.ask(i) or {})["i"])] for i in range(trials)]

    def bare() -> float:
        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            done = list(pool.map(lambda c: subprocess.run(c, check=False).returncode, commands))
        assert not any(done), "the command failed"
        return time.perf_counter() - start

    ws = workspace(tmp, "overhead", max(2, concurrency))
    try:
        warm = dataclasses.replace(spec, limits=SweepLimits(2, concurrency))
        run_sweep(ws, warm)  # the store created, caches warm
        bare_t = bare()
        start = time.perf_counter()
        parent = run_sweep(ws, spec)
        sweep_t = time.perf_counter() - start
        ran = [t for t in sweep_trials(ws, parent.id) if t.status is RunStatus.COMPLETED]
    finally:
        ws.close()
    print(f"overhead: {trials} trials of {command!r} at concurrency {concurrency}")
    added = (sweep_t - bare_t) * concurrency / trials
    print(f"  without runyard (thread pool of subprocess.run) {bare_t:8.2f} s")
    print(f"  runyard sweep ({len(ran)} trials Completed)         {sweep_t:8.2f} s")
    ratio = sweep_t / bare_t
    print(f"  ratio                                           {ratio:8.2f}x (target <= 1.3x)")
    print(f"  added per trial (wall x concurrency / trials)   {added * 1000:8.0f} ms")


def digits_spec(
    code: Path,
    trials: int,
    max_epochs: int,
    seed: int,
    batch_size: int,
    policy: dict[str, Any] | None,
) -> SweepSpec:
    epochs = sorted({max(1, max_epochs // 3), max(1, 2 * max_epochs // 3), max_epochs})
    return SweepSpec(
        trial=JobSpec(
            command=("python", "train.py", "--seed", "0", "--batch-size", str(batch_size)),
            code=str(code),
            experiment="bench-digits",
            environment=EnvironmentSpec(env_vars={"OMP_NUM_THREADS": "1"}),
        ),
        search_space=parse_search_space(
            {
                "lr": {"type": "loguniform", "min_value": 1e-3, "max_value": 0.3},
                "hidden": {"type": "choice", "values": [16, 32, 64, 128]},
                "epochs": {"type": "choice", "values": epochs},
            }
        ),
        objective=Objective("val_acc", "maximize"),
        limits=SweepLimits(max_total_trials=trials, max_concurrent_trials=2),
        sampling_algorithm=SamplingAlgorithm("random", seed=seed),
        early_termination=None if policy is None else policy_from_dict(policy),
    )


def _stop_step(reason: str | None) -> int | None:
    """N in "early termination: bandit at step N"."""
    if reason is None or not reason.startswith("early termination: "):
        return None
    return int(reason.rsplit(" ", 1)[1])


def value(
    tmp: Path,
    code: Path,
    trials: int,
    max_epochs: int,
    seed: int,
    batch_size: int,
    kill_grace: float,
    slack_factor: float,
) -> None:
    policies: dict[str, dict[str, Any] | None] = {
        "none": None,
        "bandit": {"type": "bandit", "slack_factor": slack_factor, "delay_evaluation": 3},
        "asha": {"type": "asha", "grace_period": 3, "reduction_factor": 3, "max_steps": max_epochs},
    }
    results = {}
    for name, policy in policies.items():
        ws = workspace(tmp, f"value-{name}", 2, kill_grace=kill_grace)
        try:
            start = time.perf_counter()
            parent = run_sweep(ws, digits_spec(code, trials, max_epochs, seed, batch_size, policy))
            took = time.perf_counter() - start
            trials_ = sweep_trials(ws, parent.id)
            logged = {t.id: len(ws.store.metric_history(t.id, "val_acc")) for t in trials_}
            epochs = sum(logged.values())
            decided = sum(_stop_step(t.run.reason) or logged[t.id] for t in trials_)
            best = best_trial(ws, parent.id)
            stopped = sum(1 for t in trials_ if t.status is RunStatus.CANCELED)
        finally:
            ws.close()
        acc = best.value if best is not None and best.value is not None else float("nan")
        results[name] = (acc, epochs)
        print(
            f"value: {name:<7} best val_acc {acc:.4f}  epochs trained {epochs:4d} "
            f"(at the decisions: {decided:4d})  stopped early {stopped:2d}/{len(trials_)}  "
            f"{took:6.1f} s  {policy or 'no policy'}"
        )
    base_acc, base_epochs = results["none"]
    for name in ("bandit", "asha"):
        acc, epochs = results[name]
        print(
            f"  {name}: {100 * (acc - base_acc):+.2f} points of val_acc (target >= -1), "
            f"{epochs / base_epochs:.0%} of the epochs (target <= 50%)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", nargs="?", choices=["overhead", "value", "both"], default="both")
    parser.add_argument("--trials", type=int, help="trials (overhead: 200, value: 12)")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--command", default=f"{sys.executable} -c pass")
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--code", type=Path, default=DIGITS, help="the digits code folder (value)")
    parser.add_argument("--slack-factor", type=float, default=0.02, help="bandit's (value)")
    parser.add_argument("--batch-size", type=int, default=1, help="digits batch size (value)")
    parser.add_argument(
        "--kill-grace", type=float, default=1.0, help="the workspace's kill_grace (value)"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="runyard-bench-sweep-"))
    try:
        if args.what in ("overhead", "both"):
            overhead(tmp, args.trials or 200, args.concurrency, args.command)
        if args.what in ("value", "both"):
            trials = args.trials or 12
            value(
                tmp,
                args.code,
                trials,
                args.max_epochs,
                args.seed,
                args.batch_size,
                args.kill_grace,
                args.slack_factor,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
