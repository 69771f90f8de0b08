"""The command line with distributed jobs: dry runs, specs refused before they are recorded,
a gang's output prefixed by rank, one rank's log. Plain Python scripts as ranks."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

Runner = Callable[..., subprocess.CompletedProcess[str]]

RANK = """\
import os, sys
rank = int(os.environ["RANK"])
print(f"hello from rank {rank} of {os.environ['WORLD_SIZE']}")
if rank == 1 and os.environ.get("CRASH"):
    sys.exit(4)
"""

JOB = """\
command: python rank.py
code: .
resources: {instance_count: 2}
distribution: {type: pytorch, process_count_per_instance: 1}
"""


def job(tmp_path: Path, text: str = JOB) -> Path:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "rank.py").write_text(RANK)
    (code / "job.yaml").write_text(text)
    return code / "job.yaml"


def test_dry_run_prints_every_rank_and_records_nothing(runyard: Runner, tmp_path: Path) -> None:
    path = job(tmp_path)
    for verb in ("run", "submit"):
        res = runyard(verb, str(path), "--dry-run")
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith("pytorch: world size 2, 2 nodes, 2 processes\n")
        assert "[rank 1] node 1 (127.0.0.1), local rank 0" in res.stdout
        assert "  RANK=1\n" in res.stdout and "  NODE_RANK=1\n" in res.stdout
        assert "command: /bin/sh -c 'python rank.py'" in res.stdout
    assert json.loads(runyard("ls", "--json").stdout) == []


def test_a_distribution_that_cannot_be_planned_is_refused_before_it_is_recorded(
    runyard: Runner, tmp_path: Path
) -> None:
    path = job(tmp_path, JOB.replace("type: pytorch", "type: mpi, per_node: true"))
    for verb in ("run", "submit"):
        res = runyard(verb, str(path))
        assert res.returncode == 2
        assert "distribution.per_node: only applies to type pytorch, not mpi" in res.stderr
        assert "Traceback" not in res.stderr
    assert json.loads(runyard("ls", "--json").stdout) == []


def test_a_gang_streams_prefixed_output_and_each_rank_has_its_log(
    runyard: Runner, tmp_path: Path
) -> None:
    res = runyard("run", str(job(tmp_path)))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "[rank 0] hello from rank 0 of 2" in lines
    assert "[rank 1] hello from rank 1 of 2" in lines
    run_id = json.loads(runyard("ls", "--json").stdout)[0]["id"]
    assert runyard("logs", run_id, "--rank", "1").stdout == "hello from rank 1 of 2\n"
    merged = runyard("logs", run_id).stdout.splitlines()
    assert merged[0].startswith("[runyard] pytorch: world size 2, 2 nodes; started rank 0")
    assert merged[1:] == ["[rank 0] hello from rank 0 of 2", "[rank 1] hello from rank 1 of 2"]
    missing = runyard("logs", run_id, "--rank", "2")
    assert missing.returncode == 2
    assert "has no log for rank 2" in missing.stderr


def test_a_failing_rank_sets_the_exit_status_and_is_named(runyard: Runner, tmp_path: Path) -> None:
    res = runyard("run", "--env", "CRASH=1", str(job(tmp_path)))
    assert res.returncode == 4
    assert "Failed (rank 1 exited with code 4)" in res.stderr


def test_logs_follow_a_detached_gang_to_its_end(runyard: Runner, tmp_path: Path) -> None:
    run_id = runyard("submit", str(job(tmp_path))).stdout.strip()
    res = runyard("logs", "-f", run_id)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "[rank 0] hello from rank 0 of 2" in lines
    assert "[rank 1] hello from rank 1 of 2" in lines
    assert json.loads(runyard("ls", "--json").stdout)[0]["status"] == "Completed"
