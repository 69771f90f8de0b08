"""Gangs: a distributed run's processes start together, fail together, stop together, and
each has its log. Plain Python scripts stand in for the ranks (the frameworks' own runs are
in tests/distributed)."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from sv_helpers import RunMaker, Waiter, WorkspaceMaker, alive

from runyard.backends.local import LocalBackend
from runyard.client import Workspace
from runyard.errors import NotFound
from runyard.records import Run, RunStatus
from runyard.spec import DistributionSpec, EnvironmentSpec, JobSpec, LimitsSpec, ResourcesSpec
from runyard.supervisor import Supervisor, reap_lost
from runyard.workspace import Resources

# Each rank writes its pid to PIDS/<rank> and prints its variables; the rank named by
# CRASH exits 3 once every rank is up, the others sleep SLEEP seconds (SIGTERM ignored by
# the rank named by IGNORE_TERM).
RANK = """
    import json, os, pathlib, signal, sys, time
    import runyard
    rank = os.environ.get("RUNYARD_RANK") or "node" + os.environ["RUNYARD_NODE_RANK"]
    pids = pathlib.Path(os.environ["PIDS"])
    if os.environ.get("IGNORE_TERM") == rank:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    keys = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK", "MASTER_PORT", "TF_CONFIG",
            "PET_NNODES", "PET_NODE_RANK", "PET_NPROC_PER_NODE", "PET_MASTER_PORT")
    print(json.dumps({k: os.environ.get(k) for k in keys}), flush=True)
    runyard.log_metric("rank_seen", float(os.environ.get("RUNYARD_RANK", -1)))
    (pids / f"{rank}.tmp").write_text(str(os.getpid()))
    (pids / f"{rank}.tmp").rename(pids / rank)
    if rank == os.environ.get("CRASH"):  # once every rank is up
        world = int(os.environ["WORLD_SIZE"])
        while len([p for p in pids.iterdir() if p.suffix != ".tmp"]) < world:
            time.sleep(0.02)
        print(f"rank {rank}: boom", file=sys.stderr)
        sys.exit(3)
    if os.environ.get("SLEEP"):
        time.sleep(float(os.environ["SLEEP"]))
