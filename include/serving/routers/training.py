"""Read-only training views: recent jobs, training history, the learning-rate schedule."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Request

from include.ops import serving_routes as routes
from include.ops.runtime_config import effective_train_config
from include.serving import jobs
from include.serving.auth import mount

router = APIRouter(tags=["training"])


@mount(router, routes.JOBS_RECENT)
def jobs_recent(request: Request, limit: int = Query(20, ge=1, le=200)) -> dict:
    """Newest training runs (MLflow) and maintenance runs (reports), newest first."""
    return request.app.state.scrubber.scrub(jobs.recent_jobs(request.app.state.paths, limit))


@mount(router, routes.TRAINING_HISTORY)
def training_history(request: Request, limit: int = Query(50, ge=1, le=500)) -> dict:
    """Every training run: loss per epoch, retention per task, summary metrics."""
    return request.app.state.scrubber.scrub(jobs.training_history(request.app.state.paths, limit))


@mount(router, routes.LR_SCHEDULE)
def lr_schedule(request: Request, train_samples: int | None = Query(None, ge=1, le=10_000_000)) -> dict:
    """LR per optimizer step the next training run will use (defaults + operator overrides)."""
    samples = train_samples or jobs.train_samples_per_task(request.app.state.paths)
    if samples is None:
        raise HTTPException(404, "no task stream found to size the schedule; pass train_samples")
    try:
        config = effective_train_config()
    except ValueError as exc:
        raise HTTPException(500, str(exc)) from exc
    return {"train_samples": samples, **jobs.lr_schedule(config, samples)}
