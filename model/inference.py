"""Inference from a checkpoint: load (sha256-verified, weights_only) and predict class probabilities.

Inputs are in model space: float pixels scaled to [0, 1] (what ``load_task_csv`` returns). Raw pixel values
0..16, as in the task CSV files and the serving API, go through ``pixels_to_input`` first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.checkpoint import load_checkpoint
from model.config import ModelConfig
from model.data import PIXEL_MAX
from model.network import TinyTransformer
from model.training import masked_logits


def pixels_to_input(pixels: np.ndarray | torch.Tensor | list) -> torch.Tensor:
    """Raw pixel values in [0, 16] (B, F) -> float32 model input in [0, 1]; ValueError when out of range."""
    x = torch.as_tensor(np.asarray(pixels, dtype=np.float32))
    if x.ndim != 2:
        raise ValueError(f"expected a (batch, features) array of pixels, got shape {tuple(x.shape)}")
    if x.numel() and (x.min() < 0 or x.max() > PIXEL_MAX):
        raise ValueError(f"pixel values must lie in [0, {PIXEL_MAX}]")
    return x / PIXEL_MAX


def load_model(
    checkpoint_path: Path | str, map_location: str = "cpu"
) -> tuple[TinyTransformer, ModelConfig, dict]:
    """Eval-mode model, its config and metadata (task ids, classes seen, scenario) from a verified checkpoint."""
    payload = load_checkpoint(Path(checkpoint_path), map_location=map_location)
    cfg = ModelConfig.from_dict(payload["model_config"])
    model = TinyTransformer(cfg)
    model.load_state_dict(payload["model_state"])
    model.eval()
    meta: dict[str, Any] = {
        "task_id": payload["task_id"],
        "task_index": payload["task_index"],
        "learned_tasks": list(payload["learned_tasks"]),
        "task_classes": [list(c) for c in payload["task_classes"]],
        "classes_seen": list(
            payload.get("classes_seen") or sorted({c for t in payload["task_classes"] for c in t})
        ),
        "scenario": payload["scenario"],
        "train_config": dict(payload["train_config"]),
        "checkpoint_path": str(checkpoint_path),
    }
    return model, cfg, meta


@torch.no_grad()
def predict_proba(
    model: TinyTransformer, x: torch.Tensor | np.ndarray, allowed_classes: list[int] | None = None
) -> torch.Tensor:
    """Class probabilities (B, num_classes) for model-space input; classes outside ``allowed_classes`` get 0."""
    device = next(model.parameters()).device
    xb = torch.as_tensor(x, dtype=torch.float32, device=device)
    assert xb.ndim == 2 and xb.shape[1] == model.cfg.num_features, (
        f"expected (B, {model.cfg.num_features}) input, got {tuple(xb.shape)}"
    )
    logits = model(xb).float()  # (B, num_classes)
    if allowed_classes:
        allowed = torch.zeros(model.cfg.num_classes, dtype=torch.bool, device=device)
        allowed[list(allowed_classes)] = True
        logits = masked_logits(logits, allowed)
    return torch.softmax(logits, dim=-1)
