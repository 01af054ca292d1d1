"""The in-process training seam: plan which tasks a DAG run learns, learn them, track them, gate them."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

from include.ops import tracking
from include.ops.settings import Settings
from model.fsio import atomic_write_text

log = logging.getLogger(__name__)

DEFAULT_RETENTION_THRESHOLD = 0.8  # runbook: knowledge retention < 0.8 pages someone
DEFAULT_ACCURACY_FLOOR = 0.9


class TrainingRefused(RuntimeError):
    """Raised when a requested task cannot be trained (unknown, already learned, maintenance lock held)."""


def manifest_path(settings: Settings, learned: set[str] | None = None) -> Path:
    """The task manifest training reads: the validated store's once validation has run, else the raw stream.

    With a validated store, tasks learned before validation was switched on keep their raw files for evaluation
    (written as absolute paths into ``state_dir/effective_manifest.json``); a task not learned yet is only ever
    read from the validated store, so nothing trains on a batch that has not passed validation.
    ``learned`` (the task ids MLflow records as learned) is looked up when not given.
    """
    validated = settings.validated_dir / "manifest.json"
    if not validated.exists():
        return settings.manifest_path
    raw = json.loads(validated.read_text())
    if learned is None:
        learned = set(tracking.learned_task_ids(settings))
    fallback = False
    for spec in raw["tasks"]:
        store_copy = settings.validated_dir / spec["file"]
        raw_copy = settings.data_dir / spec["file"]
        use_raw = spec["task_id"] in learned and not store_copy.exists() and raw_copy.exists()
        fallback = fallback or use_raw
        spec["file"] = str(raw_copy if use_raw else store_copy)
    if not fallback:
        return validated
    effective = settings.state_dir / "effective_manifest.json"
    text = json.dumps(raw, indent=2) + "\n"
    if not effective.exists() or effective.read_text() != text:
        atomic_write_text(effective, text)
    return effective


def _train_config_fields() -> set[str]:
    from model.config import TrainConfig

    return {f.name for f in fields(TrainConfig)}


def resolve_train_config(conf: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge TrainConfig defaults <- operator overrides file <- env CT_TRAIN_OVERRIDES <- run conf; validated."""
    from model.config import TrainConfig

    merged: dict[str, Any] = {}
    try:
        from include.ops.runtime_config import load_train_overrides

        merged.update(load_train_overrides())
    except ImportError:
        pass
    env = os.environ.get("CT_TRAIN_OVERRIDES")
    if env:
        try:
            merged.update(json.loads(env))
        except json.JSONDecodeError as exc:
            raise ValueError(f"CT_TRAIN_OVERRIDES is not valid JSON: {exc}") from exc
    allowed = _train_config_fields()
    merged.update({k: v for k, v in (conf or {}).items() if k in allowed and v is not None})
    return TrainConfig.from_dict(merged).to_dict()


def plan_tasks(settings: Settings, requested: str | None, event_task_ids: list[str]) -> list[str]:
    """Tasks this run learns: the param's task; else the triggering events' tasks in task order; else the next."""
    from model.data import load_manifest

    learned = set(tracking.learned_task_ids(settings))
    path = manifest_path(settings, learned)
    manifest = load_manifest(path)
    known = [t.task_id for t in manifest.tasks]
    if requested:
        if requested not in known:
            raise TrainingRefused(f"task {requested!r} is not in the manifest {path} ({known})")
        if requested in learned:
            raise TrainingRefused(f"task {requested!r} is already learned (see its MLflow run)")
        data_file = path.parent / manifest.task(requested).file
        if not data_file.exists():
            raise TrainingRefused(
                f"task {requested!r} has no data at {data_file} (has its batch passed validation?)"
            )
        return [requested]
    if event_task_ids:
        unknown = sorted(set(event_task_ids) - set(known))
        if unknown:
            raise TrainingRefused(f"asset events name tasks not in the manifest: {unknown}")
        planned = [t for t in known if t in set(event_task_ids) and t not in learned]
        skipped = sorted(set(event_task_ids) & learned)
        if skipped:
            log.info("already learned, not training again: %s", skipped)
        return planned
    for spec in manifest.tasks:
        if spec.task_id in learned:
            continue
        if not (path.parent / spec.file).exists():
            # stream order matters: wait for this task's batch to pass validation rather than skip ahead
            log.info("next task %s has no validated data yet (%s): nothing to train", spec.task_id, spec.file)
            return []
        return [spec.task_id]
    return []


