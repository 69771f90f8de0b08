"""Distributed launch: time from launch to the first line of user code, for a 2-rank PyTorch
job under ``runyard run job.yaml`` against ``torchrun --nproc_per_node 2`` of the same script.

The script's first line takes ``time.time()``; each rank writes it down, then joins the
process group (gloo) and leaves, so both launches do the whole job. A launch's figure is
from just before its command starts to the moment its *last* rank reached user code (the
gang is ready when every rank is). Both are measured in the same run, alternating, after one
warm-up each (runyard's store created, the page cache warm). Prints the medians and the
ratio runyard/torchrun (target <= 1.1).

    python bench/bench_ddp_launch.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = """\
import time; FIRST_LINE = time.time()
import os, pathlib
pathlib.Path(os.environ["BENCH_OUT"], os.environ["RANK"]).write_text(repr(FIRST_LINE))
import torch.distributed as dist
dist.init_process_group("gloo", init_method="env://")
dist.barrier()
dist.destroy_process_group()
"""

JOB = """\
command: python first_line.py
code: .
distribution: {type: pytorch, process_count_per_instance: 2}
environment:
  env_vars: {BENCH_OUT: "%s"}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def executable(name: str) -> str:
    """``name`` beside this interpreter (not a version manager's shim, which adds its own
    start-up time to either side), else on ``PATH``."""
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name) or name


def launch(cmd: list[str], env: dict[str, str], cwd: Path, out: Path) -> float:
    """Seconds from the launch to the last rank's first line."""
    for old in out.iterdir():
        old.unlink()
    started = time.time()
    subprocess.run(
        cmd, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    firsts = [float(p.read_text()) for p in out.iterdir()]
    if len(firsts) != 2:
        raise RuntimeError(f"{cmd[0]}: {len(firsts)} ranks reached user code, not 2")
    return max(firsts) - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="runyard-bench-ddp-"))
    try:
        code, out = tmp / "code", tmp / "out"
        code.mkdir()
        out.mkdir()
        (code / "first_line.py").write_text(SCRIPT)
        (code / "job.yaml").write_text(JOB % out)
        env = {
            **os.environ,
            "RUNYARD_WORKSPACE": str(tmp / "ws"),
            "RUNYARD_SYSTEM_METRICS_INTERVAL": "0",
            "BENCH_OUT": str(out),
            "OMP_NUM_THREADS": "1",
        }
        runyard = [executable("runyard"), "run", "job.yaml"]
        torchrun_exe = executable("torchrun")

        def torchrun() -> list[str]:
            port = ["--master_port", str(free_port())]
            return [torchrun_exe, "--nproc_per_node", "2", *port, "first_line.py"]

        launch(runyard, env, code, out)  # warm-up
        launch(torchrun(), env, code, out)
        ours, theirs = [], []
        for _ in range(args.repeat):
            ours.append(launch(runyard, env, code, out))
            theirs.append(launch(torchrun(), env, code, out))
        r, t = statistics.median(ours), statistics.median(theirs)
        print(f"runyard run job.yaml (2 ranks)     median {r * 1000:7.0f} ms to user code")
        print(f"torchrun --nproc_per_node 2        median {t * 1000:7.0f} ms to user code")
        print(f"ratio runyard/torchrun             {r / t:7.2f}  (target <= 1.1)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
