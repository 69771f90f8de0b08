"""The command line end to end: real subprocesses, a real workspace, real runs."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

Runner = Callable[..., subprocess.CompletedProcess[str]]

SCRIPT = """
import sys
import runyard
runyard.log_params({"lr": 0.1, "layers": 2})
for i in range(5):
    runyard.log_metric("loss", 1.0 / (i + 1), step=i)
runyard.log_metric("acc", float("nan"))
open("outputs/result.txt", "w").write("done")
print("hello from the script")
print("to stderr", file=sys.stderr)
"""


def make_code(tmp_path: Path, script: str = SCRIPT) -> Path:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "train.py").write_text(script)
    return code


def test_run_command_end_to_end(runyard: Runner, tmp_path: Path) -> None:
    code = make_code(tmp_path)
    res = runyard("run", "-e", "exp", "--tag", "team=a", "--", "python", "train.py", cwd=code)
    assert res.returncode == 0, res.stderr
    assert "hello from the script" in res.stdout
    assert "Completed" in res.stderr

    runs = json.loads(runyard("ls", "--json").stdout)
    assert len(runs) == 1
    run = runs[0]
    assert run["status"] == "Completed"
    assert run["experiment"] == "exp"
    assert run["tags"]["team"] == "a"
    assert run["params"] == {"lr": "0.1", "layers": "2"}
    assert run["metrics"]["loss"] == 0.2
    assert run["metrics"]["acc"] == "NaN"

    shown = json.loads(runyard("show", run["id"], "--json").stdout)
    statuses = [h["status"] for h in shown["status_history"]]
    assert statuses == ["Queued", "Preparing", "Starting", "Running", "Finalizing", "Completed"]
    times = [h["time"] for h in shown["status_history"]]
    assert times == sorted(times)
    assert shown["snapshot_id"]

    text = runyard("show", run["id"][:6]).stdout
    assert "Completed" in text and "lr = 0.1" in text

    logs = runyard("logs", run["id"]).stdout
    assert "hello from the script" in logs and "to stderr" in logs

    csv_out = runyard("metrics", run["id"], "loss", "--csv").stdout.splitlines()
    assert csv_out[0] == "step,value,timestamp,rank"
    assert [row.split(",")[1] for row in csv_out[1:]] == [
        "1.0",
        "0.5",
        "0.3333333333333333",
        "0.25",
        "0.2",
    ]

    arts = json.loads(runyard("artifacts", run["id"], "--json").stdout)
    paths = {a["path"] for a in arts}
    assert "outputs/result.txt" in paths and "logs/std_log.txt" in paths

    dest = tmp_path / "dl"
    res = runyard("download", run["id"], "outputs", "-o", str(dest))
    assert res.returncode == 0, res.stderr
    assert (dest / "outputs" / "result.txt").read_text() == "done"


def test_failed_run_exits_with_its_code_and_shows_the_error(
    runyard: Runner, tmp_path: Path
) -> None:
    code = make_code(
        tmp_path, "import sys\nprint('about to fail')\nraise SystemExit('boom: bad input')\n"
    )
    res = runyard("run", "--", "python", "train.py", cwd=code)
    assert res.returncode == 1
    assert "Failed" in res.stderr and "boom: bad input" in res.stderr
    run = json.loads(runyard("ls", "--json").stdout)[0]
    assert run["status"] == "Failed"
    assert run["exit_code"] == 1
    assert "boom: bad input" in run["error"]

    code2 = make_code(tmp_path, "raise SystemExit(7)\n")
    assert runyard("run", "--", "python", "train.py", cwd=code2).returncode == 7


def test_yaml_job_with_inputs_and_override(runyard: Runner, tmp_path: Path) -> None:
    code = make_code(tmp_path, "import sys\nprint('args', sys.argv[1:])\n")
    (code / "job.yaml").write_text(
        "experiment: yamljob\ncode: .\ncommand: python train.py --lr ${{inputs.lr}}\n"
        "inputs: {lr: 0.5}\n"
    )
    res = runyard("run", str(code / "job.yaml"), "--input", "lr=0.25")
    assert res.returncode == 0, res.stderr
    assert "args ['--lr', '0.25']" in res.stdout


def test_bad_yaml_is_one_line_and_records_nothing(runyard: Runner, tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("command: python x.py\nlimts: {timeout: 5}\n")
    res = runyard("run", str(job))
    assert res.returncode == 2
    assert res.stderr.strip() == f"error: {job}: limts: unknown field"
    job.write_text("command: python x.py\ncode: missing\n")
    res = runyard("submit", str(job))
    assert res.returncode == 2
    assert "code: code folder" in res.stderr and "does not exist" in res.stderr
    assert json.loads(runyard("ls", "--json").stdout) == []


def test_unknown_run_and_bad_flags(runyard: Runner) -> None:
    res = runyard("show", "nope1234")
    assert res.returncode == 2
    assert res.stderr.strip() == "error: run 'nope1234' not found"
    res = runyard("ls", "--status", "Sleeping")
    assert res.returncode == 2 and "--status 'Sleeping'" in res.stderr
    res = runyard("run", "--tag", "novalue", "--", "true")
    assert res.returncode == 2 and "--tag 'novalue': expected KEY=VALUE" in res.stderr


def test_submit_follow_logs_and_cancel(runyard: Runner, tmp_path: Path) -> None:
    code = make_code(
        tmp_path,
        "import time\nprint('started', flush=True)\nfor i in range(600):\n    time.sleep(0.1)\n",
    )
    res = runyard("submit", "--", "python", "train.py", cwd=code)
    assert res.returncode == 0, res.stderr
    run_id = res.stdout.strip()
    deadline = time.monotonic() + 30
    while "started" not in runyard("logs", run_id).stdout:
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.2)
    res = runyard("cancel", run_id)
    assert res.returncode == 0 and "cancel requested" in res.stdout
    follow = runyard("logs", "-f", run_id, timeout=60)
    assert follow.returncode == 0 and "started" in follow.stdout
    run = json.loads(runyard("show", run_id, "--json").stdout)
    assert run["status"] == "Canceled"
    assert run["reason"] == "canceled by user"
    res = runyard("cancel", run_id)
    assert res.returncode == 2 and "already Canceled" in res.stderr


def test_rerun_uses_the_same_snapshot(runyard: Runner, tmp_path: Path) -> None:
    code = make_code(tmp_path, "print(open('train.py').read().count('print'))\nprint('v1')\n")
    first = runyard("run", "--", "python", "train.py", cwd=code)
    assert "v1" in first.stdout
    (code / "train.py").write_text("print('v2')\n")
    run_id = json.loads(runyard("ls", "--json").stdout)[0]["id"]
    again = runyard("rerun", run_id)
    assert again.returncode == 0, again.stderr
    assert "v1" in again.stdout and "v2" not in again.stdout
    runs = json.loads(runyard("ls", "--json").stdout)
    assert runs[0]["tags"]["runyard.rerun_of"] == run_id
    assert runs[0]["snapshot_id"] == runs[1]["snapshot_id"]


def test_ls_filters_and_sorts(runyard: Runner, tmp_path: Path) -> None:
    for acc in (0.3, 0.9, 0.6):
        code = make_code(tmp_path, f"import runyard\nrunyard.log_metric('acc', {acc})\n")
        assert (
            runyard(
                "run", "-e", "sorted", "--tag", f"acc={acc}", "--", "python", "train.py", cwd=code
            ).returncode
            == 0
        )
    runs = json.loads(runyard("ls", "--sort", "metric:acc", "--json").stdout)
    assert [r["metrics"]["acc"] for r in runs] == [0.9, 0.6, 0.3]
    runs = json.loads(runyard("ls", "--sort", "metric:acc:asc", "-n", "2", "--json").stdout)
    assert [r["metrics"]["acc"] for r in runs] == [0.3, 0.6]
    runs = json.loads(runyard("ls", "--tag", "acc=0.6", "--json").stdout)
    assert len(runs) == 1
    table = runyard("ls", "-e", "sorted").stdout
    assert "acc" in table and "Completed" in table


def test_oversized_snapshot_is_refused_and_records_nothing(
    runyard: Runner, tmp_path: Path, workspace: Path
) -> None:
    code = make_code(tmp_path)
    (code / "data.bin").write_bytes(b"\0" * 200_000)
    with (workspace / "config.yaml").open("a") as f:
        f.write("snapshot_max_bytes: 100000\n")
    res = runyard("run", "--", "python", "train.py", cwd=code)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "data.bin" in lines[0] and "limit" in lines[0]
    assert json.loads(runyard("ls", "--json").stdout) == []
    (code / ".runyardignore").write_text("*.bin\n")
    assert runyard("run", "--", "python", "train.py", cwd=code).returncode == 0