def _check_lock(settings: Settings) -> None:
    try:
        from include.ops.lock import is_maintenance_locked
    except ImportError:
        return
    if is_maintenance_locked(settings.lock_file):
        raise TrainingRefused(f"maintenance lock {settings.lock_file} is held (disaster recovery running)")


def _summary(result: dict[str, Any], run_id: str) -> dict[str, Any]:
    keep = (
        "task_id",
        "task_ids",
        "acc_matrix",
        "accuracies",
        "mean_retention",
        "avg_acc",
        "checkpoint_path",
        "checkpoint_sha256",
    )
    summary = {k: result[k] for k in keep}
    summary["mlflow_run_id"] = run_id
    return summary


def _push_metrics(result: dict[str, Any]) -> None:
    try:
        from include.ops.metrics import push_training_metrics
    except ImportError:
        return
    losses = result.get("epoch_losses") or [float("nan")]
    push_training_metrics(result["task_id"], float(losses[-1]), dict(result["retention"]))


def _learned_summary(settings: Settings, dag_run_id: str, task_id: str):
    """(existing MLflow run or None, summary if this DAG run already learned the task)."""
    import mlflow

    existing = tracking.find_run(settings, dag_run_id, task_id)
    if existing is not None and existing.data.tags.get(tracking.TAG_STATUS) == tracking.STATUS_LEARNED:
        log.info(
            "task %s already learned by this DAG run (MLflow run %s): reusing", task_id, existing.info.run_id
        )
        path = mlflow.artifacts.download_artifacts(
            run_id=existing.info.run_id, artifact_path="learn_result.json"
        )
        return existing, _summary(json.loads(Path(path).read_text()), existing.info.run_id)
    return existing, None


def open_run(settings: Settings, task_id: str, dag_id: str, dag_run_id: str, existing: Any = None) -> str:
    """The MLflow run id for (DAG run, task): the existing one on a retry, else a new run."""
    if existing is not None:
        log.info(
            "resuming MLflow run %s for %s (retry of DAG run %s)", existing.info.run_id, task_id, dag_run_id
        )
        return existing.info.run_id
    run = tracking.client(settings).create_run(
        tracking.ensure_experiment(settings),
        run_name=task_id,
        tags={
            tracking.TAG_TASK_ID: task_id,
            tracking.TAG_DAG_ID: dag_id,
            tracking.TAG_DAG_RUN_ID: dag_run_id,
        },
    )
    return run.info.run_id


