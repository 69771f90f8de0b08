"""Dynamic batching: concurrent requests are computed together, and every answer is the one
the same request gets from a server that does not batch."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import numpy as np
import pytest
from serving_helpers import ModelFiles, Serve, deployment, v2_input

from runyard import Workspace
from runyard.serving import Deployment

pytestmark = [pytest.mark.serve, pytest.mark.torch]


def _requests(rows: np.ndarray, n: int) -> list[tuple[str, dict[str, Any]]]:
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        take = rows[rng.choice(len(rows), size=int(rng.integers(1, 5)), replace=False)]
        if i % 3 == 0:
            out.append(("/score", {"data": take.tolist()}))
        else:
            out.append(("/v2/models/digits/infer", {"id": str(i), **v2_input(take)}))
    return out


async def _fire(url: str, requests: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        answers = await asyncio.gather(*(client.post(p, json=b) for p, b in requests))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    return [a.json() for a in answers]


def _model_calls(metrics: str) -> tuple[int, float]:
    """(model calls, rows computed) under batching, from the metrics text."""
    count = re.search(r'runyard_batch_rows_count\{model="digits@1"\} (\d+)', metrics)
    total = re.search(r'runyard_batch_rows_sum\{model="digits@1"\} ([0-9.]+)', metrics)
    assert count and total, metrics
    return int(count.group(1)), float(total.group(1))


@pytest.fixture
def digits(ws: Workspace, model_files: ModelFiles) -> Deployment:
    return deployment(ws, ws.models.register("digits", model_files.onnx))


def test_batched_answers_equal_unbatched_ones(
    digits: Deployment, model_files: ModelFiles, serve: Serve
) -> None:
    requests = _requests(model_files.rows, 48)
    with serve([digits]) as plain:
        alone = asyncio.run(_fire(str(plain.base_url), requests))
        assert "runyard_batch_rows_count" not in plain.get("/metrics").text
    with serve([digits], max_batch_size=32, max_delay_ms=50) as batching:
        together = asyncio.run(_fire(str(batching.base_url), requests))
        calls, rows = _model_calls(batching.get("/metrics").text)
    assert together == alone  # byte-for-byte the same numbers
    sent = sum(len(b["data"]) if "data" in b else b["inputs"][0]["shape"][0] for _, b in requests)
    assert rows == sent
    assert calls < len(requests)  # requests were computed together


def test_requests_that_differ_in_shape_are_not_mixed(
    digits: Deployment, model_files: ModelFiles, serve: Serve
) -> None:
    good = [("/score", {"data": model_files.rows[:2].tolist()}) for _ in range(6)]
    with serve([digits], max_batch_size=64, max_delay_ms=50) as client:
        url = str(client.base_url)

        async def mixed() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=60) as c:
                bad = c.post("/score", json={"data": [[0.0] * 8]})  # wrong width: a 400
                return await asyncio.gather(bad, *(c.post(p, json=b) for p, b in good))

        bad, *rest = asyncio.run(mixed())
    assert bad.status_code == 400 and "dimension 1 must be 64" in bad.json()["error"]
    assert [r.status_code for r in rest] == [200] * 6
    assert len({r.text for r in rest}) == 1
