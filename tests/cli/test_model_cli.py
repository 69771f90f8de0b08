"""``runyard model ...`` and ``runyard serve`` through the real command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    import joblib
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path / "files"
    folder.mkdir()
    x, y = load_digits(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=200).fit(x[:300], y[:300]), folder / "clf.joblib")
    (folder / "bundle").mkdir()
    (folder / "bundle" / "a.txt").write_text("a")
    return folder


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_register_list_show_alias_download_delete(
    runyard: Runner, files: Path, tmp_path: Path
) -> None:
    out = _ok(
        runyard(
            "model",
            "register",
            "clf",
            "--path",
            str(files / "clf.joblib"),
            "--tag",
            "stage=dev",
            "--property",
            "data=digits",
            "--alias",
            "production",
        )
    )
    assert out.startswith("registered clf@1 (sklearn): 1 file(s)")
    _ok(runyard("model", "register", "clf", "--path", str(files / "bundle"), "-d", "a folder"))
    listed = _ok(runyard("model", "ls"))
    assert "clf" in listed and "production→1" in listed
    versions = json.loads(_ok(runyard("model", "ls", "clf", "--json")))
    assert [v["ref"] for v in versions] == ["clf@2", "clf@1"]
    shown = json.loads(_ok(runyard("model", "show", "clf@production", "--json")))
    assert shown["version"] == 1 and shown["tags"] == {"stage": "dev"}
    assert shown["properties"] == {"data": "digits"} and shown["aliases"] == ["production"]
    text = _ok(runyard("model", "show", "clf"))
    assert text.startswith("model clf@2") and "bundle/a.txt" in text
    assert _ok(runyard("model", "alias", "clf", "production", "2")).strip() == (
        "clf@production → clf@2"
    )
    assert "stage=prod" in _ok(runyard("model", "tag", "clf@2", "stage=prod"))
    _ok(runyard("model", "download", "clf@production", "-o", str(tmp_path / "dl")))
    assert (tmp_path / "dl" / "bundle" / "a.txt").read_text() == "a"
    assert _ok(runyard("model", "delete", "clf@1")).strip() == "deleted clf@1"
    missing = runyard("model", "show", "clf@1")
    assert missing.returncode == 2 and missing.stderr.strip() == "error: model clf@1 was deleted"


def test_register_from_a_run(runyard: Runner, tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(
        "import os, runyard\n"
        "runyard.log_param('lr', 0.5)\n"
        "runyard.log_metric('acc', 0.75)\n"
        "open(os.path.join(os.environ['RUNYARD_OUTPUTS'], 'model.onnx'), 'wb').write(b'x')\n"
    )
    _ok(runyard("run", "--code", str(code), "--", sys.executable, "train.py"))
    run_id = json.loads(_ok(runyard("ls", "--json")))[0]["id"]
    out = _ok(
        runyard(
            "model",
            "register",
            "digits",
            "--run",
            run_id,
            "--path",
            "outputs/model.onnx",
            "--framework",
            "onnx",
            "--json",
        )
    )
    mv = json.loads(out)
    assert mv["run_id"] == run_id and mv["run_params"] == {"lr": "0.5"}
    assert mv["run_metrics"] == {"acc": 0.75} and mv["framework"] == "onnx"


@pytest.mark.parametrize("name", ["../evil", "a/b", ".hidden"])
def test_names_with_path_tricks_are_refused(runyard: Runner, files: Path, name: str) -> None:
    done = runyard("model", "register", name, "--path", str(files / "clf.joblib"))
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: invalid model name {name!r}")
    assert "Traceback" not in done.stderr


@pytest.mark.serve
def test_serve_in_the_foreground(runyard: Runner, files: Path, workspace: Path) -> None:
    _ok(runyard("model", "register", "clf", "--path", str(files / "clf.joblib")))
    proc = subprocess.Popen(
        [sys.executable, "-m", "runyard", "serve", "clf", "--port", "0"],
        env={**os.environ, "RUNYARD_WORKSPACE": str(workspace)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        seen = []
        while not (line := proc.stderr.readline()).startswith("serving "):
            assert line, "".join(seen)  # the server ended before saying where it listens
            seen.append(line)
        assert line.startswith("serving clf@1 at http://127.0.0.1:"), line
        url = line.split(" at ", 1)[1].split(" ", 1)[0]
        r = httpx.post(f"{url}/score", json={"data": [[0.0] * 64]})
        assert r.status_code == 200 and isinstance(r.json()["predictions"]["predict"][0], int)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest = proc.communicate(timeout=15)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            rest = proc.communicate()[1]
    assert proc.returncode == 0, rest
    assert rest.rstrip().endswith("stopped")