def record_result(settings: Settings, run_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """Log a LearnResult dict into its MLflow run and mark the task learned; returns the small summary."""
    import mlflow

    mlc = tracking.client(settings)
    existing_params = set(mlc.get_run(run_id).data.params)
    params = tracking.flat_params(result["model_config"], result["train_config"])
    with mlflow.start_run(run_id=run_id):
        mlflow.log_params({k: v for k, v in params.items() if k not in existing_params})
        mlflow.set_tags(
            {
                tracking.TAG_TASK_INDEX: str(result["task_index"]),
                "ct.strategy": result["train_config"].get("strategy", ""),
                "ct.scenario": result["train_config"].get("scenario", ""),
                "ct.checkpoint_sha256": result["checkpoint_sha256"],
                "ct.device": result.get("device", ""),
            }
        )
        with tempfile.TemporaryDirectory() as tmp:
            tracking.log_result(run_id, result, Path(tmp))
            (Path(tmp) / "learn_result.json").write_text(json.dumps(result, indent=2, default=str))
            mlflow.log_artifact(str(Path(tmp) / "learn_result.json"), run_id=run_id)
        _log_data_quality(settings, run_id)
        mlflow.set_tag(tracking.TAG_STATUS, tracking.STATUS_LEARNED)
    _push_metrics(result)
    return _summary(result, run_id)


def learn_one(
    settings: Settings, task_id: str, train_cfg: dict[str, Any], dag_id: str, dag_run_id: str
) -> dict[str, Any]:
    """Learn one task in-process into its own MLflow run, idempotent per (DAG run, task); returns a summary."""
    from model.config import TrainConfig
    from model.learner import ContinualLearner

    existing, done = _learned_summary(settings, dag_run_id, task_id)
    if done is not None:
        return done
    _check_lock(settings)
    learner = ContinualLearner(
        manifest_path(settings), settings.state_dir, train_cfg=TrainConfig.from_dict(train_cfg)
    )
    if task_id in learner.learned_tasks:
        raise TrainingRefused(
            f"task {task_id!r} is already in the learner state {settings.state_dir} but MLflow has no learned run "
            "for it: restore a consistent backup (make restore) before training again"
        )
    run_id = open_run(settings, task_id, dag_id, dag_run_id, existing)

    def on_epoch_end(epoch: int, loss: float) -> None:
        log.info("task %s epoch %d loss %.4f", task_id, epoch, loss)

    started = time.monotonic()
    try:
        result = learner.learn_task(task_id, on_epoch_end=on_epoch_end).to_dict()
    except Exception:
        tracking.client(settings).set_terminated(run_id, status="FAILED")
        raise
    log.info("learned %s in %.1fs; accuracies %s", task_id, time.monotonic() - started, result["accuracies"])
    return record_result(settings, run_id, result)


def record_container_result(
    settings: Settings, result_line: str, dag_id: str, dag_run_id: str
) -> dict[str, Any]:
    """Track the LearnResult JSON line printed by the GPU training container (`include.ops.train_cli`)."""
    try:
        result = json.loads(result_line)
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(
            f"training container did not print a LearnResult JSON line: {str(result_line)[:200]!r}"
        ) from exc
    existing, done = _learned_summary(settings, dag_run_id, result["task_id"])
    if done is not None:
        return done
    return record_result(
        settings, open_run(settings, result["task_id"], dag_id, dag_run_id, existing), result
    )


def _log_data_quality(settings: Settings, run_id: str) -> None:
    """Attach the data-quality report (class counts, drift) to the run when the analysis module is present."""
    try:
        from include.ops.data_quality import analyze
    except ImportError:
        return
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        try:
            report = analyze(manifest_path(settings), Path(tmp))
        except Exception as exc:  # the report is informative; a failure must not undo a learned task
            log.warning("data quality analysis failed: %s", exc)
            return
        for item in Path(tmp).rglob("*"):
            if item.is_file():
                mlflow.log_artifact(str(item), artifact_path="data_quality", run_id=run_id)
        del report


def register_and_gate(
    settings: Settings,
    summaries: list[dict[str, Any]],
    retention_threshold: float = DEFAULT_RETENTION_THRESHOLD,
    accuracy_floor: float = DEFAULT_ACCURACY_FLOOR,
) -> list[dict[str, Any]]:
    """Register one model version per learned task (idempotent per run) and apply the promotion gate."""
    import mlflow

    mlc = tracking.client(settings)
    decisions = []
    for summary in summaries:
        run_id = summary["mlflow_run_id"]
        found = mlc.search_model_versions(f"name = '{settings.registered_model}' and run_id = '{run_id}'")
        version = str(found[0].version) if found else None
        if version is None:
            path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="learn_result.json")
            version = tracking.register_version(settings, run_id, json.loads(Path(path).read_text()))
        decision = tracking.apply_gate(settings, version, summary, retention_threshold, accuracy_floor)
        decisions.append(decision.to_dict())
    return decisions
