"""Crash consistency of training: reruns reconcile by themselves after a ``kill -9`` at any step.

The learner state (verified checkpoints) and MLflow (the record of what was learned) can disagree only in
the window between a checkpoint's sidecar and the ``ct.status=learned`` tag. A rerun, under the training
lock, repairs that on its own, in this order:

1. **Orphaned runs** (:func:`mark_orphaned_runs`): every run opened by training records the host, pid and
   the pid's start time (``ct.host``, ``ct.pid``, ``ct.pid_start``). A RUNNING run of this experiment opened
   on this host whose process is gone (or whose pid now belongs to another process) is ended FAILED with
   ``ct.orphaned=killed: ...`` (FINISHED when it was already tagged learned: only its end was lost). Runs opened on another host are left alone: their liveness is not knowable
   here. A retry of the same DAG run resumes its run; the tag stays as history.
2. **Checkpoints ahead of MLflow** (:func:`record_unrecorded_tasks`): a task in the learner state with no
   learned run is *recorded from its verified checkpoint's own metadata* (accuracy matrix, retention,
   configs, losses and timing kept in the checkpoint), never trained again; the run gets
   ``ct.recovered=from_checkpoint <file>``. A checkpoint that does not verify (killed before its sidecar)
   was never trusted: the learner loads the one before it and the task is learned again.
3. **Learned runs without a gated version** (:func:`pending_registrations`): the register step of the
   next run registers and gates them (registration is idempotent by run: one version per learned run).
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

from include.ops import tracking
from include.ops.settings import Settings

log = logging.getLogger(__name__)

TAG_HOST = "ct.host"
TAG_PID = "ct.pid"
TAG_PID_START = "ct.pid_start"
TAG_ORPHANED = "ct.orphaned"
TAG_RECOVERED = "ct.recovered"
TRAINING_LOCK_NAME = "training.lock"


def training_lock_path(settings: Settings) -> Path:
    """The inter-process lock every training and registration of ``settings.state_dir`` holds."""
    return settings.state_dir / TRAINING_LOCK_NAME


GONE = "gone"  # _pid_start: no such process, or a zombie (it exited; only its parent has not reaped it)


def _pid_start(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot, :data:`GONE`, or None where ``/proc`` cannot tell."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return GONE if Path("/proc/self/stat").exists() else None
    except OSError:  # e.g. another user's process under hidepid: alive as far as we can know
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces; fields 3.. follow it
    return GONE if fields[0] in ("Z", "X") else fields[19]


def process_identity() -> dict[str, str]:
    """Tags naming this process: host, pid and its start time (so a reused pid is not mistaken for it)."""
    pid = os.getpid()
    return {TAG_HOST: socket.gethostname(), TAG_PID: str(pid), TAG_PID_START: _pid_start(pid) or ""}


def process_gone(tags: dict[str, str]) -> str | None:
    """Why the process the tags name is gone (a reason), or None when it lives or is not knowable here."""
    if tags.get(TAG_HOST) != socket.gethostname() or not str(tags.get(TAG_PID, "")).isdigit():
        return None
    pid = int(tags[TAG_PID])
    if pid == os.getpid():
        return None
    started = _pid_start(pid)
    if started is None:  # no /proc (or unreadable): a signal-0 probe tells gone from alive
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            started = GONE
        except PermissionError:
            return None
    if started == GONE:
        return f"killed: no live process {pid} on {tags[TAG_HOST]}"
    if started and tags.get(TAG_PID_START) and started != tags[TAG_PID_START]:
        return f"killed: pid {pid} on {tags[TAG_HOST]} now belongs to another process"
    return None


def mark_orphaned_runs(settings: Settings) -> list[str]:
    """End every RUNNING run whose training process on this host is gone (FAILED, or FINISHED when it was
    already tagged learned), tagged ``ct.orphaned`` with the reason; returns their run ids."""
    mlc = tracking.mlflow_client(settings)
    exp = mlc.get_experiment_by_name(settings.mlflow_experiment)
    if exp is None:
        return []
    marked = []
    for run in mlc.search_runs([exp.experiment_id], filter_string="attributes.status = 'RUNNING'"):
        reason = process_gone(run.data.tags)
        if reason is None:
            continue
        # killed between the learned tag and the run's end: the task was recorded, so the run did finish
        learned = run.data.tags.get(tracking.TAG_STATUS) == tracking.STATUS_LEARNED
        status = "FINISHED" if learned else "FAILED"
        mlc.set_tag(run.info.run_id, TAG_ORPHANED, reason)
        mlc.set_terminated(run.info.run_id, status=status)
        log.warning(
            "MLflow run %s (task %s) was orphaned, marked %s: %s",
            run.info.run_id, run.data.tags.get(tracking.TAG_TASK_ID), status, reason,
        )  # fmt: skip
        marked.append(run.info.run_id)
    return marked


def record_unrecorded_tasks(
    settings: Settings, learner: Any, dag_id: str, dag_run_id: str, record: Any, open_run: Any
) -> dict[str, dict[str, Any]]:
    """Record every task of the learner state that MLflow has no learned run for, from its own checkpoint.

    ``record(settings, run_id, result)`` and ``open_run(settings, task_id, dag_id, dag_run_id, existing)``
    are the training module's; returns ``{task_id: summary}`` of the tasks recorded now."""
    learned = set(tracking.learned_task_ids(settings))
    recorded: dict[str, dict[str, Any]] = {}
    for task_id in [t for t in learner.learned_tasks if t not in learned]:
        result = learner.result_from_checkpoint(task_id).to_dict()
        existing = tracking.find_run(settings, dag_run_id, task_id)
        run_id = open_run(settings, task_id, dag_id, dag_run_id, existing)
        tracking.mlflow_client(settings).set_tag(
            run_id, TAG_RECOVERED, f"from_checkpoint {Path(result['checkpoint_path']).name}"
        )
        log.warning(
            "task %s is in the learner state but MLflow had no learned run (a crash after its checkpoint): "
            "recording it from checkpoint %s into run %s, not training it again",
            task_id, result["checkpoint_path"], run_id,
        )  # fmt: skip
        recorded[task_id] = record(settings, run_id, result)
    return recorded


def pending_registrations(settings: Settings) -> list[tuple[str, str | None]]:
    """``(run_id, version or None)`` of learned runs with no version yet or a version never gated, oldest first."""
    mlc = tracking.mlflow_client(settings)
    exp = mlc.get_experiment_by_name(settings.mlflow_experiment)
    if exp is None:
        return []
    versions = {}
    for mv in mlc.search_model_versions(f"name = '{settings.registered_model}'"):
        versions.setdefault(mv.run_id, mv)
    pending = []
    for run in tracking.learned_runs(mlc, exp.experiment_id):
        mv = versions.get(run.info.run_id)
        if mv is None:
            pending.append((run.info.run_id, None))
        elif "gate" not in (mv.tags or {}):
            pending.append((run.info.run_id, str(mv.version)))
    return pending
