"""The ``Store`` contract (see :mod:`runyard.store.base`), for every implementation.

The suite is this module (records: runs, params, tags, metrics, searches, artifacts) and
:mod:`.contract_lifecycle` (status changes, slots, cancel requests, lost runs). A test
module runs it against one implementation by importing both and providing a ``store``
fixture, a fresh and empty store::

    from .contract import *
    from .contract_lifecycle import *
"""

from __future__ import annotations

import math
import threading
import time
import uuid

import pytest

from runyard.errors import InvalidMetric, RunNotFound, UserError
from runyard.records import ArtifactInfo, MetricPoint, RunStatus
from runyard.store.base import Store

S = RunStatus
SPEC = {"command": "python train.py", "code": "."}
#: The path from Queued to each status, one transition at a time.
PATH = [S.PREPARING, S.STARTING, S.RUNNING, S.FINALIZING, S.COMPLETED]


def new_run(store: Store, **kw: object) -> str:
    kw.setdefault("experiment", "exp")
    kw.setdefault("spec", SPEC)
    return store.create_run(**kw).id  # type: ignore[arg-type]


def advance(store: Store, run_id: str, to: RunStatus) -> None:
    """Walk a Queued run along the lifecycle until it is ``to``."""
    for status in PATH:
        if to in (S.FAILED, S.CANCELED) and status is S.FINALIZING:
            store.transition(run_id, to)
            return
        store.transition(run_id, status)
        if status is to:
            return


def points(key: str, values: list[float], *, rank: int = 0, start: int = 0) -> list[MetricPoint]:
    now = time.time()
    return [
        MetricPoint(key, v, step=start + i, timestamp=now + i * 1e-3, rank=rank)
        for i, v in enumerate(values)
    ]


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


# -- experiments ------------------------------------------------------------------------------


def test_experiments_are_created_once(store: Store) -> None:
    a = store.get_or_create_experiment("mnist")
    b = store.get_or_create_experiment("mnist")
    store.get_or_create_experiment("cifar")
    assert a == b
    assert a.created_at <= time.time()
    assert [e.name for e in store.list_experiments()] == ["cifar", "mnist"]


def test_create_run_creates_its_experiment(store: Store) -> None:
    new_run(store, experiment="fresh")
    assert [e.name for e in store.list_experiments()] == ["fresh"]


# -- creating and reading runs ------------------------------------------------------------------


def test_create_run_records_a_queued_run(store: Store) -> None:
    parent = new_run(store)
    before = time.time()
    run = store.create_run(
        experiment="exp",
        spec={"command": "python t.py", "resources": {"gpus": 2}},
        compute="gpu-pool",
        name="trial-3",
        tags={"team": "vision"},
        params={"lr": "0.1"},
        snapshot_id="sha256:abc",
        parent_id=parent,
        git={"commit": "deadbeef", "dirty": True},
    )
    assert len(run.id) == 12 and int(run.id, 16) >= 0
    assert run.status is S.QUEUED
    assert before <= run.created_at <= time.time()
    assert (run.experiment, run.name, run.compute) == ("exp", "trial-3", "gpu-pool")
    assert run.spec == {"command": "python t.py", "resources": {"gpus": 2}}
    assert (run.tags, run.params, run.metrics) == ({"team": "vision"}, {"lr": "0.1"}, {})
    assert (run.snapshot_id, run.parent_id) == ("sha256:abc", parent)
    assert run.git == {"commit": "deadbeef", "dirty": True}
    assert run.started_at is None and run.ended_at is None and not run.cancel_requested
    assert store.get_run(run.id) == run
    assert [c.status for c in store.status_history(run.id)] == [S.QUEUED]


def test_create_run_returns_what_is_read_back(store: Store) -> None:
    spec = {"command": ("python", "t.py"), "inputs": {"n": 3, "rate": 0.5, "none": None}}
    run = store.create_run(experiment="exp", spec=spec, tags={"n": 3}, params={"lr": 0.1})  # type: ignore[dict-item]
    assert run.spec["command"] == ["python", "t.py"]  # as JSON stores it
    assert (run.tags, run.params) == ({"n": "3"}, {"lr": "0.1"})
    assert store.get_run(run.id) == run


def test_create_run_with_unknown_parent_fails(store: Store) -> None:
    with pytest.raises(RunNotFound):
        new_run(store, parent_id="000000000000")
    assert store.search_runs() == []


