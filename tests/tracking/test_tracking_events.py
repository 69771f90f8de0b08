"""The events file: what the writer appends, the reader returns."""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path

import numpy as np
import pytest

from runyard.records import MetricPoint
from runyard.tracking.events import EventBatch, EventWriter, read_events


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "events.log"


def test_every_record_kind_round_trips(path: Path) -> None:
    with EventWriter(path) as w:
        w.metric("train/loss", 0.25, 3, 1700000000.125, 0)
        w.metrics([("acc", 0.5, 7), ("lr", 0.1, 7)], 1700000001.5, 2)
        w.params({"lr": "0.01", "layers": 3}, 0)
        w.tags({"stage": "baseline", "note": "tab\there\nnewline"}, 1)
        for kind in ("text", "table", "image", "file"):
            w.artifact(f"{kind}s/x", kind, 0)

    batch, offset = read_events(path, 0)

    assert offset == path.stat().st_size
    assert batch.metrics == [
        MetricPoint("train/loss", 0.25, 3, 1700000000.125, 0),
        MetricPoint("acc", 0.5, 7, 1700000001.5, 2),
        MetricPoint("lr", 0.1, 7, 1700000001.5, 2),
    ]
    assert batch.params == {"lr": "0.01", "layers": "3"}
    assert batch.tags == {"stage": "baseline", "note": "tab\there\nnewline"}
    assert batch.artifacts == [
        ("texts/x", "text"),
        ("tables/x", "table"),
        ("images/x", "image"),
        ("files/x", "file"),
    ]


def test_every_line_is_one_record(path: Path) -> None:
    with EventWriter(path) as w:
        w.metric("loss", 1.0, 0, 1.0, 0)
        w.params({"multi\nline": "a\nb"}, 0)
        w.artifact("ünïcode/file name.txt", "file", 0)
    assert len(path.read_bytes().splitlines()) == 3


@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, -math.inf, 0.1, -0.0, 5e-324, 1.7976931348623157e308, 3, np.float64(0.3)],
)
def test_values_round_trip_exactly(path: Path, value: float) -> None:
    with EventWriter(path) as w:
        w.metric("v", value, 0, 1.0, 0)
        w.metrics([("v", value, 1)], 1.0, 0)
    points = read_events(path, 0)[0].metrics
    assert [p.step for p in points] == [0, 1]
    for point in points:
        assert type(point.value) is float
        if math.isnan(value):
            assert math.isnan(point.value)
        else:
            assert point.value == value
            assert math.copysign(1, point.value) == math.copysign(1, value)


def test_missing_file_is_an_empty_batch_at_the_same_offset(tmp_path: Path) -> None:
    batch, offset = read_events(tmp_path / "nope.log", 42)
    assert batch == EventBatch()
    assert batch.empty
    assert offset == 42


def test_partial_last_line_is_left_for_the_next_read(path: Path) -> None:
    with EventWriter(path) as w:
        w.metric("a", 1.0, 0, 1.0, 0)
    complete = path.stat().st_size
    with path.open("ab") as f:
        f.write(b"m\t0\t1.0\t1\ta\t2.")  # a record cut short, no newline yet

    batch, offset = read_events(path, 0)
    assert [p.step for p in batch.metrics] == [0]
    assert offset == complete

    again, same = read_events(path, offset)
    assert again.empty
    assert same == offset

    with path.open("ab") as f:
        f.write(b"5\n")
    rest, end = read_events(path, offset)
    assert rest.metrics == [MetricPoint("a", 2.5, 1, 1.0, 0)]
    assert end == path.stat().st_size


def test_incremental_reads_see_every_record_once(path: Path) -> None:
    seen: list[MetricPoint] = []
    offset = 0
    with EventWriter(path) as w:
        for round_ in range(5):
            for i in range(10):
                w.metric("loss", float(i), round_ * 10 + i, 1.0, 0)
            w.params({f"p{round_}": str(round_)}, 0)
            batch, offset = read_events(path, offset)
            seen.extend(batch.metrics)
            assert batch.params == {f"p{round_}": str(round_)}
    assert [p.step for p in seen] == list(range(50))
    assert read_events(path, offset)[0].empty


