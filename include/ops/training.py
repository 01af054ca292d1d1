"""The one training entry: plan which tasks a DAG run learns, learn one (``learn_one``), track it, gate it.

``learn_one`` is what every path runs: the DAG's in-process ``train`` task (tracked in MLflow, idempotent per
DAG run) and the GPU container's ``python -m include.ops.train_cli`` (untracked; the worker's ``track`` task
records the printed result with ``record_container_result``). The maintenance lock is checked on every path; training and
registration hold the training lock of the state dir, under which a rerun first repairs what a crash left
(``include.ops.training_recovery``). Refusals that no retry can change are :class:`TrainingRefused`.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from include.ops import run_report, tracking, training_recovery
from include.ops.errors import Refusal
from include.ops.lock import is_maintenance_locked
from include.ops.run_settings import RunSettings
from include.ops.settings import Settings
from include.ops.task_manifest import resolve_task_manifest, stream_capacity
from model.faults import fault_point
from model.fsio import file_lock

log = logging.getLogger(__name__)

EpochCallback = Callable[[int, float], None]


class TrainingRefused(Refusal, RuntimeError):
    """A requested task cannot be trained (unknown, no data, capacity reached, maintenance lock held)."""


class AlreadyLearned(TrainingRefused):
    """The requested task is already learned (MLflow has its learned run): the DAG skips it, successfully."""


def training_route(settings: Settings) -> dict[str, str]:
    """Where Airflow runs the training task: ``queue`` and ``executor`` from settings, only those set."""
    route = {"queue": settings.training_queue, "executor": settings.training_executor}
    return {key: value for key, value in route.items() if value}


def plan_tasks(settings: Settings, requested: str | None, event_task_ids: list[str]) -> list[str]:
    """Tasks this run learns: the param's task; else the triggering events' tasks in task order; else the next."""
    from model.data import load_manifest

    learned = set(tracking.learned_task_ids(settings))
    path = resolve_task_manifest(settings, learned)
    manifest = load_manifest(path)
    known = [t.task_id for t in manifest.tasks]
    if requested:
        if requested in learned:
            from include.ops.unlearning import unlearned_task_ids

            if requested in unlearned_task_ids(settings):  # its batch left the manifest when it was unlearned
                raise TrainingRefused(
                    f"task {requested!r} was unlearned (see its MLflow run's ct.unlearned tag): it is not "
                    "learned again; land it under a new task id if it should be"
                )
        if requested not in known:
            raise TrainingRefused(f"task {requested!r} is not in the manifest {path} ({known})")
        if requested in learned:
            raise AlreadyLearned(
                f"task {requested!r} is already learned (see its MLflow run): nothing to do. Learning a task "
                "again is not supported; trigger without task_id to learn the next task"
            )
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


def check_lock(settings: Settings) -> None:
    """Raise TrainingRefused while the maintenance lock is held (disaster recovery replaces live state)."""
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
    summary.update(run_report.learned_fields(result), mlflow_run_id=run_id)
    return summary


def _push_metrics(result: dict[str, Any]) -> None:
    from include.ops.metrics import push_training_metrics  # prometheus_client: only when a task was learned

    losses = result.get("epoch_losses") or [float("nan")]
    push_training_metrics(result["task_id"], float(losses[-1]), dict(result["retention"]))


def _learned_summary(settings: Settings, dag_run_id: str, task_id: str) -> tuple[Any, dict[str, Any] | None]:
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
    mlc = tracking.mlflow_client(settings)
    identity = training_recovery.process_identity()  # lets a rerun tell an orphaned run from a live one
    if existing is not None:
        log.info(
            "resuming MLflow run %s for %s (retry of DAG run %s)", existing.info.run_id, task_id, dag_run_id
        )
        for key, value in identity.items():
            mlc.set_tag(existing.info.run_id, key, value)
        return existing.info.run_id
    run = mlc.create_run(
        tracking.ensure_experiment(settings),
        run_name=task_id,
        tags={
            tracking.TAG_TASK_ID: task_id,
            tracking.TAG_DAG_ID: dag_id,
            tracking.TAG_DAG_RUN_ID: dag_run_id,
            **identity,
        },
    )
    return run.info.run_id


def record_result(settings: Settings, run_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """Log a LearnResult dict into its MLflow run and mark the task learned; returns the small summary."""
    import mlflow

    mlc = tracking.mlflow_client(settings)
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
    fault_point("after_run_end")
    _push_metrics(result)
    return _summary(result, run_id)


def _learner(settings: Settings, train_cfg: Mapping[str, Any]) -> Any:  # -> ContinualLearner
    """The learner of ``settings.state_dir`` reading the resolved task manifest."""
    from model.config import TrainConfig
    from model.learner import ContinualLearner

    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return ContinualLearner(
        resolve_task_manifest(settings),
        settings.state_dir,
        train_cfg=TrainConfig.from_dict(dict(train_cfg)),
        capacity=stream_capacity(
            settings
        ),  # a new stream's head and budget: recorded, else CT_CLASS_CAPACITY
    )


def _check_learnable(learner: Any, task_id: str) -> None:
    """Refuse a task already in the learner state, or one more task than the model has capacity for."""
    if task_id in learner.learned_tasks:
        raise AlreadyLearned(f"task {task_id!r} is already learned (learner state {learner.state_dir})")
    if len(learner.learned_tasks) >= learner.model_cfg.max_tasks:
        raise TrainingRefused(
            f"model capacity is {learner.model_cfg.max_tasks} tasks and all are learned "
            f"({learner.learned_tasks}); refusing {task_id!r}"
        )


def learn_one(
    settings: Settings,
    task_id: str,
    train_cfg: Mapping[str, Any],
    dag_id: str | None = None,
    dag_run_id: str | None = None,
    on_epoch_end: EpochCallback | None = None,
) -> dict[str, Any]:
    """Learn one task; the one entry of every training path. Refused while the maintenance lock is held.

    With ``dag_id``/``dag_run_id`` the task gets its own MLflow run, idempotent per (DAG run, task), and the
    small summary is returned. Without them (the GPU container, which has no tracking store) nothing is
    tracked and the whole LearnResult dict is returned, for ``record_container_result`` on the worker.
    """
    if dag_run_id is not None:
        _, done = _learned_summary(settings, dag_run_id, task_id)
        if done is not None:
            return done
    check_lock(settings)
    with file_lock(training_recovery.training_lock_path(settings), settings.training_lock_timeout_s):
        check_lock(settings)
        return _learn_locked(settings, task_id, train_cfg, dag_id or "", dag_run_id, on_epoch_end)


def _learn_locked(
    settings: Settings,
    task_id: str,
    train_cfg: Mapping[str, Any],
    dag_id: str,
    dag_run_id: str | None,
    on_epoch_end: EpochCallback | None,
) -> dict[str, Any]:
    """``learn_one`` under the training lock: repair what a crash left, then learn (see training_recovery)."""
    learner = _learner(settings, train_cfg)
    if dag_run_id is None:
        if learner.learned_tasks[-1:] == [task_id]:
            # a rerun of the untracked container after a crash past its checkpoint: same result, not retrained
            log.warning("task %s is the newest checkpoint already: returning its recorded result", task_id)
            return learner.result_from_checkpoint(task_id).to_dict()
        _check_learnable(learner, task_id)
        run_id = None
    else:
        training_recovery.mark_orphaned_runs(settings)
        recovered = training_recovery.record_unrecorded_tasks(
            settings, learner, dag_id, dag_run_id, record_result, open_run
        )
        if task_id in recovered:
            return recovered[task_id]
        _check_learnable(learner, task_id)
        existing = tracking.find_run(settings, dag_run_id, task_id)
        run_id = open_run(settings, task_id, dag_id, dag_run_id, existing)

    def log_epoch(epoch: int, loss: float) -> None:
        log.info("task %s epoch %d loss %.4f", task_id, epoch, loss)

    started = time.monotonic()
    try:
        result = learner.learn_task(task_id, on_epoch_end=on_epoch_end or log_epoch).to_dict()
    except Exception:
        if run_id is not None:
            tracking.mlflow_client(settings).set_terminated(run_id, status="FAILED")
        raise
    log.info("learned %s in %.1fs; accuracies %s", task_id, time.monotonic() - started, result["accuracies"])
    return result if run_id is None else record_result(settings, run_id, result)


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
    with file_lock(training_recovery.training_lock_path(settings), settings.training_lock_timeout_s):
        training_recovery.mark_orphaned_runs(settings)
        if result["task_id"] in tracking.learned_task_ids(settings):
            raise AlreadyLearned(f"task {result['task_id']!r} is already learned by another run (see MLflow)")
        return record_result(
            settings, open_run(settings, result["task_id"], dag_id, dag_run_id, existing), result
        )


def _log_data_quality(settings: Settings, run_id: str) -> None:
    """Attach the data-quality report (class counts, drift) of the manifest training read to the run."""
    import mlflow

    from include.ops.data_quality import analyze  # numpy: kept off the DAG parse path

    with tempfile.TemporaryDirectory() as tmp:
        try:
            analyze(resolve_task_manifest(settings), Path(tmp))
        except Exception as exc:  # the report is informative; a failure must not undo a learned task
            log.warning("data quality analysis failed: %s", exc)
            return
        for item in Path(tmp).rglob("*"):
            if item.is_file():
                mlflow.log_artifact(str(item), artifact_path="data_quality", run_id=run_id)


def log_run_settings(settings: Settings, run_id: str, run: RunSettings) -> None:
    """Record the resolved run settings on an MLflow run: ``run_settings.json`` and the thresholds as tags."""
    mlc = tracking.mlflow_client(settings)
    mlc.log_dict(run_id, run.to_dict(), "run_settings.json")
    mlc.set_tag(run_id, "ct.retention_threshold", str(run.retention_threshold))
    mlc.set_tag(run_id, "ct.accuracy_floor", str(run.accuracy_floor))


def register_and_gate(
    settings: Settings, summaries: list[dict[str, Any]], run: RunSettings
) -> list[dict[str, Any]]:
    """Register one model version per learned task (idempotent per run) and apply the promotion gate.

    Learned runs an earlier, crashed run left without a gated version come first (oldest first), so
    ``champion`` ends on the newest version that passes."""
    with file_lock(training_recovery.training_lock_path(settings), settings.training_lock_timeout_s):
        training_recovery.mark_orphaned_runs(settings)
        ours = {s["mlflow_run_id"] for s in summaries}
        pending = [_run_summary(run_id) for run_id, _ in training_recovery.pending_registrations(settings)]
        earlier = [s for s in pending if s["mlflow_run_id"] not in ours]
        if earlier:
            log.warning(
                "registering and gating what a crashed run left undone: %s",
                [(s["task_id"], s["mlflow_run_id"]) for s in earlier],
            )
        return [_register_one(settings, summary, run) for summary in earlier + list(summaries)]


def _run_summary(run_id: str) -> dict[str, Any]:
    """The small summary of a learned run, from its ``learn_result.json``."""
    import mlflow

    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="learn_result.json")
    return _summary(json.loads(Path(path).read_text()), run_id)


def _register_one(settings: Settings, summary: dict[str, Any], run: RunSettings) -> dict[str, Any]:
    """Register (once per run) and gate the version of one learned run."""
    import mlflow

    run_id = summary["mlflow_run_id"]
    log_run_settings(settings, run_id, run)
    version = tracking.registered_version(settings, run_id)
    if version is None:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="learn_result.json")
        version = tracking.register_version(settings, run_id, json.loads(Path(path).read_text()))
    fault_point("after_registration")
    decision = tracking.apply_gate(settings, version, summary, run.retention_threshold, run.accuracy_floor)
    return decision.to_dict()