def test_records_are_snapshots(store: Store) -> None:
    run_id = new_run(store, tags={"a": "1"})
    before = store.get_run(run_id)
    store.set_tags(run_id, {"a": "2"})
    advance(store, run_id, S.RUNNING)
    assert before.tags == {"a": "1"} and before.status is S.QUEUED


def test_unknown_run_is_not_found(store: Store) -> None:
    for call in (
        lambda: store.get_run("0123456789ab"),
        lambda: store.status_history("0123456789ab"),
        lambda: store.transition("0123456789ab", S.CANCELED),
        lambda: store.log_params("0123456789ab", {"a": "1"}),
        lambda: store.log_metrics("0123456789ab", points("x", [1.0])),
        lambda: store.metric_history("0123456789ab", "x"),
        lambda: store.record_artifacts("0123456789ab", [ArtifactInfo("a", 1)]),
        lambda: store.heartbeat("0123456789ab"),
        lambda: store.request_cancel("0123456789ab"),
    ):
        with pytest.raises(RunNotFound):
            call()


def test_get_run_by_unique_prefix(store: Store) -> None:
    run_id = new_run(store)
    assert store.get_run(run_id[:4]).id == run_id
    assert store.get_run(run_id[:7]).id == run_id
    with pytest.raises(RunNotFound):
        store.get_run(run_id[:3])  # too short to be a prefix
    with pytest.raises(RunNotFound):
        store.get_run(run_id + "0")


def test_ambiguous_prefix_is_not_found_and_says_so(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = iter([0xABCD1111 << 96, 0xABCD2222 << 96])
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=next(ids)))
    first, second = new_run(store), new_run(store)
    assert (first, second) == ("abcd11110000", "abcd22220000")
    with pytest.raises(RunNotFound, match="ambiguous") as caught:
        store.get_run("abcd")
    assert "abcd11110000" in str(caught.value) and "abcd22220000" in str(caught.value)
    assert store.get_run("abcd2").id == second


# -- params and tags -------------------------------------------------------------------------


def test_params_are_write_once(store: Store) -> None:
    run_id = new_run(store, params={"lr": "0.1"})
    store.log_params(run_id, {"lr": "0.1", "epochs": "10"})  # same value: no-op
    with pytest.raises(UserError, match="lr") as caught:
        store.log_params(run_id, {"batch": "64", "lr": "0.2"})
    assert "'0.1'" in str(caught.value) and "'0.2'" in str(caught.value)
    assert store.get_run(run_id).params == {"lr": "0.1", "epochs": "10"}  # batch not added


def test_tags_can_change_and_go(store: Store) -> None:
    run_id = new_run(store, tags={"a": "1", "b": "2"})
    store.set_tags(run_id, {"a": "10", "c": "3"})
    store.delete_tag(run_id, "b")
    store.delete_tag(run_id, "never-set")
    assert store.get_run(run_id).tags == {"a": "10", "c": "3"}


# -- metrics ---------------------------------------------------------------------------------


def test_metric_history_and_latest(store: Store) -> None:
    run_id = new_run(store)
    store.log_metrics(run_id, points("loss", [3.0, 2.0, 1.0]))
    store.log_metrics(run_id, points("loss", [0.5], start=3) + points("acc", [0.7, 0.8]))
    history = store.metric_history(run_id, "loss")
    assert [(p.step, p.value) for p in history] == [(0, 3.0), (1, 2.0), (2, 1.0), (3, 0.5)]
    assert all(p.key == "loss" and p.rank == 0 for p in history)
    assert store.get_run(run_id).metrics == {"loss": 0.5, "acc": 0.8}
    assert store.metric_keys(run_id) == ["acc", "loss"]
    assert store.metric_history(run_id, "missing") == []


def test_latest_value_has_the_greatest_step_then_time(store: Store) -> None:
    run_id = new_run(store)
    now = time.time()
    store.log_metrics(run_id, [MetricPoint("x", 5.0, step=5, timestamp=now)])
    store.log_metrics(run_id, [MetricPoint("x", 1.0, step=1, timestamp=now + 10)])  # late, old
    assert store.get_run(run_id).metrics == {"x": 5.0}
    store.log_metrics(
        run_id,
        [
            MetricPoint("x", 7.0, step=5, timestamp=now + 2),
            MetricPoint("x", 6.0, step=5, timestamp=now + 1),
        ],
    )
    assert store.get_run(run_id).metrics == {"x": 7.0}
    history = store.metric_history(run_id, "x")
    assert [(p.step, p.value) for p in history] == [(1, 1.0), (5, 5.0), (5, 6.0), (5, 7.0)]