def test_max_bytes_bounds_a_read_but_never_splits_a_line(path: Path) -> None:
    with EventWriter(path) as w:
        for i in range(100):
            w.metric("loss", 0.5, i, 1.0, 0)
        w.tags({"long": "x" * 5000}, 0)
        w.metric("loss", 0.5, 100, 1.0, 0)
    steps: list[int] = []
    tags: dict[str, str] = {}
    offset, reads = 0, 0
    while True:
        batch, new = read_events(path, offset, max_bytes=200)
        if new == offset:
            break
        assert new - offset <= 200 or batch.tags  # only the long line may exceed the bound
        steps.extend(p.step for p in batch.metrics)
        tags.update(batch.tags)
        offset, reads = new, reads + 1
    assert steps == list(range(101))
    assert tags == {"long": "x" * 5000}
    assert offset == path.stat().st_size
    assert reads > 10


def test_corrupt_lines_are_skipped_with_a_warning(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with EventWriter(path) as w:
        w.metric("good", 1.0, 0, 1.0, 0)
    with path.open("ab") as f:
        f.write(b"m\t0\t1.0\t1\tgood\tnot-a-number\n")
        f.write(b"m\t0\t1.0\tone\tgood\t1.0\n")
        f.write(b"m\t0\t1.0\t1\tgood\n")
        f.write(b"m\t0\t1.0\t1\t\t1.0\n")
        f.write(b'{"kind": "params", "data": [1]}\n')
        f.write(b'{"kind": "from-the-future"}\n')
        f.write(b'{"kind": "artifact", "path": "x", "type": "video"}\n')
        f.write(b"{not json\n")
        f.write(b"garbage\n")
        f.write(b"m\t0\t1.0\t1\t\xff\xfe\t1.0\n")
    with EventWriter(path) as w:
        w.metric("good", 2.0, 1, 1.0, 0)

    with caplog.at_level(logging.WARNING, logger="runyard.tracking.events"):
        batch, offset = read_events(path, 0)

    assert [p.value for p in batch.metrics] == [1.0, 2.0]
    assert batch.params == {}
    assert batch.artifacts == []
    assert offset == path.stat().st_size
    warnings = [r.getMessage() for r in caplog.records]
    assert any("line 11 of the read from byte 0: not UTF-8" in m for m in warnings)
    assert any("unreadable line 2 " in m and "not-a-number" in m for m in warnings)
    assert sum("skipping unreadable line" in m for m in warnings) == 5  # then a count
    assert any("skipped 4 more unreadable lines" in m for m in warnings)
    assert all(str(path) in m for m in warnings)


def test_writer_refuses_unknown_artifact_kinds(path: Path) -> None:
    with EventWriter(path) as w, pytest.raises(ValueError, match="video"):
        w.artifact("a.mp4", "video", 0)


def test_writer_appends_to_an_existing_file_and_close_is_final(path: Path) -> None:
    with EventWriter(path) as w:
        w.metric("a", 1.0, 0, 1.0, 0)
    w2 = EventWriter(path)
    w2.metric("a", 2.0, 1, 1.0, 0)
    w2.close()
    w2.close()
    with pytest.raises(OSError):
        w2.metric("a", 3.0, 2, 1.0, 0)
    assert [p.value for p in read_events(path, 0)[0].metrics] == [1.0, 2.0]


def test_concurrent_writers_never_interleave_lines(path: Path) -> None:
    writers = [EventWriter(path) for _ in range(4)]

    def log(rank: int) -> None:
        for i in range(2000):
            writers[rank].metric(f"key{rank}", i * 0.5, i, 1.0, rank)
            if i % 500 == 0:
                writers[rank].params({f"p{rank}_{i}": "x" * 300}, rank)

    threads = [threading.Thread(target=log, args=(r,)) for r in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in writers:
        w.close()

    batch, _ = read_events(path, 0)
    for rank in range(4):
        mine = [p for p in batch.metrics if p.rank == rank]
        assert [p.step for p in mine] == list(range(2000))
        assert all(p.key == f"key{rank}" and p.value == p.step * 0.5 for p in mine)
    assert len(batch.params) == 16
