"""Request and response bodies of the API; strict types so a bad field is a 422 that names it."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

NUM_PIXELS = 64  # 8x8 digits
PIXEL_MAX = 16
MAX_INSTANCES = 256

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


def model_config_body() -> type[BaseModel]:
    """A strict, all-optional pydantic model of ModelConfig's fields (unknown fields rejected)."""
    from model.config import ModelConfig

    kinds = {"int": int, "float": float, "str": str, "bool": bool}
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(ModelConfig):
        kind = kinds.get(f.type if isinstance(f.type, str) else getattr(f.type, "__name__", ""), Any)
        strict = kind is not float  # JSON 1 for a float field is fine; "8" for an int field is not
        fields[f.name] = (Annotated[kind | None, Field(strict=strict)], None)
    return create_model("ModelConfigUpdate", __config__=ConfigDict(extra="forbid"), **fields)