"""


def gang_run(
    ws: Resources,
    pids: Path,
    *,
    nodes: int = 1,
    env: dict[str, str] | None = None,
    script: str = RANK,
    limits: LimitsSpec | None = None,
    **dist: object,
) -> Run:
    """Record a Queued run of ``script`` (no snapshot: ``python -c``) as a gang."""
    pids.mkdir(exist_ok=True)
    spec = JobSpec(
        command=(sys.executable, "-c", textwrap.dedent(script)),
        experiment="gang",
        distribution=DistributionSpec(**dist),  # type: ignore[arg-type]
        resources=ResourcesSpec(instance_count=nodes),
        environment=EnvironmentSpec(env_vars={"PIDS": str(pids), **(env or {})}),
        limits=limits or LimitsSpec(),
    )
    return ws.store.create_run(experiment=spec.experiment, spec=spec.to_dict())


def ranks_json(ws: Resources, run_id: str) -> dict[str, Any]:
    path = ws.artifacts.open_read(f"{run_id}/logs/ranks.json")
    assert path is not None
    return json.loads(path.read_text())


def all_pids(pids: Path) -> list[int]:
    return [int(p.read_text()) for p in pids.iterdir() if not p.name.endswith(".tmp")]


def test_every_rank_starts_with_its_variables_and_its_own_log(
    ws: Resources, tmp_path: Path
) -> None:
    run = gang_run(ws, tmp_path / "pids", nodes=2, type="pytorch", process_count_per_instance=2)
    lines: list[str] = []
    final = Supervisor(ws, run.id, echo=lines.append).execute()
    assert final.status is RunStatus.COMPLETED, final.error

    arts = {a.path for a in ws.store.list_artifacts(run.id)}
    seen = {}
    for rank in range(4):
        assert f"logs/std_log_process_{rank}.txt" in arts
        log = ws.artifacts.open_read(f"{run.id}/logs/std_log_process_{rank}.txt")
        assert log is not None
        seen[rank] = json.loads(log.read_text().splitlines()[0])
        assert f"[rank {rank}] {log.read_text().splitlines()[0]}" in lines  # merged, prefixed
    assert [(v["RANK"], v["LOCAL_RANK"], v["NODE_RANK"]) for v in seen.values()] == [
        ("0", "0", "0"),
        ("1", "1", "0"),
        ("2", "0", "1"),
        ("3", "1", "1"),
    ]
    assert {v["WORLD_SIZE"] for v in seen.values()} == {"4"}
    assert len({v["MASTER_PORT"] for v in seen.values()}) == 1
    assert lines[0].startswith("[runyard] pytorch: world size 4, 2 nodes; started rank 0")

    # Metrics carry the rank; listings show rank 0's.
    points = ws.store.metric_history(run.id, "rank_seen", rank=None)
    assert sorted((p.rank, p.value) for p in points) == [(r, float(r)) for r in range(4)]
    assert ws.store.get_run(run.id).metrics["rank_seen"] == 0.0

    summary = ranks_json(ws, run.id)
    assert summary["failed"] is None
    processes = summary["processes"]
    assert isinstance(processes, list)
    assert [(p["rank"], p["exit_code"], p["stopped"]) for p in processes] == [
        (r, 0, False) for r in range(4)
    ]


def test_a_crashing_rank_tears_the_gang_down_and_is_named(
    make_workspace: WorkspaceMaker, tmp_path: Path
) -> None:
    ws = make_workspace(kill_grace=30.0)  # relying on SIGKILL after the grace would show
    pids = tmp_path / "pids"
    run = gang_run(
        ws,
        pids,
        nodes=2,
        type="pytorch",
        process_count_per_instance=2,
        env={"CRASH": "1", "SLEEP": "600"},
    )
    started = time.monotonic()
    final = Supervisor(ws, run.id).execute()
    took = time.monotonic() - started

    assert final.status is RunStatus.FAILED
    assert final.reason == "rank 1 exited with code 3"
    assert final.exit_code == 3
    assert final.error is not None and final.error.endswith("rank 1: boom")
    assert '"RANK": "0"' not in final.error  # the failing rank's own log, not another's
    assert took < 15.0, f"the others (sleeping 600 s) took {took:.1f}s to stop"
    assert len(all_pids(pids)) == 4
    assert not any(alive(pid) for pid in all_pids(pids))

    summary = ranks_json(ws, run.id)
    assert summary["failed"] == {"name": "rank 1", "rank": 1, "exit_code": 3}
    ended = {p["rank"]: (p["exit_code"], p["signal"], p["stopped"]) for p in summary["processes"]}
    assert ended[1] == (3, None, False)
    assert all(ended[r] == (143, "SIGTERM", True) for r in (0, 2, 3))
    notes = ws.artifacts.open_read(f"{run.id}/logs/std_log.txt")
    assert notes is not None
    assert "[runyard] rank 1 exited with code 3: stopping the other processes" in notes.read_text()


def test_a_rank_that_ignores_sigterm_is_killed_after_the_grace_period(
    make_workspace: WorkspaceMaker, tmp_path: Path
) -> None:
    ws = make_workspace(kill_grace=1.0)
    pids = tmp_path / "pids"
    run = gang_run(
        ws,
        pids,
        type="pytorch",
        process_count_per_instance=2,
        env={"CRASH": "1", "SLEEP": "600", "IGNORE_TERM": "0"},
    )
    started = time.monotonic()
    final = Supervisor(ws, run.id).execute()
    assert 1.0 <= time.monotonic() - started < 5.0
    assert final.reason == "rank 1 exited with code 3"
    assert not any(alive(pid) for pid in all_pids(pids))
    rank0 = ranks_json(ws, run.id)["processes"][0]
    assert (rank0["exit_code"], rank0["signal"], rank0["stopped"]) == (137, "SIGKILL", True)


def test_cancel_stops_every_rank(ws: Resources, wait: Waiter, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    run = gang_run(
        ws,
        pids,
        nodes=2,
        type="pytorch",
        process_count_per_instance=1,
        env={"SLEEP": "600"},
    )
    backend = LocalBackend(ws)
    backend.submit(run.id)
    wait(lambda: len(all_pids(pids)) == 2, timeout=20, what="both ranks to start")
    backend.cancel(run.id, "enough")
    final = wait(
        lambda: (r := ws.store.get_run(run.id)).status.is_terminal and r,
        timeout=15,
        what="the run to end",
    )
    assert final.status is RunStatus.CANCELED
    assert final.reason == "enough"
    assert not any(alive(pid) for pid in all_pids(pids))
    processes = ranks_json(ws, run.id)["processes"]
    assert [p["stopped"] for p in processes] == [True, True]


def test_a_lost_supervisors_gang_is_ended_by_the_reaper(
    ws: Resources, wait: Waiter, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    run = gang_run(ws, pids, nodes=2, type="pytorch", env={"SLEEP": "600"})
    LocalBackend(ws).submit(run.id)
    wait(lambda: len(all_pids(pids)) == 2, timeout=20, what="both ranks to start")
    supervisor = ws.store.get_run(run.id).supervisor_pid
    assert supervisor is not None
    os.kill(supervisor, signal.SIGKILL)
    wait(lambda: not alive(supervisor), timeout=5, what="the supervisor to die")
    assert reap_lost(ws) == [run.id]
    wait(lambda: not any(alive(pid) for pid in all_pids(pids)), timeout=5, what="the ranks")


def test_timeout_stops_every_rank(ws: Resources, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    run = gang_run(
        ws,
        pids,
        type="pytorch",
        process_count_per_instance=2,
        env={"SLEEP": "600"},
        limits=LimitsSpec(timeout=2.5),
    )
    final = Supervisor(ws, run.id).execute()
    assert final.status is RunStatus.CANCELED
    assert final.reason == "timeout after 2.5s"
    assert len(all_pids(pids)) == 2
    assert not any(alive(pid) for pid in all_pids(pids))


def test_parameter_servers_are_stopped_once_the_workers_are_done(
    ws: Resources, tmp_path: Path
) -> None:
    # The parameter server (rank 2) sleeps 600 s; the workers wait until it is up, then exit
    # 0: the run completes, and the ps is then stopped.
    pids = tmp_path / "pids"
    script = textwrap.dedent(RANK) + textwrap.dedent("""
        if json.loads(os.environ["TF_CONFIG"])["task"]["type"] == "ps":
            time.sleep(600)
        while not (pids / "2").exists():
            time.sleep(0.02)
    """)
    run = gang_run(
        ws, pids, script=script, type="tensorflow", worker_count=2, parameter_server_count=1
    )
    final = Supervisor(ws, run.id).execute()
    assert final.status is RunStatus.COMPLETED, final.error
    processes = ranks_json(ws, run.id)["processes"]
    assert [(p["name"], p["exit_code"], p["stopped"]) for p in processes] == [
        ("worker 0", 0, False),
        ("worker 1", 0, False),
        ("ps 0", 143, True),
    ]
    config = json.loads(
        json.loads(
            ws.artifacts.open_read(f"{run.id}/logs/std_log_process_2.txt")
            .read_text()
            .splitlines()[0]
        )["TF_CONFIG"]
    )
    assert config["task"] == {"type": "ps", "index": 0}
    assert len(config["cluster"]["worker"]) == 2
    assert not any(alive(pid) for pid in all_pids(pids))


def test_per_node_mode_runs_the_command_once_per_node_with_torchruns_variables(
    ws: Resources, tmp_path: Path
) -> None:
    run = gang_run(
        ws,
        tmp_path / "pids",
        nodes=2,
        type="pytorch",
        process_count_per_instance=3,
        per_node=True,
    )
    final = Supervisor(ws, run.id).execute()
    assert final.status is RunStatus.COMPLETED, final.error
    for node in range(2):
        log = ws.artifacts.open_read(f"{run.id}/logs/std_log_node_{node}.txt")
        assert log is not None
        seen = json.loads(log.read_text().splitlines()[0])
        assert (seen["PET_NNODES"], seen["PET_NODE_RANK"], seen["PET_NPROC_PER_NODE"]) == (
            "2",
            str(node),
            "3",
        )
        assert seen["RANK"] is None  # torchrun sets it for the processes it starts


def test_a_gang_whose_command_cannot_start_fails_and_leaves_nothing_running(
    ws: Resources,
) -> None:
    spec = JobSpec(
        command=("/nonexistent/program",),
        distribution=DistributionSpec(type="pytorch", process_count_per_instance=2),
    )
    run = ws.store.create_run(experiment="gang", spec=spec.to_dict())
    final = Supervisor(ws, run.id).execute()
    assert final.status is RunStatus.FAILED
    assert final.reason is not None and final.reason.startswith("cannot start the command")
    notes = ws.layout.work_dir(run.id) / "logs" / "std_log.txt"
    assert "[runyard] cannot start rank 0" in notes.read_text()


def test_logs_merge_the_ranks_and_give_one_rank_alone(ws: Resources, tmp_path: Path) -> None:
    run = gang_run(
        ws,
        tmp_path / "pids",
        type="pytorch",
        process_count_per_instance=2,
        env={"CRASH": "1"},
    )
    Supervisor(ws, run.id).execute()
    client = Workspace(ws)
    merged = list(client.logs(run.id))
    assert merged[0].startswith("[runyard] pytorch: world size 2")
    assert '[rank 0] {"RANK": "0"' in "\n".join(merged)
    assert "[rank 1] rank 1: boom" in merged
    one = list(client.logs(run.id, rank=1))
    assert one[0].startswith('{"RANK": "1"') and one[-1] == "rank 1: boom"
    try:
        list(client.logs(run.id, rank=7))
    except NotFound as e:
        assert "no log for rank 7" in str(e) and "rank 1" in str(e)
    else:
        raise AssertionError("rank 7 has no log")


def test_system_metrics_add_up_every_ranks_processes(
    make_workspace: WorkspaceMaker, tmp_path: Path
) -> None:
    ws = make_workspace(system_metrics_interval=0.3)
    run = gang_run(
        ws,
        tmp_path / "pids",
        type="pytorch",
        process_count_per_instance=2,
        env={"SLEEP": "2"},
    )
    final = Supervisor(ws, run.id).execute()
    assert final.status is RunStatus.COMPLETED, final.error
    rss = ws.store.metric_history(run.id, "system/process_rss_mb")
    assert rss and max(p.value for p in rss) > 2 * 5  # two Python processes at least
    assert {p.rank for p in rss} == {0}


def test_a_one_process_run_is_unchanged(ws: Resources, new_run: RunMaker) -> None:
    run = new_run(ws, "print('alone')\n")
    lines: list[str] = []
    final = Supervisor(ws, run.id, echo=lines.append).execute()
    assert final.status is RunStatus.COMPLETED
    assert lines == ["alone"]
    arts = {a.path for a in ws.store.list_artifacts(run.id)}
    assert "logs/std_log.txt" in arts and "logs/ranks.json" not in arts
    assert list(Workspace(ws).logs(run.id, rank=0)) == ["alone"]
