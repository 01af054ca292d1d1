"""App factory: loads the champion at start, runs the dynamic batcher and the champion poll, mounts one router
per concern behind the request-body limit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import psutil
from fastapi import FastAPI

from include.ops.jsonlog import configure_json_logging, remove_json_logging
from include.ops.settings import ServingSettings, Settings, get_settings
from include.serving.batcher import DynamicBatcher
from include.serving.errors import PathScrubber, install_error_handlers
from include.serving.limits import BodyLimitMiddleware
from include.serving.registry import ModelStore, ModelUnavailable
from include.serving.routers import admin, config, health, predict, training
from include.serving.telemetry import Telemetry

log = logging.getLogger("include.serving")


async def follow_champion(store: ModelStore, interval_s: float) -> None:
    """Every ``interval_s``: look up the registry's ``champion`` (in a thread) and swap it in when it moved."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(store.follow_champion)  # logs what it swapped in
        except Exception:  # the poll must outlive any one failure; health reports the registry state
            log.exception("champion poll failed")


def create_app(serving: ServingSettings | None = None, paths: Settings | None = None) -> FastAPI:
    """Build the app; settings default to the environment (``get_settings()``). The model loads at start."""
    paths = paths or get_settings()
    serving = serving or paths.serving

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_json_logging(serving.log_component, log_dir=paths.log_dir)
        if serving.torch_threads:
            import torch

            torch.set_num_threads(serving.torch_threads)
        psutil.cpu_percent(interval=None)  # prime: the next call reports usage since now
        with contextlib.suppress(ModelUnavailable):  # /health/model reports it; /api/model/reload retries
            store.load()
        if serving.batching:
            app.state.batcher = DynamicBatcher(
                store.predict,
                serving.max_batch_size,
                serving.batch_timeout_ms,
                on_batch=telemetry.batch_size.observe,
                max_queue=serving.max_queue,
            )
            await app.state.batcher.start()
        else:
            app.state.naive_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ct-naive")
        poll = None
        if serving.champion_poll_s > 0:
            poll = asyncio.create_task(
                follow_champion(store, serving.champion_poll_s), name="ct-champion-poll"
            )
        log.info(
            "serving app started (batching=%s max_batch_size=%d timeout_ms=%g max_queue=%d)",
            serving.batching, serving.max_batch_size, serving.batch_timeout_ms, serving.max_queue,
        )  # fmt: skip
        try:
            yield
        finally:
            if poll is not None:
                poll.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poll
            if app.state.batcher is not None:
                await app.state.batcher.stop()
            if app.state.naive_executor is not None:
                app.state.naive_executor.shutdown(wait=True)
            remove_json_logging(serving.log_component)

    app = FastAPI(
        title="continual-tiny-transformer serving",
        description="Champion model inference, health, metrics and the runbook's operations API.",
        version="1.0.0",
        lifespan=lifespan,
    )
    store = ModelStore(paths, serving)
    telemetry = Telemetry(store)
    app.state.serving = serving
    app.state.paths = paths
    app.state.store = store
    app.state.telemetry = telemetry
    app.state.batcher = None
    app.state.naive_executor = None
    app.state.naive_pending = 0
    app.state.scrubber = scrubber = PathScrubber(paths)
    app.state.started_at = time.time()
    for router in (health.router, predict.router, training.router, config.router, admin.router):
        app.include_router(router)
    if serving.bench_noop:
        app.include_router(predict.noop_router)
    install_error_handlers(app, scrubber)
    app.add_middleware(BodyLimitMiddleware, max_bytes=serving.max_body_bytes)
    return app
