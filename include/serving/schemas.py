"""Request and response bodies of the API; strict types so a bad field is a 422 that names it."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

NUM_PIXELS = 64  # 8x8 digits
PIXEL_MAX = 16
MAX_INSTANCES = 4096  # hard cap of the schema; ServingSettings.max_rows (default 256) is the one enforced

Pixel = Annotated[int, Field(strict=True, ge=0, le=PIXEL_MAX)]
Image = Annotated[list[Pixel], Field(min_length=NUM_PIXELS, max_length=NUM_PIXELS)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PredictRequest(_Strict):
    """A batch of flattened 8x8 images, 64 integer intensities 0..16 each."""

    instances: list[Image] = Field(min_length=1, max_length=MAX_INSTANCES)


class PredictResponse(BaseModel):
    """Argmax class and the class probabilities of every image, and the model version that computed them."""

    model_version: str | None
    model_source: str
    classes: list[int]
    probabilities: list[list[float]]


class BatchSizeBody(_Strict):
    """New training batch size."""

    value: Annotated[int, Field(strict=True, ge=1, le=4096)]


class LearningRateBody(_Strict):
    """New peak learning rate."""

    value: Annotated[float, Field(strict=True, gt=0.0, le=1.0)]


class WeightDecayBody(_Strict):
    """New AdamW weight decay."""

    value: Annotated[float, Field(strict=True, ge=0.0, le=1.0)]


class MixedPrecisionBody(_Strict):
    """Turn bf16 autocast (CUDA only) on or off."""

    enabled: Annotated[bool, Field(strict=True)]


class ConfigChange(BaseModel):
    """Answer to an accepted override: what changed and the overrides now stored."""

    changed: dict[str, Any]
    overrides: dict[str, Any]
    applies_to: str


# Sanity caps of the API on top of ModelConfig's own checks and its parameter budget: they keep a hostile
# value (n_layers=10**9) from costing anything before the budget check builds the network on the meta device.
MODEL_FIELD_BOUNDS: dict[str, tuple[int, int]] = {
    "image_size": (1, 256),
    "patch_size": (1, 256),
    "channels": (1, 16),
    "d_model": (1, 4096),
    "n_layers": (1, 64),
    "n_heads": (1, 256),
    "mlp_ratio": (1, 16),
    "num_classes": (1, 100_000),
    "max_tasks": (1, 10_000),
}
NOT_SETTABLE = ("param_budget",)  # a stream's capacity (CT_PARAM_BUDGET), never raised through the API


def model_config_body() -> type[BaseModel]:
    """A strict, all-optional pydantic model of ModelConfig's settable fields, bounded, finite (unknown or
    unsettable fields rejected)."""
    from model.config import POOLS, ModelConfig

    fields: dict[str, Any] = {}
    for f in dataclasses.fields(ModelConfig):
        if f.name in NOT_SETTABLE:
            continue
        if f.name in MODEL_FIELD_BOUNDS:
            lo, hi = MODEL_FIELD_BOUNDS[f.name]
            kind: Any = Annotated[int, Field(strict=True, ge=lo, le=hi)]
        elif f.name == "dropout":
            kind = Annotated[float, Field(ge=0.0, lt=1.0, allow_inf_nan=False)]
        elif f.name == "pool":
            kind = Literal[POOLS]  # type: ignore[valid-type]
        elif isinstance(f.default, bool):
            kind = Annotated[bool, Field(strict=True)]
        elif isinstance(f.default, float):
            kind = Annotated[float, Field(allow_inf_nan=False)]  # JSON 1 for a float field is fine
        elif isinstance(f.default, int):
            kind = Annotated[int, Field(strict=True, ge=1)]
        else:
            kind = Annotated[str, Field(strict=True, max_length=64)]
        fields[f.name] = (kind | None, None)
    return create_model("ModelConfigUpdate", __config__=ConfigDict(extra="forbid"), **fields)