def test_nan_and_infinities_round_trip(store: Store) -> None:
    run_id = new_run(store)
    values = [math.nan, math.inf, -math.inf, 0.0, -1.5e300, 5e-324]
    store.log_metrics(run_id, points("v", values))
    got = [p.value for p in store.metric_history(run_id, "v")]
    assert len(got) == len(values) and all(same(a, b) for a, b in zip(got, values, strict=True))
    for key, value in (("nan", math.nan), ("inf", math.inf), ("-inf", -math.inf)):
        store.log_metrics(run_id, points(key, [1.0, value]))
    latest = store.get_run(run_id).metrics
    assert math.isnan(latest["nan"]) and latest["inf"] == math.inf
    assert latest["-inf"] == -math.inf and latest["v"] == 5e-324
    listed = store.search_runs()[0].metrics
    assert math.isnan(listed["nan"]) and listed["inf"] == math.inf


def test_metric_ranks(store: Store) -> None:
    run_id = new_run(store)
    store.log_metrics(
        run_id,
        points("loss", [1.0, 0.9], rank=0)
        + points("loss", [2.0, 1.9], rank=1)
        + points("worker_only", [7.0], rank=2),
    )
    assert [p.value for p in store.metric_history(run_id, "loss")] == [1.0, 0.9]
    assert [p.value for p in store.metric_history(run_id, "loss", rank=1)] == [2.0, 1.9]
    every = store.metric_history(run_id, "loss", rank=None)
    assert [(p.step, p.rank) for p in every] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert store.get_run(run_id).metrics == {"loss": 0.9, "worker_only": 7.0}
    assert store.search_runs()[0].metrics == {"loss": 0.9, "worker_only": 7.0}


def test_latest_metrics_of_many_runs(store: Store) -> None:
    a, b, quiet = new_run(store), new_run(store), new_run(store)
    store.log_metrics(
        a,
        points("loss", [1.0, 0.9]) + points("loss", [2.0], rank=1) + points("acc", [0.5]),
    )
    store.log_metrics(b, points("acc", [0.7], rank=2) + points("nan", [math.nan]))
    got = store.latest_metrics([a, b, quiet, "no-such-run"])
    assert got[a] == store.get_run(a).metrics == {"loss": 0.9, "acc": 0.5}
    assert got[b]["acc"] == 0.7 and math.isnan(got[b]["nan"])  # as get_run has them
    assert quiet not in got
    assert store.latest_metrics([a, b, quiet], key="acc") == {a: {"acc": 0.5}, b: {"acc": 0.7}}
    assert store.latest_metrics([a], key="missing") == {}
    assert store.latest_metrics([]) == {}


def test_bad_metric_batch_is_rejected_whole(store: Store) -> None:
    run_id = new_run(store)
    good = points("ok", [1.0])
    with pytest.raises(InvalidMetric, match="bad"):
        store.log_metrics(run_id, [*good, MetricPoint("bad", "high", 0, time.time())])  # type: ignore[arg-type]
    with pytest.raises(InvalidMetric):
        store.log_metrics(run_id, [*good, MetricPoint("", 1.0, 0, time.time())])
    store.log_metrics(run_id, [])
    assert store.metric_keys(run_id) == []
    store.log_metrics(run_id, [MetricPoint("int", 3, 0, time.time())])  # type: ignore[arg-type]
    assert store.metric_history(run_id, "int")[0].value == 3.0


def test_concurrent_metric_batches_all_land(store: Store) -> None:
    run_id = new_run(store)
    barrier = threading.Barrier(4)

    def writer(rank: int) -> None:
        barrier.wait()
        for batch in range(10):
            store.log_metrics(run_id, points("x", [float(rank)] * 50, rank=rank, start=batch * 50))

    threads = [threading.Thread(target=writer, args=(r,)) for r in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.metric_history(run_id, "x", rank=None)) == 4 * 10 * 50


# -- searching ---------------------------------------------------------------------------------


