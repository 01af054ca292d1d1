"""Exact unlearning of one learned task (the ``unlearn_task`` DAG, e.g. after a data-deletion request).

Only the ``analytic`` strategy can do it: its head is a closed-form function of summed statistics, so the task's
rows are read again and their contribution is subtracted exactly (``ContinualLearner.unlearn_task``). Under the
training lock (and refused while the maintenance lock is held):

1. The task must be recorded as learned in MLflow and not already unlearned; its validated file must exist and
   hash to the sha256 the checkpoint recorded when the task was learned (``learned_from``): refused otherwise,
   with nothing changed.
2. The learner subtracts, solves again and writes a new checkpoint (``task_NNN_unlearn_<task>.pt``).
3. An MLflow run (``ct.kind=unlearning``) records who removed which task, the champion version before and the
   version after; the new state is registered as a model version and gated like any learned task.
4. The task's learned run gets ``ct.unlearned=<unlearning run id>``: the task stays in MLflow's learned set, so
   the next automatic training run does not learn it again, and a request naming it is refused (``plan_tasks``);
   the learner refuses it too (its checkpoint lists it under ``unlearned``).
5. Only then the file is quarantined (policy: moved, never deleted; README "Exact unlearning"): a
   validated batch leaves the store's index and manifest (``store.retract_validated``), any other file is moved
   into the quarantine as is. Deleting the bytes for good is the operator's step, on the quarantine folder.

A crash at any step is finished by a rerun, never refused as "already unlearned": between 2 and 3 the newest
checkpoint is that unlearning's (it is recorded); after 4 the unlearning run is complete only once it names the
file's quarantine (``ct.quarantined``), so a rerun registers (once per run), gates and quarantines what is left,
from the result, requester and version-before that run logged. Older checkpoints, model versions and backups
still hold the task's statistics until cleanup drops them.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from include.ops import tracking, training_recovery
from include.ops.errors import Refusal
from include.ops.settings import Settings
from model.faults import fault_point
from model.fsio import file_lock

log = logging.getLogger(__name__)

TAG_KIND = "ct.kind"
KIND_UNLEARNING = "unlearning"
TAG_UNLEARNED = "ct.unlearned"  # on the task's learned run: the id of the run that unlearned it
TAG_UNLEARNED_TASK = "ct.unlearned_task"
TAG_QUARANTINED = "ct.quarantined"  # on the unlearning run: where the file went, its last step
TAG_REQUESTED_BY = "ct.requested_by"
TAG_VERSION_BEFORE = "ct.version_before"
TAG_VERSION_AFTER = "ct.version_after"


class UnlearningRefusal(Refusal, RuntimeError):
    """The task cannot be unlearned (strategy, record, file); nothing was changed."""


@dataclass(frozen=True)
class Unlearned:
    """What an unlearning did."""

    task_id: str
    requested_by: str
    run_id: str
    version_before: str | None
    version_after: str
    gate_passed: bool
    learned_tasks: list[str]
    checkpoint_path: str
    quarantined: str

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for XCom."""
        return asdict(self)


def unlearned_task_ids(settings: Settings) -> list[str]:
    """Task ids whose learned run carries ``ct.unlearned``: never learned again."""
    mlc = tracking.mlflow_client(settings)
    exp = mlc.get_experiment_by_name(settings.mlflow_experiment)
    if exp is None:
        return []
    return [
        run.data.tags[tracking.TAG_TASK_ID]
        for run in tracking.learned_runs(mlc, exp.experiment_id)
        if run.data.tags.get(TAG_UNLEARNED) and run.data.tags.get(tracking.TAG_TASK_ID)
    ]


def _learned_run(settings: Settings, task_id: str) -> tuple[Any, str | None]:
    """The task's learned run, and the id of an unlearning of it that a crash left unfinished (else None).

    Refused when the task is not learned, or was unlearned completely (its unlearning run names the file's
    quarantine, ``ct.quarantined``: the last step).
    """
    mlc = tracking.mlflow_client(settings)
    exp_id = tracking.ensure_experiment(settings)
    runs = [r for r in tracking.learned_runs(mlc, exp_id) if r.data.tags.get(tracking.TAG_TASK_ID) == task_id]
    if not runs:
        raise UnlearningRefusal(f"task {task_id!r} is not recorded as learned in MLflow: nothing to unlearn")
    marked = [r.data.tags[TAG_UNLEARNED] for r in runs if r.data.tags.get(TAG_UNLEARNED)]
    if not marked:
        return runs[-1], None
    if TAG_QUARANTINED in mlc.get_run(marked[-1]).data.tags:
        raise UnlearningRefusal(f"task {task_id!r} was already unlearned (run {marked[-1]})")
    return runs[-1], marked[-1]


