"""Dynamic batching: concurrent requests to one model become one call to the model.

Each model has an asyncio queue and one worker task. The worker takes the first waiting request, collects
more for up to ``max_wait`` seconds or until ``max_batch`` inputs, runs ONE prediction on the lot in a thread
(so the event loop keeps accepting requests meanwhile) and hands each request its slice of the results. With
``max_wait`` 0 (the server's default) nothing waits: what queued while the model was busy runs together when it
is free, so calls grow with load and a lone request pays nothing. The same idea as Triton's and TorchServe's
dynamic batchers (a positive ``max_wait`` is their queue delay; on 2 CPU cores it cost throughput, see
``benchmarks/README.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

Outputs = tuple[list[Any], np.ndarray | None]
logger = logging.getLogger("transferkit.serving")


@dataclass
class BatchStats:
    """Counters of one model's batcher: requests taken, inputs passed to the model, model calls made, the
    largest call. A merged call that failed and was rerun request by request counts its inputs again."""

    requests: int = 0
    inputs: int = 0
    predict_calls: int = 0
    largest_batch: int = 0

    def to_json(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class _Pending:
    inputs: list[Any]
    future: asyncio.Future = field(repr=False)


class DynamicBatcher:
    """Merges concurrent requests to one model into calls of at most ``max_batch`` inputs.

    Args:
        predict: inputs -> (predictions, probabilities or None); called in a worker thread, one call at a time.
        max_batch: The most inputs one merged call gathers; a request with more runs alone.
        max_wait: Seconds to wait for more requests after the first; 0 merges only the requests already queued
            when the model becomes free (no request ever waits for company).
        merge: False runs every request alone.
    """

    def __init__(
        self, predict: Callable[[list[Any]], Outputs], *, max_batch: int, max_wait: float, merge: bool = True
    ) -> None:
        self.predict = predict
        self.max_batch = max_batch  # the most inputs one merged call gathers (a single request may hold more)
        self.max_wait = max_wait
        self.merge = merge
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Pending] | None = None
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._executor: Executor | None = None

    @property
    def running(self) -> bool:
        return self._worker is not None and not self._worker.done()

    def start(self, executor: Executor | None = None) -> None:
        """Start the worker on the running event loop; predictions run on ``executor`` (default: the loop's)."""
        self._queue, self._arrived, self._executor = asyncio.Queue(), asyncio.Event(), executor
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="transferkit-batcher")

    async def stop(self) -> None:
        """Cancel the worker; requests still waiting get a ``RuntimeError``."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        while self._queue is not None and not self._queue.empty():
            pending = self._queue.get_nowait()
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("the server is shutting down"))

    async def submit(self, inputs: Sequence[Any]) -> Outputs:
        """Predictions and probabilities for ``inputs``, computed together with whatever else is waiting."""
        if not self.running:
            raise RuntimeError("the batcher is not running; start() it inside the server's event loop")
        future = asyncio.get_running_loop().create_future()
        self.stats.requests += 1
        self._queue.put_nowait(_Pending(list(inputs), future))
        self._arrived.set()
        return await future

    async def _work(self) -> None:
        carried: _Pending | None = None
        while True:
            first = carried or await self._queue.get()
            batch, carried = await self._collect(first)
            await self._run(batch)

    async def _collect(self, first: _Pending) -> tuple[list[_Pending], _Pending | None]:
        """The first request and those that arrive within ``max_wait``, up to ``max_batch`` inputs; a request
        that would overflow the batch is carried over to start the next one."""
        batch, size = [first], len(first.inputs)
        if not self.merge:
            return batch, None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while size < self.max_batch:
            while not self._queue.empty():
                pending = self._queue.get_nowait()
                if size + len(pending.inputs) > self.max_batch:
                    return batch, pending
                batch.append(pending)
                size += len(pending.inputs)
            remaining = deadline - loop.time()
            if size >= self.max_batch or remaining <= 0:
                break
            # Wait on an event rather than on queue.get() with a timeout: a timed-out get can lose an item.
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                if self._queue.empty():
                    break
        return batch, None

    async def _run(self, batch: list[_Pending]) -> None:
        batch = [pending for pending in batch if not pending.future.done()]  # clients that gave up
        if not batch:
            return
        inputs = [item for pending in batch for item in pending.inputs]
        self.stats.predict_calls += 1
        self.stats.inputs += len(inputs)
        self.stats.largest_batch = max(self.stats.largest_batch, len(inputs))
        loop = asyncio.get_running_loop()
        try:
            predictions, probabilities = await loop.run_in_executor(self._executor, self.predict, inputs)
            if len(predictions) != len(inputs):
                raise RuntimeError(f"the model returned {len(predictions)} predictions for {len(inputs)} inputs")
        except Exception as error:  # the error belongs to the requests, not to the worker
            if len(batch) > 1:
                # One bad input must not fail the requests it was batched with: run each alone.
                for pending in batch:
                    await self._run([pending])
                return
            if not batch[0].future.done():
                batch[0].future.set_exception(error)
            return
        start = 0
        for pending in batch:
            stop = start + len(pending.inputs)
            if not pending.future.done():
                rows = None if probabilities is None else probabilities[start:stop]
                pending.future.set_result((predictions[start:stop], rows))
            start = stop
