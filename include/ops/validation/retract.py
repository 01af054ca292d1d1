"""Retract a validated batch that has not been learned yet: the operator's way to free a stuck stream.

    python -m include.ops.validation.cli retract task_2.csv      # make retract-batch FILE=task_2.csv

Validated batches are immutable and tasks train in order, so a validated batch that training cannot use (or
that should not have passed) blocks every later task. Retracting moves its bytes from the validated store into
the quarantine (reason ``retracted by operator``, with a ``report.json``), removes it from the store's
``index.json`` and its task from the store's ``manifest.json``, all under the store lock. A copy with the same
bytes still in the local landing zone is quarantined too, so the next validation run does not validate it
again. Refused, with nothing changed, when MLflow records the task as learned (a learned task is part of the
model; its data must stay), when MLflow cannot be asked, or when a training still holds the training lock
after ``CT_TRAINING_LOCK_TIMEOUT_S`` (the check and the move run under that lock, so no training starts on the
batch in between). Then land a corrected file under the same name and
validate it; ``release`` can re-land the retracted bytes from the quarantine.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from include.ops.settings import Settings
from include.ops.validation import alerts
from include.ops.validation.landing import Landing, LocalLanding
from include.ops.validation.store import RETRACTED_REASON, quarantine, read_index, retract_validated, utc_now
from model.fsio import LockTimeout, file_lock, sha256_file


class RetractRefused(RuntimeError):
    """The batch cannot be retracted (not validated, learned, or MLflow cannot tell); nothing was changed."""


@dataclass(frozen=True)
class Retraction:
    """What a retraction did: the batch, its task, where its bytes went, and a landing copy moved too (if any)."""

    name: str
    task_id: str | None
    sha256: str
    quarantined: Path
    report: Path
    landing_copy: str | None


def _learned(settings: Settings) -> set[str]:
    from include.ops import tracking

    try:
        return set(tracking.learned_task_ids(settings))
    except Exception as exc:  # an unreachable or broken tracking store: refuse rather than guess
        raise RetractRefused(
            f"cannot tell from MLflow ({settings.mlflow_tracking_uri}) which tasks are learned: {exc}; "
            "nothing retracted"
        ) from exc


def _retire_landing_copy(
    landing: Landing, settings: Settings, name: str, checksum: str, report: dict, folder: str
) -> str | None:
    """Quarantine the landing zone's copy of a retracted batch when it holds the same bytes; where it went."""
    from include.ops.validation.zone import staging_dir

    item = next((i for i in landing.list_files() if i.name == name and i.kind == "file"), None)
    if item is None:
        return None
    local, staged = landing.fetch(item, staging_dir(settings))
    try:
        if sha256_file(local) != checksum:
            return None
        if landing.kind != "local":
            return landing.quarantine_source(item, folder)
        report = {**report, "check": "retracted", "stage": "retract"}
        report["reason"] = f"{RETRACTED_REASON} (landing copy)"
        moved, _ = quarantine(local, name, checksum, report, settings.quarantine_dir, move=True)
        return str(moved)
    finally:
        if staged:
            local.unlink(missing_ok=True)


def retract_batch(
    settings: Settings,
    name: str,
    learned: Collection[str] | None = None,
    landing: Landing | None = None,
) -> Retraction:
    """Retract the validated batch ``name`` (a file name of the store); RetractRefused naming why not.

    ``learned`` (task ids MLflow records as learned) is looked up when not given; ``landing`` is the zone whose
    copy of the batch is quarantined too (default: the local ``settings.landing_dir``; an S3 object is moved to
    the quarantine prefix).
    """
    name = Path(name).name
    files = read_index(settings.validated_dir).get("files", {})
    entry = files.get(name)
    if entry is None:
        raise RetractRefused(
            f"{name!r} is not a validated batch of {settings.validated_dir} (validated: {sorted(files) or 'none'})"
        )
    task_id = entry.get("task_id")
    from include.ops.training_recovery import training_lock_path

    try:  # under the training lock: no training reads the batch between the "learned?" check and the move
        with file_lock(training_lock_path(settings), settings.training_lock_timeout_s):
            return _retract_unlearned(settings, name, task_id, entry, learned, landing)
    except LockTimeout as exc:
        raise RetractRefused(
            f"a training of {settings.state_dir} holds the training lock ({exc}); nothing retracted: "
            "retry when it has finished"
        ) from exc


def _retract_unlearned(
    settings: Settings,
    name: str,
    task_id: str | None,
    entry: dict,
    learned: Collection[str] | None,
    landing: Landing | None,
) -> Retraction:
    if task_id in (_learned(settings) if learned is None else set(learned)):
        raise RetractRefused(
            f"task {task_id!r} ({name}) is recorded as learned in MLflow: a learned batch is part of the model "
            "and cannot be retracted (restore an earlier checkpoint with disaster_recovery instead)"
        )
    report = {
        "name": name,
        "task_id": task_id,
        "rows": entry.get("rows"),
        "status": "retracted",
        "source": entry.get("source"),
        "validated_at": entry.get("validated_at"),
        "validation_report": entry.get("report"),
        "retracted_at": utc_now(),
    }
    qfile, qreport, removed = retract_validated(settings.validated_dir, settings.quarantine_dir, name, report)
    checksum = str(removed.get("sha256"))
    landing = landing or LocalLanding(settings.landing_dir)
    landing_copy = _retire_landing_copy(landing, settings, name, checksum, report, qfile.parent.name)
    alerts.record(
        settings.log_dir,
        "WARNING",
        f"{name} ({task_id}) {RETRACTED_REASON}: moved to {qfile}",
        file=name,
        task_id=task_id,
        sha256=checksum,
        quarantined=str(qfile),
        landing_copy=landing_copy,
    )
    return Retraction(name, task_id, checksum, qfile, qreport, landing_copy)
