"""A Tracker on a temporary run: validation, steps, params, tags and files."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runyard.errors import InvalidMetric, NotFound, UserError
from runyard.tracking.events import EventBatch, read_events
from runyard.tracking.tracker import RunInfo, Tracker

PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf000000030101007ea9d5"
    "c40000000049454e44ae426082"
)


@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[Tracker]:
    info = RunInfo(
        id="r1",
        experiment="e",
        outputs=tmp_path / "outputs",
        events=tmp_path / "events.log",
        rank=3,
        offline=False,
    )
    t = Tracker(info)
    yield t
    t.close()


def records(tracker: Tracker) -> EventBatch:
    batch, offset = read_events(tracker.info.events, 0)
    assert offset == tracker.info.events.stat().st_size
    return batch


# -- values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1.0),
        (True, 1.0),
        (2.5, 2.5),
        (np.float32(0.5), 0.5),
        (np.float64(0.25), 0.25),
        (np.int64(7), 7.0),
        (np.bool_(True), 1.0),
        (np.array(1.5), 1.5),
        (Decimal("0.5"), 0.5),
        (Fraction(1, 4), 0.25),
        (10**20, 1e20),
    ],
)
def test_real_numbers_are_accepted(tracker: Tracker, value: Any, expected: float) -> None:
    tracker.log_metric("m", value)
    (point,) = records(tracker).metrics
    assert point.value == expected
    assert type(point.value) is float


@pytest.mark.torch
def test_torch_scalars_are_accepted(tracker: Tracker) -> None:
    import torch

    tracker.log_metric("loss", torch.tensor(0.5))
    tracker.log_metric("loss", torch.tensor([2.0], dtype=torch.float64))
    tracker.log_metrics({"acc": torch.tensor(1, dtype=torch.int64)})
    assert [p.value for p in records(tracker).metrics] == [0.5, 2.0, 1.0]
    with pytest.raises(InvalidMetric, match=r"metric 'loss': value tensor\(\[1\., 2\.\]\)"):
        tracker.log_metric("loss", torch.tensor([1.0, 2.0]))


def test_nan_and_infinities_are_stored_as_such(tracker: Tracker) -> None:
    tracker.log_metrics({"a": math.nan, "b": math.inf, "c": -math.inf, "d": np.float32("nan")})
    values = {p.key: p.value for p in records(tracker).metrics}
    assert math.isnan(values["a"])
    assert values["b"] == math.inf
    assert values["c"] == -math.inf
    assert math.isnan(values["d"])


def test_a_string_value_raises_naming_the_key(tracker: Tracker) -> None:
    with pytest.raises(InvalidMetric) as err:
        tracker.log_metric("loss", "abc")
    assert str(err.value) == "metric 'loss': value 'abc' (str) is not a number"


@pytest.mark.parametrize(
    "value", [None, "1.5", b"1", 1j, [1.0], {"a": 1}, object(), np.array([1.0, 2.0]), 10**400]
)
def test_non_numbers_raise_naming_the_key(tracker: Tracker, value: Any) -> None:
    with pytest.raises(InvalidMetric, match=r"^metric 'val/acc': value .* is not a number$"):
        tracker.log_metric("val/acc", value)
    with pytest.raises(InvalidMetric, match="metric 'val/acc'"):
        tracker.log_metrics({"ok": 1.0, "val/acc": value})
    assert not tracker.info.events.read_bytes()  # nothing written, not even "ok"


# -- keys --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "must not be empty"),
        ("x" * 251, "251 characters long"),
        ("a\tb", "control characters"),
        ("a\nb", "control characters"),
        ("a\x00b", "control characters"),
        ("/loss", "must not start with '/'"),
        (3, "is not a string"),
        (None, "is not a string"),
        (("a",), "is not a string"),
    ],
)
def test_bad_keys_raise_naming_the_key(tracker: Tracker, key: Any, problem: str) -> None:
    shown = repr(key if not isinstance(key, str) or len(key) <= 60 else key[:60] + "...")
    for log in (
        lambda: tracker.log_metric(key, 1.0),
        lambda: tracker.log_metrics({key: 1.0}),
    ):
        with pytest.raises(InvalidMetric) as err:
            log()
        assert str(err.value).startswith(f"metric key {shown}")
        assert problem in str(err.value)
    with pytest.raises(InvalidMetric, match=r"^param key "):
        tracker.log_params({key: 1})
    with pytest.raises(InvalidMetric, match=r"^tag key "):
        tracker.set_tags({key: 1})


def test_unhashable_key_raises_invalid_metric(tracker: Tracker) -> None:
    with pytest.raises(InvalidMetric, match=r"metric key \['a'\] \(list\) is not a string"):
        tracker.log_metric(["a"], 1.0)  # type: ignore[arg-type]


def test_ordinary_keys_are_accepted(tracker: Tracker) -> None:
    keys = ["loss", "train/loss", "val.acc-top 5", "ünï_cødé", "x" * 250, "a/b/c"]
    for key in keys:
        tracker.log_metric(key, 1.0)
    assert [p.key for p in records(tracker).metrics] == keys


# -- steps, time, rank -------------------------------------------------------------------


def test_steps_count_per_key_and_continue_after_an_explicit_step(tracker: Tracker) -> None:
    for _ in range(3):
        tracker.log_metric("a", 1.0)
    tracker.log_metric("b", 1.0)
    tracker.log_metric("a", 1.0, step=10)
    tracker.log_metric("a", 1.0)
    tracker.log_metric("b", 1.0, step=np.int64(5))  # type: ignore[arg-type]
    tracker.log_metrics({"a": 1.0, "b": 2.0})
    tracker.log_metrics({"a": 1.0, "c": 2.0}, step=100)
    steps = [(p.key, p.step) for p in records(tracker).metrics]
    assert steps == [
        ("a", 0),
        ("a", 1),
        ("a", 2),
        ("b", 0),
        ("a", 10),
        ("a", 11),
        ("b", 5),
        ("a", 12),
        ("b", 6),
        ("a", 100),
        ("c", 100),
    ]


@pytest.mark.parametrize("step", [1.5, "3", True, None])
def test_non_integer_steps_are_refused(tracker: Tracker, step: Any) -> None:
    if step is None:
        tracker.log_metric("a", 1.0, step=step)  # None means "count"
        return
    with pytest.raises(InvalidMetric, match=r"metric 'a': step .* is not an integer"):
        tracker.log_metric("a", 1.0, step=step)
    with pytest.raises(InvalidMetric, match="is not an integer"):
        tracker.log_metrics({"a": 1.0}, step=step)


def test_points_carry_time_and_rank(tracker: Tracker) -> None:
    import time

    before = time.time()
    tracker.log_metric("a", 1.0)
    tracker.log_metrics({"b": 1.0, "c": 2.0})
    after = time.time()
    points = records(tracker).metrics
    assert all(before <= p.timestamp <= after for p in points)
    assert points[1].timestamp == points[2].timestamp
    assert {p.rank for p in points} == {3}


# -- params and tags ---------------------------------------------------------------------


def test_params_and_tags_are_strings(tracker: Tracker) -> None:
    tracker.log_params({"lr": 0.01, "layers": 3, "name": "mlp", "opt": None})
    tracker.set_tags({"stage": "baseline", "seed": 7})
    batch = records(tracker)
    assert batch.params == {"lr": "0.01", "layers": "3", "name": "mlp", "opt": "None"}
    assert batch.tags == {"stage": "baseline", "seed": "7"}


# -- files -------------------------------------------------------------------------------


def test_log_text(tracker: Tracker) -> None:
    assert tracker.log_text("hello\nworld\n", "notes/summary.txt") == "notes/summary.txt"
    assert (tracker.info.outputs / "notes/summary.txt").read_text() == "hello\nworld\n"
    assert records(tracker).artifacts == [("notes/summary.txt", "text")]


def test_log_table_from_columns_and_from_rows(tracker: Tracker) -> None:
    tracker.log_table("by_columns", {"label": [0, 1], "count": [np.int64(12), 3.5]})
    tracker.log_table("by_rows.json", [{"label": 0, "count": 12}, {"label": 1, "extra": "x"}])
    outputs = tracker.info.outputs
    assert json.loads((outputs / "tables/by_columns.json").read_text()) == {
        "columns": ["label", "count"],
        "data": [[0, 12], [1, 3.5]],
    }
    assert json.loads((outputs / "tables/by_rows.json").read_text()) == {
        "columns": ["label", "count", "extra"],
        "data": [[0, 12, None], [1, None, "x"]],
    }
    assert records(tracker).artifacts == [
        ("tables/by_columns.json", "table"),
        ("tables/by_rows.json", "table"),
    ]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"a": [1, 2], "b": [1]}, "different lengths"),
        ([{"a": 1}, [1, 2]], "rows must be mappings"),
        ("abc", "data must be"),
        (42, "data must be"),
    ],
)
def test_log_table_refuses_what_is_not_a_table(tracker: Tracker, data: Any, problem: str) -> None:
    with pytest.raises(UserError, match=problem):
        tracker.log_table("t", data)
    assert not (tracker.info.outputs / "tables").exists()


def test_log_image_from_a_png_path(tracker: Tracker, tmp_path: Path) -> None:
    src = tmp_path / "plot.png"
    src.write_bytes(PNG_1X1)
    assert tracker.log_image("curve", src) == "images/curve.png"
    assert tracker.log_image("again.png", str(src)) == "images/again.png"
    assert tracker.log_image("epoch.1", src) == "images/epoch.1.png"
    assert (tracker.info.outputs / "images/curve.png").read_bytes() == PNG_1X1
    assert records(tracker).artifacts == [
        ("images/curve.png", "image"),
        ("images/again.png", "image"),
        ("images/epoch.1.png", "image"),
    ]


def test_log_image_from_a_matplotlib_figure(tracker: Tracker) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1, 2], [1, 0, 2])
    assert tracker.log_image("loss_curve", fig) == "images/loss_curve.png"
    assert tracker.log_image("loss_curve.svg", fig) == "images/loss_curve.svg"
    assert tracker.log_image("epoch.3", fig) == "images/epoch.3.png"
    outputs = tracker.info.outputs
    assert (outputs / "images/loss_curve.png").read_bytes().startswith(PNG_1X1[:8])
    assert b"<svg" in (outputs / "images/loss_curve.svg").read_bytes()
    assert [kind for _, kind in records(tracker).artifacts] == ["image", "image", "image"]
    assert sorted(p.name for p in (outputs / "images").iterdir()) == [
        "epoch.3.png",
        "loss_curve.png",
        "loss_curve.svg",
    ]  # no temporary files left behind


def test_log_image_refuses_other_things(tracker: Tracker, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no such file"):
        tracker.log_image("x", tmp_path / "missing.png")
    with pytest.raises(UserError, match="matplotlib figure, got list"):
        tracker.log_image("x", [[0, 1]])
    with pytest.raises(UserError, match="name must be a non-empty string"):
        tracker.log_image(None, tmp_path / "missing.png")  # type: ignore[arg-type]


def test_log_file_copies_files_and_folders(tracker: Tracker, tmp_path: Path) -> None:
    src = tmp_path / "config.json"
    src.write_text("{}")
    folder = tmp_path / "ckpt"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.bin").write_bytes(b"a")
    (folder / "sub/b.bin").write_bytes(b"b")

    assert tracker.log_file(src) == ["config.json"]
    assert tracker.log_file(src, "configs/run.json") == ["configs/run.json"]
    assert tracker.log_file(folder) == ["ckpt/a.bin", "ckpt/sub/b.bin"]
    outputs = tracker.info.outputs
    assert (outputs / "configs/run.json").read_text() == "{}"
    assert (outputs / "ckpt/sub/b.bin").read_bytes() == b"b"
    # a file already in place in outputs/ is recorded, not copied onto itself
    assert tracker.log_file(outputs / "config.json") == ["config.json"]
    assert (outputs / "config.json").read_text() == "{}"
    assert [a for a, _ in records(tracker).artifacts] == [
        "config.json",
        "configs/run.json",
        "ckpt/a.bin",
        "ckpt/sub/b.bin",
        "config.json",
    ]
    with pytest.raises(NotFound, match="no such file"):
        tracker.log_file(tmp_path / "missing")


@pytest.mark.parametrize("name", ["../escape.txt", "/abs.txt", "a/../../b", "", "."])
def test_names_must_stay_inside_outputs(tracker: Tracker, name: str) -> None:
    with pytest.raises(UserError, match="name"):
        tracker.log_text("x", name)
    assert records(tracker).empty
