"""Dynamic batching for inference (runbook "Batching Strategies"), on asyncio.

Requests wait in a queue; one worker takes the first, then keeps taking until ``max_batch_size`` rows or
``timeout_ms`` after the first one, runs a single forward on a dedicated thread (torch releases the GIL, so
the event loop keeps accepting requests meanwhile), and hands each request its slice of the output.
The clock and the sleep that waits out the timeout are injectable, so tests drive time by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

Forward = Callable[[np.ndarray], np.ndarray]
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[object]]


@dataclass
class _Pending:
    rows: np.ndarray  # (n, F)
    future: asyncio.Future


class BatcherStopped(RuntimeError):
    """The batcher was stopped before the request was served."""


class BatcherFull(RuntimeError):
    """The queue holds ``max_queue`` requests already: the caller sheds this one (503 + Retry-After)."""


class DynamicBatcher:
    """Combines concurrent ``submit`` calls into batched ``forward`` calls (rows in, rows out, same order)."""

    def __init__(
        self,
        forward: Forward,
        max_batch_size: int = 32,
        timeout_ms: float = 10.0,
        on_batch: Callable[[int], None] | None = None,
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
        max_queue: int = 0,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if timeout_ms < 0:
            raise ValueError(f"timeout_ms must be >= 0, got {timeout_ms}")
        if max_queue < 0:
            raise ValueError(f"max_queue must be >= 0 (0 = unbounded), got {max_queue}")
        self.max_queue = max_queue  # requests waiting (not yet taken into a batch); 0 = unbounded
        self.forward = forward
        self.max_batch_size = max_batch_size
        self.timeout_s = timeout_ms / 1000.0
        self.on_batch = on_batch
        self._clock = clock  # None: the running event loop's monotonic clock
        self._sleep = sleep
        self.batches = 0
        self.rows = 0
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._taken: list[_Pending] = []  # requests off the queue and not answered yet

    @property
    def running(self) -> bool:
        """True between ``start`` and ``stop``."""
        return self._worker is not None and not self._worker.done()

    async def start(self) -> None:
        """Start the worker on the running event loop (idempotent)."""
        if self.running:
            return
        self._queue = asyncio.Queue(maxsize=self.max_queue)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ct-batcher")
        self._worker = asyncio.create_task(self._run(), name="ct-dynamic-batcher")

    async def stop(self) -> None:
        """Stop the worker; requests taken or queued fail with BatcherStopped at once, and ``stop`` returns
        once the forward in flight (if any) has finished."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._queue is not None:
            while not self._queue.empty():
                pending = self._queue.get_nowait()
                if not pending.future.done():
                    pending.future.set_exception(BatcherStopped("batcher stopped"))
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.to_thread(executor.shutdown, wait=True)  # the loop keeps serving meanwhile

    @property
    def queued(self) -> int:
        """Requests waiting in the queue now."""
        return self._queue.qsize() if self._queue is not None else 0

    async def submit(self, rows: np.ndarray) -> np.ndarray:
        """Queue ``rows`` (n, F) and wait for their outputs (n, ...); raises what ``forward`` raised, and
        BatcherFull at once when ``max_queue`` requests are already waiting."""
        if not self.running or self._queue is None:
            raise BatcherStopped("batcher is not running")
        future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Pending(rows, future))
        except asyncio.QueueFull:
            raise BatcherFull(f"{self.max_queue} requests already queued") from None
        return await future

    async def _collect(self, first: _Pending) -> list[_Pending]:
        """The first request plus whatever arrives until the batch is full or the timeout passes."""
        assert self._queue is not None
        clock = self._clock or asyncio.get_running_loop().time
        self._taken = batch = [first]
        size = len(first.rows)
        deadline = clock() + self.timeout_s
        while size < self.max_batch_size:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - clock()
                if remaining <= 0:
                    break
                item = await self._next_within(remaining)
                if item is None:
                    break
            batch.append(item)
            size += len(item.rows)
        return batch

    async def _next_within(self, seconds: float) -> _Pending | None:
        """The next queued request if one arrives within ``seconds``, else None."""
        assert self._queue is not None
        get = asyncio.ensure_future(self._queue.get())
        timer = asyncio.ensure_future(self._sleep(seconds))
        try:
            await asyncio.wait((get, timer), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            if get.done() and not get.cancelled():  # stopped as a request arrived: stop() must fail it too
                self._taken.append(get.result())
            raise
        finally:
            timer.cancel()
            get.cancel()  # a get still waiting leaves any later request in the queue
        return get.result() if get.done() and not get.cancelled() else None

    async def _run(self) -> None:
        assert self._queue is not None
        try:
            while True:
                batch = await self._collect(await self._queue.get())
                live = [p for p in batch if not p.future.done()]  # drop requests whose client went away
                if live:
                    await self._serve(live)
                self._taken = []
        except asyncio.CancelledError:  # stopped mid-batch: nobody may wait forever
            for pending in self._taken:
                if not pending.future.done():
                    pending.future.set_exception(BatcherStopped("batcher stopped"))
            self._taken = []
            raise

    async def _serve(self, live: list[_Pending]) -> None:
        """One forward for every live request; each future gets its slice, or the forward's exception."""
        x = live[0].rows if len(live) == 1 else np.concatenate([p.rows for p in live])
        try:
            out = await asyncio.get_running_loop().run_in_executor(self._executor, self.forward, x)
        except Exception as exc:
            for p in live:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        self.batches += 1
        self.rows += len(x)
        if self.on_batch is not None:
            self.on_batch(len(x))
        offset = 0
        for p in live:
            if not p.future.done():
                p.future.set_result(out[offset : offset + len(p.rows)])
            offset += len(p.rows)