def _champion_version(settings: Settings) -> str | None:
    try:
        mv = tracking.mlflow_client(settings).get_model_version_by_alias(
            settings.registered_model, tracking.CHAMPION
        )
    except Exception:  # no registered model or no champion yet
        return None
    return str(mv.version)


def _quarantine_file(settings: Settings, path: Path, sha256: str, report: dict[str, Any]) -> Path:
    """Move the unlearned task's file into the quarantine (a validated batch also leaves the store's index).

    A file a crashed try already moved is found in the quarantine's index by its sha256, not moved again.
    """
    from include.ops.validation.store import quarantine, read_index, retract_validated

    if not path.exists():
        for entry in reversed(read_index(settings.quarantine_dir).get("entries", [])):
            if entry.get("sha256") == sha256:
                return Path(entry["file"])
        log.warning("the unlearned task's file %s is gone and not in the quarantine: nothing to move", path)
        return path

    in_store = (
        settings.validated_dir is not None and path.parent.resolve() == settings.validated_dir.resolve()
    )
    if in_store and path.name in read_index(settings.validated_dir).get("files", {}):
        return retract_validated(settings.validated_dir, settings.quarantine_dir, path.name, report)[0]
    report = {**report, "reason": "unlearned task", "check": "unlearned", "stage": "unlearn"}
    return quarantine(path, path.name, sha256, report, settings.quarantine_dir, move=True)[0]


def unlearn_task(settings: Settings, task_id: str, requested_by: str = "unknown") -> Unlearned:
    """Remove learned task ``task_id`` exactly, register and gate the result, quarantine its file (see module)."""
    from include.ops.task_manifest import resolve_task_manifest
    from include.ops.training import check_lock
    from model.learner import ContinualLearner
    from model.strategies import UnlearningRefused

    check_lock(settings)
    with file_lock(training_recovery.training_lock_path(settings), settings.training_lock_timeout_s):
        check_lock(settings)
        learned_run, unfinished = _learned_run(settings, task_id)
        learner = ContinualLearner(resolve_task_manifest(settings), settings.state_dir)
        if unfinished is not None:
            # a crash after the task's learned run was marked, before the version or the quarantine: finish it
            log.warning(
                "task %s: unlearning run %s was left unfinished; finishing it now", task_id, unfinished
            )
            return _resume(settings, learner, task_id, learned_run.info.run_id, unfinished)
        if _crashed_after_checkpoint(learner, task_id):
            # a crash after the unlearning's checkpoint and before MLflow heard of it: finish recording it
            log.warning(
                "task %s: unlearned in the learner state but not in MLflow; recording it now", task_id
            )
            result = learner.result_from_checkpoint(learner.learned_tasks[-1]).to_dict()
            unlearned = next(u for u in learner.unlearned if u["task_id"] == task_id)
            path = learner.manifest.task_path(task_id, learner.manifest_path.parent)
            return _finish(
                settings, task_id, requested_by, result, learned_run.info.run_id, path, unlearned["sha256"]
            )
        if task_id not in learner.learned_tasks:
            raise UnlearningRefusal(
                f"task {task_id!r} is recorded as learned in MLflow but not in the learner state "
                f"{settings.state_dir} (learned: {learner.learned_tasks})"
            )
        try:
            path = learner.manifest.task_path(task_id, learner.manifest_path.parent)
        except (KeyError, ValueError) as exc:  # not in the manifest, or its file resolves outside the store
            raise UnlearningRefusal(f"task {task_id!r}: {exc}") from exc
        record = learner.learned_from.get(task_id, {})
        try:
            result = learner.unlearn_task(task_id).to_dict()
        except UnlearningRefused as exc:
            raise UnlearningRefusal(str(exc)) from exc
        return _finish(
            settings, task_id, requested_by, result, learned_run.info.run_id, path, record["sha256"]
        )


def _crashed_after_checkpoint(learner: Any, task_id: str) -> bool:
    """True when the learner's newest checkpoint is this task's unlearning (MLflow not told yet)."""
    newest = learner.checkpoints[-1]["file"] if learner.checkpoints else ""
    return task_id not in learner.learned_tasks and newest.endswith(f"_unlearn_{task_id}.pt")


