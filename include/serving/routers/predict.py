"""``POST /predict``: images in, classes and probabilities out, through the dynamic batcher."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError

from include.ops import serving_routes as routes
from include.serving.auth import mount
from include.serving.batcher import BatcherFull
from include.serving.body import openapi_body, parse_json, read_json, validate
from include.serving.registry import ModelUnavailable
from include.serving.schemas import PredictRequest, PredictResponse

router = APIRouter(tags=["inference"])
noop_router = APIRouter(tags=["bench"])  # mounted only when ServingSettings.bench_noop
log = logging.getLogger("include.serving")


def parse_predict(raw: bytes, max_rows: int) -> np.ndarray:
    """The images of a ``/predict`` body as a (B, 64) float32 array; 422 naming the field.

    A well-formed body is validated straight from the bytes (pydantic-core); anything else is parsed again by
    ``parse_json`` for the precise 422 (non-finite number, UTF-8, row cap before the rows are validated)."""
    try:
        instances = PredictRequest.model_validate_json(raw).instances
    except ValidationError:
        return _parse_predict_slowly(raw, max_rows)
    if len(instances) > max_rows:
        raise _too_many(len(instances), max_rows)
    return np.asarray(instances, dtype=np.float32)  # (B, 64) raw intensities 0..16


def _too_many(rows: int, max_rows: int) -> RequestValidationError:
    return RequestValidationError(
        [
            {
                "type": "too_long",
                "loc": ("body", "instances"),
                "msg": f"at most {max_rows} images per request, got {rows}",
            }
        ]
    )


def _parse_predict_slowly(raw: bytes, max_rows: int) -> np.ndarray:
    data: Any = parse_json(raw)
    instances = data.get("instances") if isinstance(data, dict) else None
    if isinstance(instances, list) and len(instances) > max_rows:
        raise _too_many(len(instances), max_rows)
    body = validate(PredictRequest, data)
    return np.asarray(body.instances, dtype=np.float32)  # (B, 64) raw intensities 0..16


def shed(state: Any) -> HTTPException:
    """503 + Retry-After for a request the full queue cannot take; counted in the shed metric."""
    state.telemetry.shed.inc()
    return HTTPException(
        503,
        f"overloaded: {state.serving.max_queue} requests already queued; retry after "
        f"{state.serving.retry_after_s} s",
        headers={"Retry-After": str(state.serving.retry_after_s)},
    )


async def _naive(state: Any, x: np.ndarray) -> np.ndarray:
    """One forward per request on the single inference thread, with the same queue bound as the batcher."""
    if state.naive_pending >= state.serving.max_queue:
        raise shed(state)
    state.naive_pending += 1
    try:
        return await asyncio.get_running_loop().run_in_executor(state.naive_executor, state.store.predict, x)
    finally:
        state.naive_pending -= 1


@mount(router, routes.PREDICT, response_model=PredictResponse, openapi_extra=openapi_body(PredictRequest))
async def predict(request: Request) -> Response:
    """Classify every image (503 without a model, 503 + Retry-After when the queue is full)."""
    state = request.app.state
    x = await read_json(request, lambda raw: parse_predict(raw, state.serving.max_rows))
    loaded = state.store.current
    if loaded is None:
        raise HTTPException(503, f"no model loaded: {state.store.last_error or 'not loaded'}")
    start = time.perf_counter()
    try:
        probs = await (state.batcher.submit(x) if state.batcher is not None else _naive(state, x))
    except BatcherFull:
        raise shed(state) from None
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
    body = {
        "model_version": loaded.version,
        "model_source": loaded.source,
        "classes": probs.argmax(axis=1).tolist(),
        "probabilities": np.round(probs, 6).tolist(),
    }  # the PredictResponse shape, encoded once (no re-validation of our own output on the hot path)
    return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")


@mount(noop_router, routes.BENCH_NOOP)
async def bench_noop() -> dict:
    """A constant answer behind the same middleware (mounted only with ``CT_SERVING_BENCH_NOOP``)."""
    return {"ok": True}
