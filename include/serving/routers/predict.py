"""``POST /predict``: images in, classes and probabilities out, through the dynamic batcher."""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from include.ops import serving_routes as routes
from include.serving.auth import mount
from include.serving.registry import ModelUnavailable
from include.serving.schemas import PredictRequest, PredictResponse

router = APIRouter(tags=["inference"])
log = logging.getLogger("include.serving")


@mount(
    router,
    routes.PREDICT,
    response_model=PredictResponse,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": PredictRequest.model_json_schema()}},
        }
    },
)
async def predict(request: Request) -> PredictResponse:
    """Classify every image (503 without a model); a request over the threshold logs ``slow inference``."""
    try:  # validated straight from the bytes (pydantic-core): the hot path skips json.loads + dict walking
        body = PredictRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False, include_context=False)]
        ) from exc
    state = request.app.state
    loaded = state.store.current
    if loaded is None:
        raise HTTPException(503, f"no model loaded: {state.store.last_error or 'not loaded'}")
    x = np.asarray(body.instances, dtype=np.float32)  # (B, 64) raw intensities 0..16
    start = time.perf_counter()
    try:
        if state.batcher is not None:
            probs = await state.batcher.submit(x)
        else:  # naive: one forward per request, on the same single inference thread
            probs = await asyncio.get_running_loop().run_in_executor(
                state.naive_executor, state.store.predict, x
            )
    except ModelUnavailable as exc:
        state.telemetry.predictions.labels(outcome="error").inc(len(x))
        raise HTTPException(503, str(exc)) from exc
    elapsed = time.perf_counter() - start
    state.telemetry.inference_seconds.observe(elapsed)
    state.telemetry.predictions.labels(outcome="ok").inc(len(x))
    if elapsed * 1000 > state.serving.slow_inference_ms:
        log.warning(
            "slow inference: %.1f ms for %d image(s) (threshold %.0f ms)",
            elapsed * 1000, len(x), state.serving.slow_inference_ms,
            extra={"duration_ms": round(elapsed * 1000, 1), "rows": len(x)},
        )  # fmt: skip
    return PredictResponse(
        model_version=loaded.version,
        model_source=loaded.source,
        classes=probs.argmax(axis=1).tolist(),
        probabilities=np.round(probs, 6).tolist(),
    )
