"""Operator overrides (runbook "Incident Response"): stored atomically, used by the next training run.

Bodies are JSON whatever the content type (the runbook's ``curl -d`` sends a form type), parsed off the event
loop; a bad value is a 422 naming the field, and nothing is stored.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError

from include.ops import runtime_config
from include.ops import serving_routes as routes
from include.serving.auth import mount
from include.serving.body import json_body, openapi_body
from include.serving.schemas import (
    BatchSizeBody,
    ConfigChange,
    LearningRateBody,
    MixedPrecisionBody,
    WeightDecayBody,
    model_config_body,
)

router = APIRouter(tags=["config"])
log = logging.getLogger("include.serving")
NEXT_TRAINING = "the next training run (TrainConfig overrides)"
ModelConfigUpdate = model_config_body()


def _field_error(exc: ValueError, default: str) -> RequestValidationError:
    field = exc.field if isinstance(exc, runtime_config.ConfigFieldError) else default
    return RequestValidationError([{"type": "value_error", "loc": ("body", field), "msg": str(exc)}])


def _train_override(key: str, value: Any, field: str) -> ConfigChange:
    try:
        overrides = runtime_config.set_train_overrides({key: value})
    except ValueError as exc:
        raise _field_error(exc, field) from None
    log.info("train override %s=%r accepted", key, value)
    return ConfigChange(changed={key: value}, overrides=overrides, applies_to=NEXT_TRAINING)


@mount(router, routes.CONFIG_BATCH_SIZE, openapi_extra=openapi_body(BatchSizeBody))
def set_batch_size(body: BatchSizeBody = Depends(json_body(BatchSizeBody))) -> ConfigChange:
    """Training batch size (e.g. lower it after CUDA out-of-memory)."""
    return _train_override("batch_size", body.value, "value")


@mount(router, routes.CONFIG_LEARNING_RATE, openapi_extra=openapi_body(LearningRateBody))
def set_learning_rate(body: LearningRateBody = Depends(json_body(LearningRateBody))) -> ConfigChange:
    """Peak learning rate of the next training run."""
    return _train_override("lr", body.value, "value")


@mount(router, routes.CONFIG_WEIGHT_DECAY, openapi_extra=openapi_body(WeightDecayBody))
def set_weight_decay(body: WeightDecayBody = Depends(json_body(WeightDecayBody))) -> ConfigChange:
    """AdamW weight decay of the next training run."""
    return _train_override("weight_decay", body.value, "value")


@mount(router, routes.CONFIG_MIXED_PRECISION, openapi_extra=openapi_body(MixedPrecisionBody))
def set_mixed_precision(body: MixedPrecisionBody = Depends(json_body(MixedPrecisionBody))) -> ConfigChange:
    """bf16 autocast on CUDA for the next training run."""
    return _train_override("mixed_precision", body.enabled, "enabled")


@mount(router, routes.CONFIG_MODEL_GET)
def get_model_config(request: Request) -> dict:
    """The served model's config, the stored overrides, and the config a new learner would get."""
    from model.config import ModelConfig

    loaded = request.app.state.store.current
    try:
        overrides = runtime_config.load_model_overrides()
    except ValueError as exc:
        raise HTTPException(500, str(exc)) from exc
    base = loaded.config if loaded is not None else ModelConfig().to_dict()
    return {
        "loaded": loaded.config if loaded is not None else None,
        "overrides": overrides,
        "effective": ModelConfig.from_dict({**base, **overrides}).to_dict(),
    }


@mount(router, routes.CONFIG_MODEL_PUT, openapi_extra=openapi_body(ModelConfigUpdate))
async def put_model_config(request: Request, update: Any = Depends(json_body(ModelConfigUpdate))) -> dict:
    """Store ModelConfig overrides for a new learner once the whole config passes ModelConfig's checks and the
    parameter budget; the served model keeps its checkpoint's architecture."""
    changes = update.model_dump(exclude_none=True)
    if not changes:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "body must set at least one ModelConfig field"}]
        )
    try:
        overrides = await run_in_threadpool(runtime_config.set_model_overrides, changes)
    except ValueError as exc:
        raise _field_error(exc, next(iter(changes))) from None
    loaded = request.app.state.store.current
    differs = loaded is not None and any(loaded.config.get(k) != v for k, v in overrides.items())
    return {
        "changed": changes,
        "overrides": overrides,
        "applies_to": "a new learner (a fresh state dir); existing checkpoints keep their architecture",
        "differs_from_served": differs,
    }
