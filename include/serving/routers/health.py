"""Liveness, system/model health, the aggregate check and the Prometheus endpoint."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from include.ops import serving_routes as routes
from include.serving.auth import mount
from include.serving.health import CheckResult, aggregate, model_check, system_check

router = APIRouter(tags=["health"])


def _respond(request: Request, result: CheckResult) -> JSONResponse:
    body = request.app.state.scrubber.scrub(result.body())
    return JSONResponse(body, status_code=503 if result.errors else 200)


@mount(router, routes.LIVENESS)
def liveness(request: Request) -> dict:
    """The process answers: ``{"status": "ok"}``."""
    return {"status": "ok", "uptime_s": round(time.time() - request.app.state.started_at, 1)}


@mount(router, routes.HEALTH_SYSTEM)
def health_system(request: Request) -> JSONResponse:
    """CPU, memory, disk and GPU use against the configured thresholds."""
    return _respond(request, system_check(request.app.state.paths, request.app.state.serving))


@mount(router, routes.HEALTH_MODEL)
def health_model(request: Request) -> JSONResponse:
    """Whether a model is served, served vs registry version, age, last retention, the file still intact."""
    state = request.app.state
    return _respond(request, model_check(state.store, state.paths, state.serving))


@mount(router, routes.HEALTH_ALL)
def health_all(request: Request) -> JSONResponse:
    """200 healthy/degraded or 503 unhealthy, with every component's check."""
    state = request.app.state
    code, body = aggregate(
        {
            "system": system_check(state.paths, state.serving),
            "model": model_check(state.store, state.paths, state.serving),
        }
    )
    return JSONResponse(state.scrubber.scrub(body), status_code=code)


@mount(router, routes.METRICS)
def metrics(request: Request) -> Response:
    """Prometheus exposition of the app's metrics."""
    return Response(request.app.state.telemetry.render(), media_type=CONTENT_TYPE_LATEST)
