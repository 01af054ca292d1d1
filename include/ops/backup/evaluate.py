"""Model checks shared by backup and restore: per-task test accuracy of a checkpoint, and a health check.

Accuracy is ``model.metrics.task_accuracies`` under the scenario the checkpoint was trained in, so a backup
records, and a restore drill re-measures, exactly what training measured: class-incrementally the argmax over
the classes the checkpoint has seen, task-incrementally over the task's own classes. Identical weights on
identical test data give identical accuracies, which is what restore validation relies on.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def task_accuracies(checkpoint: Path, task_manifest: Path) -> dict[str, float]:
    """Test accuracy of the checkpoint's model on every task of ``task_manifest`` (files relative to it)."""
    from model.data import load_manifest, load_task_csv
    from model.inference import load_model
    from model.metrics import EvalSet
    from model.metrics import task_accuracies as measure

    model, _cfg, meta = load_model(checkpoint)
    task_manifest = Path(task_manifest)
    tasks = []
    for spec in load_manifest(task_manifest).tasks:
        data = load_task_csv(task_manifest.parent / spec.file)
        tasks.append(EvalSet(spec.task_id, spec.classes, data.x_test, data.y_test))
    out = measure(model, tasks, meta["scenario"], "cpu", classes_seen=meta["classes_seen"])
    log.info(
        "accuracies of %s (%s): %s",
        checkpoint.name,
        meta["scenario"],
        {k: round(v, 4) for k, v in out.items()},
    )
    return out


def compare_accuracies(
    recorded: dict[str, float], measured: dict[str, float], tolerance: float = 1e-6
) -> list[str]:
    """Differences between recorded and measured accuracies beyond ``tolerance`` (empty when they agree)."""
    problems = []
    for task_id in sorted(set(recorded) | set(measured)):
        if task_id not in measured:
            problems.append(f"{task_id}: recorded {recorded[task_id]:.6f}, not measured")
        elif task_id not in recorded:
            problems.append(f"{task_id}: measured {measured[task_id]:.6f}, nothing recorded at backup time")
        elif not math.isclose(recorded[task_id], measured[task_id], rel_tol=0.0, abs_tol=tolerance):
            problems.append(
                f"{task_id}: recorded {recorded[task_id]:.6f} != measured {measured[task_id]:.6f}"
            )
    return problems


def health_check(checkpoint: Path, task_manifest: Path | None = None) -> dict[str, Any]:
    """Load ``checkpoint`` (sha256-verified, weights_only) and predict a batch; raise RuntimeError if unhealthy."""
    import torch

    from model.inference import load_model, predict_proba

    model, cfg, meta = load_model(checkpoint)
    if task_manifest is not None:
        from model.data import load_manifest, load_task_csv

        spec = load_manifest(task_manifest).tasks[0]
        x = load_task_csv(task_manifest.parent / spec.file).x_test[:16]
    else:
        x = torch.rand(4, cfg.num_features, generator=torch.Generator().manual_seed(0))
    proba = predict_proba(model, x)
    sums = proba.sum(dim=1)
    if proba.shape != (x.shape[0], cfg.num_classes) or not torch.isfinite(proba).all():
        raise RuntimeError(
            f"health check of {checkpoint}: bad prediction shape {tuple(proba.shape)} or non-finite values"
        )
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        raise RuntimeError(f"health check of {checkpoint}: probabilities do not sum to 1 ({sums.tolist()})")
    return {
        "checkpoint": str(checkpoint),
        "status": "healthy",
        "num_classes": cfg.num_classes,
        "predicted": proba.argmax(dim=1).tolist(),
        "learned_tasks": list((meta or {}).get("learned_tasks", [])) if isinstance(meta, dict) else [],
    }