def _finish(
    settings: Settings,
    task_id: str,
    requested_by: str,
    result: dict[str, Any],
    learned_run_id: str,
    path: Path,
    sha256: str,
) -> Unlearned:
    """Record, register and gate an unlearning whose checkpoint is written; then quarantine the file."""
    version_before = _champion_version(settings)
    run_id = _record(settings, task_id, requested_by, result, learned_run_id, version_before)
    fault_point("after_unlearned_tag")
    return _complete(settings, task_id, requested_by, result, run_id, path, sha256, version_before)


def _resume(settings: Settings, learner: Any, task_id: str, learned_run_id: str, run_id: str) -> Unlearned:
    """Finish the unlearning run ``run_id`` from what it logged: its result, requester and version before."""
    mlc = tracking.mlflow_client(settings)
    tags = mlc.get_run(run_id).data.tags
    with tempfile.TemporaryDirectory() as tmp:
        result = json.loads(Path(mlc.download_artifacts(run_id, "learn_result.json", tmp)).read_text())
    unlearned = next(u for u in learner.unlearned if u["task_id"] == task_id)
    try:
        path = learner.manifest.task_path(task_id, learner.manifest_path.parent)
    except (KeyError, ValueError):  # already quarantined: gone from the store's manifest, found by its sha256
        path = settings.validated_dir / f"{task_id}.csv"
    before = tags.get(TAG_VERSION_BEFORE)
    return _complete(
        settings, task_id, tags.get(TAG_REQUESTED_BY, "unknown"), result, run_id, path, unlearned["sha256"],
        None if before in (None, "-") else before,
    )  # fmt: skip


def _complete(
    settings: Settings,
    task_id: str,
    requested_by: str,
    result: dict[str, Any],
    run_id: str,
    path: Path,
    sha256: str,
    version_before: str | None,
) -> Unlearned:
    """Register (once per run) and gate the unlearning's state, then quarantine the file; every step repeatable."""
    version = tracking.registered_version(settings, run_id) or tracking.register_version(
        settings, run_id, result
    )
    decision = tracking.apply_gate(
        settings, version, result, settings.retention_threshold, settings.accuracy_floor
    )
    mlc = tracking.mlflow_client(settings)
    mlc.set_tag(run_id, TAG_VERSION_AFTER, version)
    mlc.set_tag(run_id, "ct.gate", "passed" if decision.passed else "failed")
    mlc.set_model_version_tag(settings.registered_model, version, "unlearned_task", task_id)
    mlc.set_terminated(run_id, status="FINISHED")
    report = {"name": path.name, "task_id": task_id, "status": "unlearned", "unlearning_run_id": run_id,
              "requested_by": requested_by, "version_after": version}  # fmt: skip
    quarantined = _quarantine_file(settings, path, sha256, report)
    fault_point("after_unlearned_quarantine")
    mlc.set_tag(run_id, TAG_QUARANTINED, str(quarantined))
    log.warning(
        "unlearned task %s for %s: run %s, version %s -> %s (%s); file quarantined at %s",
        task_id, requested_by, run_id, version_before, version, decision.alias, quarantined,
    )  # fmt: skip
    return Unlearned(
        task_id=task_id,
        requested_by=requested_by,
        run_id=run_id,
        version_before=version_before,
        version_after=version,
        gate_passed=decision.passed,
        learned_tasks=list(result["task_ids"]),
        checkpoint_path=result["checkpoint_path"],
        quarantined=str(quarantined),
    )


def _record(
    settings: Settings,
    task_id: str,
    requested_by: str,
    result: dict[str, Any],
    learned_run_id: str,
    version_before: str | None,
) -> str:
    """Open the unlearning's MLflow run, log the new state into it, mark the task's learned run; its id."""
    mlc = tracking.mlflow_client(settings)
    run = mlc.create_run(
        tracking.ensure_experiment(settings),
        run_name=f"unlearn {task_id}",
        tags={
            TAG_KIND: KIND_UNLEARNING,
            TAG_UNLEARNED_TASK: task_id,
            TAG_REQUESTED_BY: requested_by,
            TAG_VERSION_BEFORE: version_before or "-",
            "ct.learned_run_id": learned_run_id,
            "ct.checkpoint_sha256": result["checkpoint_sha256"],
            "ct.strategy": result["train_config"].get("strategy", ""),
        },
    )
    run_id = run.info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        tracking.log_result(run_id, result, Path(tmp))
        (Path(tmp) / "learn_result.json").write_text(json.dumps(result, indent=2, default=str))
        mlc.log_artifact(run_id, str(Path(tmp) / "learn_result.json"))
    mlc.set_tag(learned_run_id, TAG_UNLEARNED, run_id)
    return run_id
