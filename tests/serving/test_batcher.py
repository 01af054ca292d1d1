"""The dynamic batcher: combines concurrent requests, keeps order, honours size and timeout, fails cleanly."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from model.serving.batcher import BatcherStopped, DynamicBatcher


class Recorder:
    """A forward that doubles its input and records the batch sizes it saw (and on which thread)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.sizes: list[int] = []
        self.threads: set[str] = set()
        self.delay_s = delay_s

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.sizes.append(len(x))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay_s)
        return x * 2


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_are_combined_and_each_gets_its_own_rows():
    forward = Recorder(delay_s=0.005)

    async def main():
        batcher = DynamicBatcher(forward, max_batch_size=8, timeout_ms=20)
        await batcher.start()
        rows = [np.full((1, 4), i, dtype=np.float32) for i in range(40)]
        outs = await asyncio.gather(*[batcher.submit(r) for r in rows])
        await batcher.stop()
        return rows, outs, batcher

    rows, outs, batcher = run(main())
    for row, out in zip(rows, outs, strict=True):
        np.testing.assert_array_equal(out, row * 2)
    assert sum(forward.sizes) == 40 and max(forward.sizes) <= 8
    assert len(forward.sizes) <= 6  # 40 rows in batches of <= 8: 5 full batches (+1 at most)
    assert batcher.batches == len(forward.sizes) and batcher.rows == 40
    assert all(name.startswith("ct-batcher") for name in forward.threads)


def test_multi_row_requests_are_split_back_in_order():
    forward = Recorder()

    async def main():
        batcher = DynamicBatcher(forward, max_batch_size=16, timeout_ms=20)
        await batcher.start()
        a, b = (
            np.arange(12, dtype=np.float32).reshape(3, 4),
            np.arange(8, dtype=np.float32).reshape(2, 4) + 100,
        )
        out_a, out_b = await asyncio.gather(batcher.submit(a), batcher.submit(b))
        await batcher.stop()
        return a, b, out_a, out_b

    a, b, out_a, out_b = run(main())
    np.testing.assert_array_equal(out_a, a * 2)
    np.testing.assert_array_equal(out_b, b * 2)
    assert forward.sizes == [5]


def test_a_lone_request_waits_at_most_the_timeout():
    forward = Recorder()

    async def main():
        batcher = DynamicBatcher(forward, max_batch_size=32, timeout_ms=50)
        await batcher.start()
        start = time.perf_counter()
        await batcher.submit(np.ones((1, 4), dtype=np.float32))
        elapsed = time.perf_counter() - start
        await batcher.stop()
        return elapsed

    elapsed = run(main())
    assert 0.045 <= elapsed < 1.0
    assert forward.sizes == [1]


def test_a_full_batch_does_not_wait_for_the_timeout():
    forward = Recorder()

    async def main():
        batcher = DynamicBatcher(forward, max_batch_size=4, timeout_ms=5000)
        await batcher.start()
        start = time.perf_counter()
        await asyncio.gather(*[batcher.submit(np.ones((1, 4), dtype=np.float32)) for _ in range(4)])
        elapsed = time.perf_counter() - start
        await batcher.stop()
        return elapsed

    assert run(main()) < 2.0
    assert forward.sizes == [4]


def test_forward_errors_reach_every_request_of_the_batch_and_the_worker_survives():
    calls = {"n": 0}

    def flaky(x: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return x

    async def main():
        batcher = DynamicBatcher(flaky, max_batch_size=8, timeout_ms=20)
        await batcher.start()
        results = await asyncio.gather(
            *[batcher.submit(np.ones((1, 2), dtype=np.float32)) for _ in range(3)], return_exceptions=True
        )
        after = await batcher.submit(np.zeros((1, 2), dtype=np.float32))
        await batcher.stop()
        return results, after

    results, after = run(main())
    assert all(isinstance(r, RuntimeError) and str(r) == "boom" for r in results)
    np.testing.assert_array_equal(after, np.zeros((1, 2)))


def test_stop_fails_queued_requests_and_refuses_new_ones():
    async def main():
        batcher = DynamicBatcher(Recorder(delay_s=0.2), max_batch_size=1, timeout_ms=0)
        await batcher.start()
        first = asyncio.ensure_future(batcher.submit(np.ones((1, 2), dtype=np.float32)))
        queued = asyncio.ensure_future(batcher.submit(np.ones((1, 2), dtype=np.float32)))
        await asyncio.sleep(0.05)  # the first is inside forward, the second waits in the queue
        await batcher.stop()
        with pytest.raises(BatcherStopped):
            await batcher.submit(np.ones((1, 2), dtype=np.float32))
        return await asyncio.gather(first, queued, return_exceptions=True)

    first, queued = run(main())
    assert isinstance(queued, BatcherStopped)
    assert isinstance(first, asyncio.CancelledError | BatcherStopped | np.ndarray)


@pytest.mark.parametrize(("size", "timeout"), [(0, 10.0), (8, -1.0)])
def test_bad_settings_are_refused(size, timeout):
    with pytest.raises(ValueError, match="max_batch_size|timeout_ms"):
        DynamicBatcher(Recorder(), max_batch_size=size, timeout_ms=timeout)
