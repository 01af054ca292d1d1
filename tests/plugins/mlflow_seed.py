"""Seed a real MLflow store (runs, metrics, artifacts, versions, aliases) the way training logs it."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

# Accuracy matrix of three learned tasks: R[i][j] = accuracy on task j after training task i.
MATRIX = [
    [0.99, None, None],
    [0.90, 0.97, None],
    [0.60, 0.85, 0.98],
]
TASK_IDS = ["task_0", "task_1", "task_2"]
EXPERIMENT = "ct-test-experiment"
MODEL = "ct-test-model"


def _retention(matrix: list[list[float | None]], i: int) -> dict[str, float]:
    """Retention of every earlier task after learning task ``i``: R[i][j] / R[j][j]."""
    return {TASK_IDS[j]: matrix[i][j] / matrix[j][j] for j in range(i + 1)}


def seed_store(
    tracking_uri: str,
    experiment: str,
    model_name: str,
    n_tasks: int = 3,
    champion_task: int | None = 1,
    challenger_task: int | None = 2,
    with_png: bool = False,
) -> dict[str, Any]:
    """Log ``n_tasks`` learned runs with matrices/retention, register one version each, set the aliases.

    Returns ``{"experiment_id", "run_ids", "versions"}`` (lists indexed by task position).
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    exp_id = client.create_experiment(experiment, artifact_location=(db.parent / "artifacts").as_uri())
    client.create_registered_model(model_name)
    run_ids: list[str] = []
    versions: list[str] = []
    for i in range(n_tasks):
        task_id = TASK_IDS[i]
        run = client.create_run(
            exp_id,
            run_name=task_id,
            tags={"ct.task_id": task_id, "ct.task_index": str(i), "ct.dag_run_id": f"manual__{i}"},
        )
        rid = run.info.run_id
        retention = _retention(MATRIX, i)
        now = int(time.time() * 1000)
        for tid, value in retention.items():
            client.log_metric(rid, f"retention.{tid}", value, timestamp=now)
            client.log_metric(rid, f"acc.{tid}", MATRIX[i][TASK_IDS.index(tid)], timestamp=now)
        client.log_metric(rid, "mean_retention", sum(retention.values()) / len(retention), timestamp=now)
        client.log_metric(rid, "new_task_acc", MATRIX[i][i], timestamp=now)
        client.log_metric(rid, "avg_acc", sum(MATRIX[i][: i + 1]) / (i + 1), timestamp=now)
        sub = [row[: i + 1] for row in MATRIX[: i + 1]]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "acc_matrix.json"
            path.write_text(json.dumps({"task_ids": TASK_IDS[: i + 1], "matrix": sub}))
            client.log_artifact(rid, str(path))
            if with_png:
                from include.ops.tracking import accuracy_heatmap

                client.log_artifact(
                    rid, str(accuracy_heatmap(TASK_IDS[: i + 1], sub, Path(tmp) / "acc_matrix.png"))
                )
        client.set_tag(rid, "ct.status", "learned")
        client.set_terminated(rid)
        mv = client.create_model_version(
            model_name,
            source=f"{run.info.artifact_uri}/model",
            run_id=rid,
            tags={"task_id": task_id, "run_id": rid},
        )
        run_ids.append(rid)
        versions.append(str(mv.version))
        time.sleep(0.01)  # distinct start times keep "latest run" unambiguous
    if champion_task is not None:
        client.set_registered_model_alias(model_name, "champion", versions[champion_task])
    if challenger_task is not None:
        client.set_registered_model_alias(model_name, "challenger", versions[challenger_task])
    return {"experiment_id": exp_id, "run_ids": run_ids, "versions": versions}
