"""The dynamic batcher: combines concurrent requests, keeps order, honours size and timeout, fails cleanly.

Deterministic: time is a ``FakeTime`` the test advances by hand, and the forward in flight is held by events.
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from include.serving.batcher import BatcherStopped, DynamicBatcher

GUARD_S = 30.0  # only a broken batcher gets near this: the tests never wait on real time otherwise


class Recorder:
    """A forward that doubles its input and records the batch sizes it saw (and on which thread)."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.threads: set[str] = set()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.sizes.append(len(x))
        self.threads.add(threading.current_thread().name)
        return x * 2


class FakeTime:
    """The batcher's clock and sleep: time moves only on ``advance``; ``sleeping`` is set while it waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.requested: list[float] = []  # every sleep the batcher asked for, in seconds
        self._sleepers: list[tuple[float, asyncio.Future]] = []
        self.sleeping = asyncio.Event()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        wake = asyncio.get_running_loop().create_future()
        entry = (self.now + seconds, wake)
        self.requested.append(seconds)
        self._sleepers.append(entry)
        self.sleeping.set()
        try:
            await wake
        finally:
            self._sleepers.remove(entry)
            if not self._sleepers:
                self.sleeping.clear()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for at, wake in self._sleepers:
            if at <= self.now and not wake.done():
                wake.set_result(None)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, GUARD_S))


async def idle() -> None:
    """Let every ready callback run (nothing the batcher does here needs real time)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def until(condition) -> None:
    """Yield to the event loop until ``condition()`` holds (the run's guard catches a hang)."""
    while not condition():
        await asyncio.sleep(0)


def batcher_on(time: FakeTime, forward, **kwargs) -> DynamicBatcher:
    return DynamicBatcher(forward, clock=time.clock, sleep=time.sleep, **kwargs)


def test_concurrent_requests_are_combined_and_each_gets_its_own_rows():
    forward = Recorder()

    async def main():
        time = FakeTime()
        batcher = batcher_on(time, forward, max_batch_size=8, timeout_ms=20)
        await batcher.start()
        rows = [np.full((1, 4), i, dtype=np.float32) for i in range(40)]
        outs = await asyncio.gather(*[batcher.submit(r) for r in rows])
        await batcher.stop()
        return rows, outs, batcher, time

    rows, outs, batcher, time = run(main())
    for row, out in zip(rows, outs, strict=True):
        np.testing.assert_array_equal(out, row * 2)
    assert forward.sizes == [8] * 5  # 40 rows queued at once, in batches of max_batch_size
    assert time.requested == []  # full batches never wait for the timeout
    assert batcher.batches == len(forward.sizes) and batcher.rows == 40
    assert all(name.startswith("ct-batcher") for name in forward.threads)


def test_multi_row_requests_are_split_back_in_order():
    forward = Recorder()

    async def main():
        time = FakeTime()
        batcher = batcher_on(time, forward, max_batch_size=16, timeout_ms=20)
        await batcher.start()
        a, b = (
            np.arange(12, dtype=np.float32).reshape(3, 4),
            np.arange(8, dtype=np.float32).reshape(2, 4) + 100,
        )
        both = asyncio.gather(batcher.submit(a), batcher.submit(b))
        await time.sleeping.wait()  # 5 of 16 rows: the batch waits for more
        time.advance(0.020)
        out_a, out_b = await both
        await batcher.stop()
        return a, b, out_a, out_b

    a, b, out_a, out_b = run(main())
    np.testing.assert_array_equal(out_a, a * 2)
    np.testing.assert_array_equal(out_b, b * 2)
    assert forward.sizes == [5]


def test_a_lone_request_waits_exactly_the_timeout():
    forward = Recorder()

    async def main():
        time = FakeTime()
        batcher = batcher_on(time, forward, max_batch_size=32, timeout_ms=50)
        await batcher.start()
        request = asyncio.ensure_future(batcher.submit(np.ones((1, 4), dtype=np.float32)))
        await time.sleeping.wait()
        time.advance(0.049)
        await idle()
        waited_short = request.done() or forward.sizes != []
        time.advance(0.001)
        await request
        await batcher.stop()
        return time, waited_short

    time, waited_short = run(main())
    assert not waited_short  # 49 ms in, still waiting for company
    assert time.requested == [pytest.approx(0.050)]  # ... and served once the 50 ms were up
    assert forward.sizes == [1]


def test_a_request_arriving_within_the_timeout_joins_the_batch():
    forward = Recorder()

    async def main():
        time = FakeTime()
        batcher = batcher_on(time, forward, max_batch_size=32, timeout_ms=50)
        await batcher.start()
        first = asyncio.ensure_future(batcher.submit(np.ones((1, 4), dtype=np.float32)))
        await time.sleeping.wait()
        time.advance(0.030)
        second = asyncio.ensure_future(batcher.submit(np.ones((2, 4), dtype=np.float32)))
        await until(lambda: len(time.requested) == 2)  # the batcher takes it and waits out the other 20 ms
        time.advance(0.020)
        await asyncio.gather(first, second)
        await batcher.stop()
        return time

    time = run(main())
    assert forward.sizes == [3]
    assert time.requested == [pytest.approx(0.050), pytest.approx(0.020)]


def test_a_full_batch_does_not_wait_for_the_timeout():
    forward = Recorder()

    async def main():
        time = FakeTime()
        batcher = batcher_on(time, forward, max_batch_size=4, timeout_ms=5000)
        await batcher.start()
        await asyncio.gather(*[batcher.submit(np.ones((1, 4), dtype=np.float32)) for _ in range(4)])
        await batcher.stop()
        return time

    assert run(main()).requested == []  # served without time ever moving
    assert forward.sizes == [4]


def test_forward_errors_reach_every_request_of_the_batch_and_the_worker_survives():
    calls = {"n": 0}

    def flaky(x: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return x

    async def main():
        batcher = DynamicBatcher(flaky, max_batch_size=8, timeout_ms=0)  # no waiting: what is queued goes
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
    assert calls["n"] == 2


def test_stop_fails_taken_and_queued_requests_and_refuses_new_ones():
    entered, release = threading.Event(), threading.Event()

    def held(x: np.ndarray) -> np.ndarray:
        entered.set()
        release.wait(GUARD_S)
        return x

    async def main():
        batcher = DynamicBatcher(held, max_batch_size=1, timeout_ms=0)
        await batcher.start()
        first = asyncio.ensure_future(batcher.submit(np.ones((1, 2), dtype=np.float32)))
        queued = asyncio.ensure_future(batcher.submit(np.ones((1, 2), dtype=np.float32)))
        await asyncio.to_thread(entered.wait, GUARD_S)  # the first is inside forward, the second in the queue
        stopping = asyncio.ensure_future(batcher.stop())
        results = await asyncio.gather(first, queued, return_exceptions=True)  # while forward still runs
        stopped_early = stopping.done()
        release.set()
        await stopping
        with pytest.raises(BatcherStopped):
            await batcher.submit(np.ones((1, 2), dtype=np.float32))
        return results, stopped_early

    (first, queued), stopped_early = run(main())
    assert isinstance(first, BatcherStopped) and isinstance(queued, BatcherStopped)
    assert not stopped_early  # stop() returns only once the forward in flight has finished


@pytest.mark.parametrize(("size", "timeout"), [(0, 10.0), (8, -1.0)])
def test_bad_settings_are_refused(size, timeout):
    with pytest.raises(ValueError, match="max_batch_size|timeout_ms"):
        DynamicBatcher(Recorder(), max_batch_size=size, timeout_ms=timeout)
