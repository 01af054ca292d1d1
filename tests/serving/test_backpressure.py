"""Backpressure: a bounded batcher queue; when full, /predict answers 503 + Retry-After and counts the shed."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from include.serving.batcher import BatcherFull, DynamicBatcher
from tests.serving.serving_support import serving_client

GUARD_S = 30.0  # only a broken implementation waits this long


class HeldForward:
    """A forward that blocks until ``release`` is set; ``entered`` is set once the first batch is inside."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.entered.set()
        assert self.release.wait(GUARD_S)
        return np.ones((len(x), 10), dtype=np.float32) / 10


def test_a_full_queue_refuses_at_once_and_the_queued_ones_are_served():
    async def scenario() -> None:
        forward = HeldForward()
        batcher = DynamicBatcher(forward, max_batch_size=1, timeout_ms=0, max_queue=2)
        await batcher.start()
        rows = np.zeros((1, 64), dtype=np.float32)
        first = asyncio.ensure_future(batcher.submit(rows))
        assert await asyncio.to_thread(forward.entered.wait, GUARD_S)  # taken: the queue is empty again
        queued = [asyncio.ensure_future(batcher.submit(rows)) for _ in range(2)]
        while batcher.queued < 2:
            await asyncio.sleep(0)
        with pytest.raises(BatcherFull, match="2 requests already queued"):
            await batcher.submit(rows)
        forward.release.set()
        results = await asyncio.wait_for(asyncio.gather(first, *queued), GUARD_S)
        assert [r.shape for r in results] == [(1, 10)] * 3
        await batcher.stop()

    asyncio.run(scenario())


def test_max_queue_must_not_be_negative():
    with pytest.raises(ValueError, match="max_queue"):
        DynamicBatcher(lambda x: x, max_queue=-1)


def test_predict_sheds_with_503_retry_after_and_a_metric(serving_env: Path, monkeypatch: pytest.MonkeyPatch):
    from include.serving.registry import ModelStore

    forward = HeldForward()
    real = ModelStore.predict
    monkeypatch.setattr(ModelStore, "predict", lambda self, x: (forward(x), real(self, x))[1])
    image = {"instances": [[0] * 64]}
    with serving_client(max_queue=1, max_batch_size=1, batch_timeout_ms=0, retry_after_s=3) as client:
        batcher = client.app.state.batcher
        with ThreadPoolExecutor(2) as pool:
            held = pool.submit(client.post, "/predict", json=image)
            assert forward.entered.wait(GUARD_S)
            waiting = pool.submit(client.post, "/predict", json=image)
            deadline = time.monotonic() + GUARD_S
            while batcher.queued < 1:  # a condition, not a clock: wait for the second to be queued
                assert time.monotonic() < deadline
                time.sleep(0.01)
            shed = client.post("/predict", json=image)
            forward.release.set()
            assert held.result(GUARD_S).status_code == 200 and waiting.result(GUARD_S).status_code == 200
        assert shed.status_code == 503 and shed.headers["retry-after"] == "3"
        assert "overloaded" in shed.json()["detail"]
        assert "continual_transformer_requests_shed_total 1.0" in client.get("/metrics").text
        assert client.post("/predict", json=image).status_code == 200  # the queue drained: accepted again
