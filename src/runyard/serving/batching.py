"""Dynamic batching: concurrent requests to a no-code model run as one batch.

Each request's inputs are arrays whose first dimension is rows. The batcher takes the first
request and every one already queued behind it, then waits up to ``max_delay`` seconds for
more (0: not at all — a batch is then what queued while the model computed the previous
one, which costs a lone request nothing), until ``max_batch_size`` rows are collected;
requests whose inputs agree on everything but the row count are concatenated,
run in one call, and each gets its own rows of every output back. The answer is the one the
request would have had alone: models serve rows independently (a batch's output rows are
the rows' own outputs), and if a model's outputs do not have one row per input row, each
request of that batch is run on its own instead.

The batcher lives on the server's event loop; model calls run in a worker thread so the
loop keeps accepting requests while a batch computes (which is when the next batch fills).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from runyard.serving.loaders import Predictor

__all__ = ["Batcher"]

Outputs = dict[str, np.ndarray]


@dataclass
class _Pending:
    inputs: dict[str, np.ndarray]
    rows: int
    key: tuple[object, ...]
    future: asyncio.Future[Outputs] = field(repr=False)


class Batcher:
    """Batches calls of ``predictor.predict``; ``observe(size)`` hears each batch's rows."""

    def __init__(
        self,
        predictor: Predictor,
        *,
        max_batch_size: int,
        max_delay: float,
        observe: Callable[[int], None] | None = None,
    ):
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.predictor = predictor
        self.max_batch_size = max_batch_size
        self.max_delay = max(0.0, max_delay)
        self.observe = observe
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task[None] | None = None
        self._carry: _Pending | None = None
        self._busy = False

    async def predict(self, inputs: dict[str, np.ndarray]) -> Outputs:
        """The outputs for ``inputs`` (every output of the model), computed in a batch."""
        loop = asyncio.get_running_loop()
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._run())
        rows = {a.shape[0] if a.ndim else -1 for a in inputs.values()}
        if len(rows) != 1 or -1 in rows:  # no common row dimension: nothing to batch with
            return await loop.run_in_executor(None, self.predictor.predict, inputs)
        key = tuple(sorted((n, a.dtype.str, a.shape[1:]) for n, a in inputs.items()))
        pending = _Pending(inputs, rows.pop(), key, loop.create_future())
        self._queue.put_nowait(pending)
        return await pending.future

    async def close(self, grace: float = 10.0) -> None:
        """Stop once the requests already queued are answered (at most ``grace`` seconds;
        any left then fail). New requests must no longer reach this batcher."""
        if self._task is None or self._queue is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while (self._busy or self._carry or not self._queue.empty()) and loop.time() < deadline:
            await asyncio.sleep(0.005)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        left = [self._carry] if self._carry else []
        while not self._queue.empty():
            left.append(self._queue.get_nowait())
        for p in left:
            if not p.future.done():
                p.future.set_exception(RuntimeError("the model was unloaded before answering"))

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            first = self._carry or await self._queue.get()
            self._carry = None
            batch = [first]
            rows = first.rows
            deadline = loop.time() + self.max_delay
            while rows < self.max_batch_size:
                try:
                    nxt = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    wait = deadline - loop.time()
                    if wait <= 0:
                        break
                    try:
                        nxt = await asyncio.wait_for(self._queue.get(), wait)
                    except TimeoutError:
                        break
                if nxt.key != first.key or rows + nxt.rows > self.max_batch_size:
                    self._carry = nxt  # starts the next batch
                    break
                batch.append(nxt)
                rows += nxt.rows
            batch = [p for p in batch if not p.future.cancelled()]
            if batch:
                self._busy = True
                try:
                    await self._compute(batch, rows)
                finally:
                    self._busy = False

    async def _compute(self, batch: list[_Pending], rows: int) -> None:
        loop = asyncio.get_running_loop()
        if len(batch) > 1:
            try:
                results = await loop.run_in_executor(None, _run_batch, self.predictor, batch)
            except Exception:
                results = None  # one request's bad data must not fail the others: one by one
            if results is not None:
                if self.observe is not None:
                    self.observe(rows)
                for p, result in zip(batch, results, strict=True):
                    if not p.future.done():
                        p.future.set_result(result)
                return
        for p in batch:
            try:
                result = await loop.run_in_executor(None, self.predictor.predict, p.inputs)
            except Exception as e:
                if not p.future.done():
                    p.future.set_exception(e)
                continue
            if self.observe is not None:
                self.observe(p.rows)
            if not p.future.done():
                p.future.set_result(result)


def _run_batch(predictor: Predictor, batch: list[_Pending]) -> list[Outputs]:
    names = list(batch[0].inputs)
    joined = {n: np.concatenate([p.inputs[n] for p in batch]) for n in names}
    outputs = predictor.predict(joined)
    total = sum(p.rows for p in batch)
    if not all(a.ndim and a.shape[0] == total for a in outputs.values()):
        return [predictor.predict(p.inputs) for p in batch]  # not row-wise: one at a time
    bounds = np.cumsum([0] + [p.rows for p in batch])
    return [
        {n: a[bounds[i] : bounds[i + 1]] for n, a in outputs.items()} for i in range(len(batch))
    ]