def test_search_filters(store: Store) -> None:
    parent = new_run(store, experiment="sweep")
    a = new_run(store, experiment="sweep", parent_id=parent, tags={"t": "1", "u": "x"})
    b = new_run(store, experiment="sweep", parent_id=parent, tags={"t": "1"})
    c = new_run(store, experiment="other", tags={"t": "2"})
    advance(store, b, S.RUNNING)

    def ids(**kw: object) -> list[str]:
        return [r.id for r in store.search_runs(**kw)]  # type: ignore[arg-type]

    assert ids() == [c, b, a, parent]  # newest first
    assert ids(experiment="sweep") == [b, a, parent]
    assert ids(experiment="nope") == []
    assert ids(statuses=[S.RUNNING]) == [b]
    assert ids(statuses=[S.QUEUED, S.RUNNING], experiment="sweep") == [b, a, parent]
    assert ids(statuses=[]) == []
    assert ids(tags={"t": "1"}) == [b, a]
    assert ids(tags={"t": "1", "u": "x"}) == [a]
    assert ids(tags={"t": "3"}) == []
    assert ids(parent_id=parent) == [b, a]
    assert ids(ids=[a, c, "000000000000"]) == [c, a]
    assert ids(ids=[a, c], parent_id=parent) == [a]
    assert ids(ids=[]) == []
    assert ids(limit=2) == [c, b]
    listed = {r.id: r for r in store.search_runs()}
    assert listed[a] == store.get_run(a)


def test_search_orders_by_metric_with_missing_values_last(store: Store) -> None:
    runs = {name: new_run(store, name=name) for name in ("low", "high", "none", "mid", "nan")}
    for name, value in (("low", 0.1), ("high", 0.9), ("mid", 0.5), ("nan", math.nan)):
        store.log_metrics(runs[name], points("acc", [0.0, value]))
    store.log_metrics(runs["none"], points("loss", [1.0]))
    store.log_metrics(runs["low"], points("acc", [0.99], rank=1))  # rank 0 decides

    def names(order_by: str, **kw: object) -> list[str | None]:
        return [r.name for r in store.search_runs(order_by=order_by, **kw)]  # type: ignore[arg-type]

    assert names("metric:acc")[:3] == ["high", "mid", "low"]
    assert names("metric:acc:desc")[:3] == ["high", "mid", "low"]
    assert names("metric:acc:asc")[:3] == ["low", "mid", "high"]
    assert set(names("metric:acc")[3:]) == {"none", "nan"}
    assert set(names("metric:acc:asc")[3:]) == {"none", "nan"}
    assert names("metric:acc", limit=2) == ["high", "mid"]
    assert names("metric:acc:asc", limit=1) == ["low"]


def test_search_orders_by_duration(store: Store) -> None:
    short, never, long = new_run(store), new_run(store), new_run(store)
    advance(store, long, S.RUNNING)
    advance(store, short, S.RUNNING)
    time.sleep(0.05)
    store.transition(short, S.FAILED)
    time.sleep(0.1)
    assert [r.id for r in store.search_runs(order_by="duration")] == [long, short, never]


def test_search_rejects_unknown_ordering(store: Store) -> None:
    with pytest.raises(UserError, match="metric:KEY"):
        store.search_runs(order_by="colour")


def test_search_lists_many_runs_with_their_details(store: Store) -> None:
    made = []
    for i in range(30):
        run_id = new_run(store, tags={"i": str(i)}, params={"p": str(i * 2)})
        store.log_metrics(run_id, points("m", [float(i)]))
        made.append(run_id)
    listed = store.search_runs()
    assert [r.id for r in listed] == made[::-1]
    for run in listed:
        i = int(run.tags["i"])
        assert run.params == {"p": str(i * 2)} and run.metrics == {"m": float(i)}
    top = store.search_runs(order_by="metric:m", limit=3)
    assert [r.metrics["m"] for r in top] == [29.0, 28.0, 27.0]


# -- artifacts ------------------------------------------------------------------------------


def test_artifact_index_upserts_by_path(store: Store) -> None:
    run_id = new_run(store)
    assert store.list_artifacts(run_id) == []
    store.record_artifacts(
        run_id, [ArtifactInfo("outputs/model.pt", 100), ArtifactInfo("logs/std_log.txt", 5)]
    )
    store.record_artifacts(run_id, [ArtifactInfo("logs/std_log.txt", 50)])
    store.record_artifacts(run_id, [])
    assert store.list_artifacts(run_id) == [
        ArtifactInfo("logs/std_log.txt", 50),
        ArtifactInfo("outputs/model.pt", 100),
    ]
    assert store.list_artifacts(new_run(store)) == []
