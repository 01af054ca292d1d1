"""What one training run uses, resolved once: the gate thresholds and the TrainConfig, each with its source.

Precedence, highest first (the one documented order, see ``include/ops/settings.py``):

1. ``param``: a DAG param that the trigger conf sets (a param left at its ``None`` default does not count);
2. ``override``: an operator override stored by ``POST /api/config/*`` (``include.ops.runtime_config``);
3. ``env``: the environment (``CT_RETENTION_THRESHOLD``, ``CT_ACCURACY_FLOOR``, ``CT_TRAIN_OVERRIDES``);
4. ``default``: ``include.ops.settings`` for the thresholds, ``model.config.TrainConfig`` for training.

A stream's ``strategy`` and ``scenario`` are fixed at its first learned task (``model.capacity.
read_stream_method``): left to the default, they are the stream's own (source ``stream``), so a new default applies
to new streams only; set to another value by any layer above, the run is refused (:class:`StreamMethodMismatch`).

The DAG resolves this once per run (in ``plan``) and every later task reads the result from XCom, so the
container, the in-process worker and the gate see the same values; ``register_and_gate`` logs it to MLflow.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from include.ops import runtime_config
from include.ops.errors import Refusal
from include.ops.settings import Settings

Source = Literal["param", "override", "env", "stream", "default"]
GATE_KEYS = ("retention_threshold", "accuracy_floor")
TRAIN_OVERRIDES_ENV = "CT_TRAIN_OVERRIDES"


@dataclass(frozen=True)
class RunSettings:
    """The effective thresholds and train config of one run, and where each value came from."""

    retention_threshold: float
    accuracy_floor: float
    train_config: dict[str, Any]
    sources: dict[str, Source] = field(default_factory=dict)  # "retention_threshold", "train.lr", ...

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (XCom, the MLflow artifact)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSettings:
        """Inverse of ``to_dict``."""
        return cls(
            retention_threshold=float(data["retention_threshold"]),
            accuracy_floor=float(data["accuracy_floor"]),
            train_config=dict(data["train_config"]),
            sources=dict(data.get("sources", {})),
        )


def _train_fields() -> set[str]:
    from model.config import TrainConfig

    return {f.name for f in fields(TrainConfig)}


def _env_train_overrides() -> dict[str, Any]:
    raw = os.environ.get(TRAIN_OVERRIDES_ENV)
    if not raw:
        return {}
    try:
        values = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{TRAIN_OVERRIDES_ENV} is not valid JSON: {exc}") from exc
    if not isinstance(values, dict):
        raise ValueError(f"{TRAIN_OVERRIDES_ENV} must be a JSON object, got {type(values).__name__}")
    return values


def _train_layers(params: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Source]]:
    """TrainConfig values from every layer, lowest first, and the layer each surviving value came from."""
    allowed = _train_fields()
    layers: list[tuple[Source, dict[str, Any]]] = [
        ("env", _env_train_overrides()),
        ("override", runtime_config.load_train_overrides()),
        ("param", {k: v for k, v in (params or {}).items() if k in allowed and v is not None}),
    ]
    merged: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for source, values in layers:
        merged.update(values)
        sources.update(dict.fromkeys(values, source))
    return merged, sources


class StreamMethodMismatch(Refusal):
    """A run asks for a strategy or scenario other than the one its stream has been learned with."""


def _keep_stream_method(merged: dict[str, Any], sources: dict[str, Source], state_dir: Path | None) -> None:
    """The stream's own strategy/scenario where no layer set one; StreamMethodMismatch where one differs."""
    from model.capacity import read_stream_method

    recorded = read_stream_method(state_dir) if state_dir is not None else None
    for key, value in (recorded or {}).items():
        if key not in sources:
            merged[key], sources[key] = value, "stream"
        elif merged[key] != value:
            raise StreamMethodMismatch(
                f"{key} {merged[key]!r} (from {sources[key]}) differs from {value!r}, the {key} the stream in "
                f"{state_dir} has been learned with since its first task; a stream keeps its {key}: leave "
                f"{key} empty, or learn the stream again into a new state (make learn-stream STATE=...)"
            )


def resolve_train_config(
    params: Mapping[str, Any] | None = None, state_dir: Path | None = None
) -> dict[str, Any]:
    """TrainConfig defaults <- env ``CT_TRAIN_OVERRIDES`` <- operator overrides <- params; validated.

    With ``state_dir``, the stream's strategy and scenario are kept (StreamMethodMismatch when asked to change).
    """
    from model.config import TrainConfig

    merged, sources = _train_layers(params)
    _keep_stream_method(merged, sources, state_dir)
    return TrainConfig.from_dict(merged).to_dict()


def _gate_value(
    key: str, params: Mapping[str, Any], overrides: Mapping[str, Any], settings: Settings
) -> tuple[float, Source]:
    if params.get(key) is not None:
        return float(params[key]), "param"
    if overrides.get(key) is not None:
        return float(overrides[key]), "override"
    return float(getattr(settings, key)), "env" if key in settings.model_fields_set else "default"


def resolve_run_settings(params: Mapping[str, Any] | None, settings: Settings) -> RunSettings:
    """The effective settings of one run (see the module docstring for the order); ValueError when invalid.

    StreamMethodMismatch (a Refusal) when it asks for another strategy or scenario than the stream's.
    """
    from model.config import TrainConfig

    params = params or {}
    merged, train_sources = _train_layers(params)
    _keep_stream_method(merged, train_sources, settings.state_dir)
    train_config = TrainConfig.from_dict(merged).to_dict()
    sources: dict[str, Source] = {f"train.{k}": train_sources.get(k, "default") for k in sorted(train_config)}
    gate_overrides = runtime_config.load_gate_overrides()
    values: dict[str, float] = {}
    for key in GATE_KEYS:
        values[key], sources[key] = _gate_value(key, params, gate_overrides, settings)
        if not 0.0 <= values[key] <= 1.0:
            raise ValueError(f"{key} must be within [0, 1], got {values[key]} (from {sources[key]})")
    return RunSettings(
        retention_threshold=values["retention_threshold"],
        accuracy_floor=values["accuracy_floor"],
        train_config=train_config,
        sources=dict(sorted(sources.items())),
    )
