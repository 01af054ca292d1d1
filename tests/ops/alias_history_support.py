"""A real MLflow registry with versions whose checkpoints exist, for the alias-history and rollback tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.serving.serving_support import empty_mlflow_db


def registry(ct_env: Path, n: int = 3):
    """Settings, client and ``n`` versions with a real checkpoint file each (bytes differ)."""
    from include.ops import tracking
    from include.ops.settings import get_settings
    from model.fsio import sha256_file

    shutil.copyfile(empty_mlflow_db(), ct_env / "mlflow" / "mlflow.db")
    settings = get_settings()
    settings.checkpoint_dir.mkdir(parents=True)
    mlc = tracking.mlflow_client(settings)
    mlc.create_registered_model(settings.registered_model)
    results = []
    for i in range(n):
        ckpt = settings.checkpoint_dir / f"task_00{i}_task_{i}.pt"
        ckpt.write_bytes(f"weights {i}".encode())
        sha = sha256_file(ckpt)
        tags = {"checkpoint_path": str(ckpt), "checkpoint_sha256": sha, "task_id": f"task_{i}"}
        mv = mlc.create_model_version(settings.registered_model, source=ckpt.parent.as_uri(), tags=tags)
        results.append({"version": str(mv.version), "task_id": f"task_{i}", "task_ids": [f"task_{i}"],
                        "accuracies": {f"task_{i}": 0.95}, "checkpoint_path": str(ckpt),
                        "checkpoint_sha256": sha, "mean_retention": 0.9})  # fmt: skip
    return settings, mlc, results


def gate(settings, result, acc: float = 0.95):
    from include.ops import tracking

    r = {**result, "accuracies": {result["task_id"]: acc}}
    return tracking.apply_gate(settings, result["version"], r, 0.8, 0.9)
