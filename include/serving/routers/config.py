"""Operator overrides (runbook "Incident Response"): stored atomically, used by the next training run."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Body, HTTPException, Request
from fastapi.exceptions import RequestValidationError

from include.ops import runtime_config
from include.ops import serving_routes as routes
from include.serving.auth import mount
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


def _train_override(key: str, value: Any) -> ConfigChange:
    try:
        overrides = runtime_config.set_train_overrides({key: value})
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    log.info("train override %s=%r accepted", key, value)
    return ConfigChange(changed={key: value}, overrides=overrides, applies_to=NEXT_TRAINING)


@mount(router, routes.CONFIG_BATCH_SIZE)
def set_batch_size(body: BatchSizeBody) -> ConfigChange:
    """Training batch size (e.g. lower it after CUDA out-of-memory)."""
    return _train_override("batch_size", body.value)


@mount(router, routes.CONFIG_LEARNING_RATE)
def set_learning_rate(body: LearningRateBody) -> ConfigChange:
    """Peak learning rate of the next training run."""
    return _train_override("lr", body.value)


@mount(router, routes.CONFIG_WEIGHT_DECAY)
def set_weight_decay(body: WeightDecayBody) -> ConfigChange:
    """AdamW weight decay of the next training run."""
    return _train_override("weight_decay", body.value)


@mount(router, routes.CONFIG_MIXED_PRECISION)
def set_mixed_precision(body: MixedPrecisionBody) -> ConfigChange:
    """bf16 autocast on CUDA for the next training run."""
    return _train_override("mixed_precision", body.enabled)


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


@mount(router, routes.CONFIG_MODEL_PUT)
def put_model_config(request: Request, body: dict[str, Any] = Body(...)) -> dict:
    """Store ModelConfig overrides for a new learner; the served model keeps its checkpoint's architecture."""
    from pydantic import ValidationError

    try:
        update = ModelConfigUpdate.model_validate(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False, include_context=False)]
        ) from exc
    changes = update.model_dump(exclude_none=True)
    if not changes:
        raise HTTPException(422, "body must set at least one ModelConfig field")
    try:
        overrides = runtime_config.set_model_overrides(changes)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    loaded = request.app.state.store.current
    differs = loaded is not None and any(loaded.config.get(k) != v for k, v in overrides.items())
    return {
        "changed": changes,
        "overrides": overrides,
        "applies_to": "a new learner (a fresh state dir); existing checkpoints keep their architecture",
        "differs_from_served": differs,
    }
