"""Operator overrides set at runtime (serving API) and read by the next training run.

``<var_dir>/config/train_overrides.json`` holds a flat ``{TrainConfig field: value}`` object;
``<var_dir>/config/model_overrides.json`` a flat ``{ModelConfig field: value}`` object (used when a new
learner is created). Both are written atomically under a file lock, and validated against the config
dataclasses before they are stored, so a bad value is refused instead of breaking the next run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from include.ops.settings import get_settings
from model.fsio import atomic_write_text

log = logging.getLogger(__name__)

TRAIN_OVERRIDES_FILE = "train_overrides.json"
MODEL_OVERRIDES_FILE = "model_overrides.json"


def config_dir() -> Path:
    """Folder of the runtime override files (``<var_dir>/config``)."""
    return get_settings().var_dir / "config"


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise read-modify-write of ``path`` across processes (API workers, DAG tasks)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


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
    """Check ``merged`` against TrainConfig/ModelConfig; ValueError naming the offending field."""
    from model.config import ModelConfig, TrainConfig

    cls = TrainConfig if kind == "train" else ModelConfig
    try:
        cls.from_dict(merged)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid {kind} config override: {exc}") from exc
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
    with _locked(path):
        merged = {**_read_overrides(path), **dict(changes)}
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


def effective_train_config() -> dict[str, Any]:
    """TrainConfig defaults with the operator overrides applied (what the next training run starts from)."""
    from model.config import TrainConfig

    return TrainConfig.from_dict(load_train_overrides()).to_dict()
