"""Inference from a checkpoint: load (sha256-verified, weights_only) and predict class probabilities.

Inputs are in model space: float pixels scaled to [0, 1] (what ``load_task_csv`` returns). Raw pixel values
0..16, as in the task CSV files and the serving API, go through ``pixels_to_input`` first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.checkpoint import load_checkpoint, read_sidecar, save_checkpoint
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
    checkpoint_path: Path, map_location: str | torch.device = "cpu"
) -> tuple[TinyTransformer, ModelConfig, dict[str, Any]]:
    """Verify and load a learner checkpoint; return the model in eval mode, its config and metadata.

    Metadata: ``task_id`` (last learned), ``task_index``, ``learned_tasks`` (learned order), ``task_classes``,
    ``classes_seen``, ``scenario``, ``strategy``, ``acc_matrix``, ``metrics``, ``train_config``,
    ``checkpoint_path`` and ``sha256``.
    Raises CheckpointError naming the file if it is missing, corrupted or unverifiable.
    """
    path = Path(checkpoint_path)
    payload = load_checkpoint(path, map_location=map_location)
    cfg = ModelConfig.from_dict(payload["model_config"])
    model = TinyTransformer(cfg).to(map_location)
    model.load_state_dict(payload["model_state"])
    model.eval()
    meta = {
        "task_id": payload["task_id"],
        "task_index": int(payload["task_index"]),
        "learned_tasks": list(payload["learned_tasks"]),
        "task_classes": [list(c) for c in payload["task_classes"]],
        "classes_seen": list(payload["classes_seen"]),
        "scenario": payload["scenario"],
        "strategy": payload["strategy_name"],
        "acc_matrix": [list(r) for r in payload["acc_matrix"]],
        "metrics": payload["metrics"],
        "train_config": dict(payload["train_config"]),
        "checkpoint_path": str(path),
        "sha256": read_sidecar(path),  # load_checkpoint just verified the file against it
    }
    return model, cfg, meta


# what a served model needs; training memory (optimizer moments, replay exemplars, the analytic strategy's Gram
# matrix and cross-covariance, RNG state) stays in the learner's checkpoint and out of the served artifact
SERVING_KEYS = (
    "format_version", "model_state", "model_config", "train_config", "strategy_name", "task_id", "task_index",
    "learned_tasks", "task_classes", "classes_seen", "scenario", "acc_matrix", "metrics", "manifest_name",
)  # fmt: skip


def export_serving_checkpoint(checkpoint_path: Path, out_path: Path) -> str:
    """Write a verified checkpoint's serving part (``SERVING_KEYS``) to ``out_path`` (+ sidecar); its sha256."""
    payload = load_checkpoint(Path(checkpoint_path))
    return save_checkpoint(Path(out_path), {k: payload[k] for k in SERVING_KEYS if k in payload})


def optimize_for_tensorrt(model: TinyTransformer, device: torch.device) -> torch.nn.Module:
    """``torch.compile`` with the Torch-TensorRT backend (optional, off by default; ``CT_SERVING_TENSORRT``).

    Raises RuntimeError naming what is missing when the device is not CUDA or torch-tensorrt is absent.
    The compiled module keeps ``cfg`` and ``parameters()`` of the original, so predict_proba works on it.
    """
    if device.type != "cuda":
        raise RuntimeError(f"TensorRT serving needs a CUDA device; the model is on {device}")
    try:
        import torch_tensorrt  # noqa: F401  registers the "tensorrt" backend of torch.compile
    except ImportError as exc:
        raise RuntimeError(
            "TensorRT serving (CT_SERVING_TENSORRT=1) needs the torch-tensorrt package built for "
            f"torch {torch.__version__.split('+')[0]} and CUDA 12; it is not installed"
        ) from exc
    return torch.compile(model, backend="tensorrt", dynamic=False)


@torch.no_grad()
def predict_proba(
    model: TinyTransformer, x: torch.Tensor | np.ndarray, allowed_classes: list[int] | None = None
) -> torch.Tensor:
    """Class probabilities (B, num_classes) for model-space input (B, F), (F,) or (B, C, H, W) in [0, 1].

    With ``allowed_classes`` (the classes seen, or one task's classes in the task-incremental scenario)
    every other class gets probability 0.
    """
    device = next(model.parameters()).device
    x = torch.as_tensor(x, dtype=torch.float32, device=device)
    if x.dim() == 1:
        x = x.unsqueeze(0)  # (1, F)
    logits = model(x).float()  # (B, num_classes)
    if allowed_classes is not None:
        allowed = torch.zeros(model.cfg.num_classes, dtype=torch.bool, device=device)
        assert allowed_classes, "allowed_classes must not be empty"
        allowed[list(allowed_classes)] = True
        logits = masked_logits(logits, allowed)
    return logits.softmax(dim=-1)
