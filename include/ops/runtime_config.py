"""Operator overrides set at runtime (serving API) and read by the next training run.

``<var_dir>/config/train_overrides.json`` holds a flat ``{TrainConfig field: value}`` object;
``<var_dir>/config/model_overrides.json`` a flat ``{ModelConfig field: value}`` object (used when a new
learner is created). Both are written atomically under a file lock, and validated against the config
dataclasses before they are stored, so a bad value is refused instead of breaking the next run.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from include.ops.settings import get_settings
from model.fsio import atomic_write_json, file_lock

log = logging.getLogger(__name__)

TRAIN_OVERRIDES_FILE = "train_overrides.json"
MODEL_OVERRIDES_FILE = "model_overrides.json"
GATE_OVERRIDES_FILE = "gate_overrides.json"  # {"retention_threshold": x, "accuracy_floor": y}, each in [0, 1]


class ConfigFieldError(ValueError):
    """A refused override, naming the field (``field``) it is about."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# the fields that set the network's size, in the order a budget refusal names them
SIZE_FIELDS = (
    "d_model",
    "n_layers",
    "mlp_ratio",
    "num_classes",
    "patch_size",
    "image_size",
    "channels",
    "pool",
)


def check_model_config(values: Mapping[str, Any], changed: Mapping[str, Any] | None = None) -> None:
    """``values`` as a ModelConfig: its own checks, every number finite, dropout in [0, 1), and the parameter
    budget (the network is built on the meta device: counting a huge one costs no memory). ConfigFieldError
    names the field; for the budget, the first size field among ``changed`` (default: ``values``)."""
    import torch

    from model.config import ModelConfig
    from model.network import TinyTransformer

    for key, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigFieldError(key, f"invalid model config override: {key} must be finite, got {value!r}")
        if isinstance(value, int) and not isinstance(value, bool) and key != "param_budget" and value < 1:
            raise ConfigFieldError(key, f"invalid model config override: {key} must be >= 1, got {value}")
    try:
        cfg = ModelConfig.from_dict(values)
    except (TypeError, ValueError) as exc:
        field = next((k for k in values if k in str(exc)), "body")
        raise ConfigFieldError(field, f"invalid model config override: {exc}") from exc
    if not 0.0 <= cfg.dropout < 1.0:
        raise ConfigFieldError(
            "dropout", f"invalid model config override: dropout must be in [0, 1), got {cfg.dropout}"
        )
    # the blocks' weight matrices alone bound the count from below: refuse the absurd without building
    floor = cfg.n_layers * (4 + 2 * cfg.mlp_ratio) * cfg.d_model**2
    try:
        if cfg.param_budget is not None and floor > cfg.param_budget:
            raise ValueError(
                f"a model with d_model {cfg.d_model} and {cfg.n_layers} layers has over {floor} parameters, "
                f"over the parameter budget of {cfg.param_budget}"
            )
        with torch.device("meta"):
            TinyTransformer(cfg)
    except ValueError as exc:
        size_fields = [k for k in SIZE_FIELDS if k in (changed if changed is not None else values)]
        raise ConfigFieldError(
            size_fields[0] if size_fields else "param_budget", f"invalid model config override: {exc}"
        ) from exc


def config_dir() -> Path:
    """Folder of the runtime override files (``<var_dir>/config``)."""
    return get_settings().var_dir / "config"


def _read_overrides(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"override file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"override file {path} must hold a JSON object, got {type(data).__name__}")
    return data


def _validated(kind: str, merged: dict[str, Any]) -> dict[str, Any]:
    """Check ``merged`` against TrainConfig/ModelConfig (or the gate's thresholds); ValueError naming the field."""
    from model.config import TrainConfig

    if kind == "gate":
        for key, value in merged.items():
            if key not in ("retention_threshold", "accuracy_floor"):
                raise ValueError(f"invalid gate override: unknown field {key!r}")
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ValueError(
                    f"invalid gate override: {key} must be a number within [0, 1], got {value!r}"
                )
        return merged

    if kind == "model":
        check_model_config(merged)
        return merged
    try:
        TrainConfig.from_dict(merged)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid {kind} config override: {exc}") from exc
    for key, value in merged.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigFieldError(key, f"invalid train config override: {key} must be finite, got {value!r}")
    return merged


def load_train_overrides() -> dict[str, Any]:
    """Operator overrides for TrainConfig (``{}`` when none); ValueError naming the file if it is corrupt."""
    path = config_dir() / TRAIN_OVERRIDES_FILE
    return _validated("train", _read_overrides(path))


def load_model_overrides() -> dict[str, Any]:
    """Operator overrides for the ModelConfig of a new learner (``{}`` when none)."""
    path = config_dir() / MODEL_OVERRIDES_FILE
    return _validated("model", _read_overrides(path))


def _update(kind: str, filename: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    path = config_dir() / filename
    with file_lock(path.with_name(path.name + ".lock")):
        merged = {**_read_overrides(path), **dict(changes)}
        if kind == "model":
            check_model_config(merged, changed=changes)
        else:
            _validated(kind, merged)
        atomic_write_json(path, merged)
    log.info("%s config overrides updated: %s", kind, json.dumps(dict(changes), sort_keys=True))
    return merged


def set_train_overrides(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``changes`` into the train overrides, validate, persist atomically; return all overrides."""
    return _update("train", TRAIN_OVERRIDES_FILE, changes)


def set_model_overrides(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``changes`` into the model overrides, validate, persist atomically; return all overrides."""
    return _update("model", MODEL_OVERRIDES_FILE, changes)


def load_gate_overrides() -> dict[str, Any]:
    """Operator overrides of the promotion gate's thresholds (``{}`` when none)."""
    return _validated("gate", _read_overrides(config_dir() / GATE_OVERRIDES_FILE))


def set_gate_overrides(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``changes`` into the gate overrides, validate, persist atomically; return all overrides."""
    return _update("gate", GATE_OVERRIDES_FILE, changes)


def effective_train_config() -> dict[str, Any]:
    """TrainConfig defaults with the operator overrides applied (what the next training run starts from)."""
    from model.config import TrainConfig

    return TrainConfig.from_dict(load_train_overrides()).to_dict()
