"""The serving app's route table: each runbook endpoint it serves, its method, path and whether it needs the token.

Plain data, kept in the ops library so that the app (its routers mount exactly these, see
``include.serving.auth.mount``) and the monthly documentation check (it audits the README's runbook map against
them) read one list, and the check never imports the app.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    """One endpoint of the serving app."""

    method: str  # HTTP method, upper case
    path: str
    auth: bool  # True: the bearer token (CT_API_TOKEN) is required

    @property
    def endpoint(self) -> str:
        """``METHOD /path``, as the runbook and the documentation check write it."""
        return f"{self.method} {self.path}"


# health and metrics
LIVENESS = Route("GET", "/health", auth=False)
HEALTH_SYSTEM = Route("GET", "/health/system", auth=False)
HEALTH_MODEL = Route("GET", "/health/model", auth=False)
HEALTH_ALL = Route("GET", "/health/all", auth=False)
METRICS = Route("GET", "/metrics", auth=False)
# inference
PREDICT = Route("POST", "/predict", auth=False)
# read-only training views
JOBS_RECENT = Route("GET", "/api/jobs/recent", auth=False)
TRAINING_HISTORY = Route("GET", "/api/training/history", auth=False)
LR_SCHEDULE = Route("GET", "/api/training/lr_schedule", auth=False)
# operator overrides for the next training run / a new learner
CONFIG_BATCH_SIZE = Route("POST", "/api/config/batch_size", auth=True)
CONFIG_LEARNING_RATE = Route("POST", "/api/config/learning_rate", auth=True)
CONFIG_WEIGHT_DECAY = Route("POST", "/api/config/weight_decay", auth=True)
CONFIG_MIXED_PRECISION = Route("POST", "/api/config/mixed_precision", auth=True)
CONFIG_MODEL_GET = Route("GET", "/api/config/model", auth=False)
CONFIG_MODEL_PUT = Route("PUT", "/api/config/model", auth=True)
# model and system admin
MODEL_RELOAD = Route("POST", "/api/model/reload", auth=True)
CLEAR_GPU_CACHE = Route("POST", "/api/system/clear_gpu_cache", auth=True)

ROUTES: tuple[Route, ...] = (
    LIVENESS,
    HEALTH_SYSTEM,
    HEALTH_MODEL,
    HEALTH_ALL,
    METRICS,
    PREDICT,
    JOBS_RECENT,
    TRAINING_HISTORY,
    LR_SCHEDULE,
    CONFIG_BATCH_SIZE,
    CONFIG_LEARNING_RATE,
    CONFIG_WEIGHT_DECAY,
    CONFIG_MIXED_PRECISION,
    CONFIG_MODEL_GET,
    CONFIG_MODEL_PUT,
    MODEL_RELOAD,
    CLEAR_GPU_CACHE,
)

# mounted only when CT_SERVING_BENCH_NOOP is set: the serving bench's HTTP ceiling, not an operator endpoint
BENCH_NOOP = Route("POST", "/bench/noop", auth=False)


def endpoints() -> list[str]:
    """``METHOD /path`` of every route the app serves, sorted."""
    return sorted(route.endpoint for route in ROUTES)
