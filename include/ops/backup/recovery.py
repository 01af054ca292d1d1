"""The steps of a disaster recovery (runbook ``disaster_recovery.sh``), each a plain function of plain values.

The ``disaster_recovery`` DAG runs them as tasks (XCom carries the small dicts they return); they take no
Airflow object: the DAG turns its ``s3_backup``, ``airflow_api`` and ``notify_webhook`` connections into an
``S3Store``, an :class:`ApiEndpoint` and a URL first. Order: :func:`plan_recovery` -> :func:`lock_for_recovery`
-> :func:`pause_for_recovery` -> :func:`verify_for_recovery` -> :func:`restore_for_recovery` ->
:func:`health_after_restore` -> :func:`validate_after_restore` -> :func:`release_after_recovery` ->
:func:`recovery_summary` -> :func:`notify_recovery` -> :func:`check_recovery`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.ops.backup.catalog import describe_skipped, load_manifest, resolve_backup, verify_backup
from include.ops.backup.layout import (
    BackupIntegrityError,
    BackupNotFound,
    IncompleteBackup,
    InvalidBackupId,
    UnsafePathError,
)
from include.ops.backup.notify import PAUSED_DURING_RECOVERY, notify, set_dags_paused
from include.ops.backup.restore import restore_backup
from include.ops.backup.s3 import S3Store
from include.ops.backup.validate import check_restored_health, validate_restore
from include.ops.lock import MaintenanceLocked, acquire_maintenance_lock, read_lock, release_maintenance_lock
from include.ops.settings import Settings, get_settings

log = logging.getLogger(__name__)

WORK_STEPS = ("resolve", "take_lock", "pause_dags", "verify", "restore", "health_check", "validate")
# a retry cannot fix these: a bad id, an unusable or corrupted backup, a lock someone else holds
PERMANENT_ERRORS: tuple[type[Exception], ...] = (
    BackupIntegrityError,
    BackupNotFound,
    IncompleteBackup,
    InvalidBackupId,
    UnsafePathError,
    MaintenanceLocked,
)


class RecoveryFailed(RuntimeError):
    """A recovery step failed; the message lists the problems of the summary."""


@dataclass(frozen=True)
class ApiEndpoint:
    """The Airflow REST API the recovery pauses DAGs through (credentials are never logged)."""

    url: str
    login: str
    password: str = ""


def plan_recovery(
    backup_id: str, source: str, dry_run: bool, store: S3Store | None = None, settings: Settings | None = None
) -> dict[str, Any]:
    """Pick the backup (``latest``: the newest complete one); it must have a valid manifest. The plan dict.

    ``skipped`` names the newer backups ``latest`` passed over (incomplete) and why.
    """
    backup_id, skipped = resolve_backup(backup_id, settings, source, store)
    manifest = load_manifest(backup_id, settings, source, store)
    for line in describe_skipped(skipped):
        log.warning("disaster recovery: %s", line)
    log.info("restoring backup %s (%s) made %s", backup_id, source, manifest.created_at)
    return {"backup_id": backup_id, "source": source, "dry_run": bool(dry_run), "skipped": skipped}


def lock_for_recovery(plan: Mapping[str, Any], holder: str, settings: Settings | None = None) -> str:
    """Hold the maintenance lock as ``holder`` (not for a dry run): training and backups refuse meanwhile."""
    if not plan["dry_run"]:
        acquire_maintenance_lock(holder, (settings or get_settings()).lock_file)
    return holder


def pause_for_recovery(plan: Mapping[str, Any], api: ApiEndpoint | None) -> dict[str, Any]:
    """Pause the training and backup DAGs over the REST API; ``paused`` lists those this run paused."""
    if plan["dry_run"] or api is None:
        return {"paused": [], "note": "dry run" if plan["dry_run"] else "no Airflow API connection"}
    previous = set_dags_paused(api.url, api.login, api.password, PAUSED_DURING_RECOVERY, paused=True)
    return {"paused": [dag_id for dag_id, was_paused in previous.items() if not was_paused]}


def verify_for_recovery(plan: Mapping[str, Any], store: S3Store | None = None) -> dict[str, Any]:
    """Re-read the backup and check every sha256 (S3: downloaded and kept) before anything live is touched."""
    return verify_backup(plan["backup_id"], plan["source"], store=store, keep_download=True).to_dict()


def restore_for_recovery(
    plan: Mapping[str, Any], holder: str, store: S3Store | None = None
) -> dict[str, Any]:
    """Stage, re-hash and swap in the backup (dry run: report the changes only)."""
    result = restore_backup(
        plan["backup_id"], plan["source"], store=store, dry_run=plan["dry_run"], holder=holder
    )
    for area, change in result.changes.items():
        log.info(
            "%s: %d added, %d changed, %d removed",
            area, len(change["added"]), len(change["changed"]), len(change["removed"]),
        )  # fmt: skip
    return result.to_dict()


def health_after_restore(plan: Mapping[str, Any], restored: Mapping[str, Any]) -> dict[str, Any]:
    """The restored champion model loads (checksum-verified) and predicts."""
    if plan["dry_run"]:
        return {"skipped": "dry run"}
    return check_restored_health(Path(restored["backup_root"]))


def validate_after_restore(plan: Mapping[str, Any], restored: Mapping[str, Any]) -> dict[str, Any]:
    """``make test-validation``: byte-identical checkpoints, same aliases, same accuracies as at backup time."""
    if plan["dry_run"]:
        return {"ok": True, "skipped": "dry run"}
    return validate_restore(
        plan["backup_id"], plan["source"], backup_root=Path(restored["backup_root"])
    ).to_dict()


def release_after_recovery(
    plan: Mapping[str, Any] | None,
    holder: str | None,
    restored: Mapping[str, Any] | None,
    validated: Mapping[str, Any] | None,
    paused: list[str],
    api: ApiEndpoint | None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Release the lock and unpause, unless live state was replaced and then failed its checks.

    Runs whatever happened before (None = that step did not succeed). A replaced but unvalidated live state
    keeps the lock and the DAGs paused, so nothing trains on it until an operator has looked.
    """
    live_replaced = bool(restored) and not restored.get("dry_run")
    if live_replaced and not (validated or {}).get("ok"):
        log.error("restored state failed its checks: keeping the maintenance lock and the DAGs paused")
        return {"lock": "kept", "paused": paused}
    lock_file = (settings or get_settings()).lock_file
    lock = read_lock(lock_file)
    if holder and lock is not None and lock.holder == holder:
        release_maintenance_lock(holder, lock_file)
    if paused and api is not None:
        set_dags_paused(api.url, api.login, api.password, paused, paused=False)
    return {"lock": "released" if plan else "not taken", "unpaused": paused}


def recovery_summary(
    results: Mapping[str, Any], plan: Mapping[str, Any] | None, release: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The outcome: ``ok`` only when every work step returned and validation passed; the problems named.

    ``results`` maps each of ``WORK_STEPS`` to what it returned (None when it failed or did not run).
    """
    steps = {step: results.get(step) is not None for step in WORK_STEPS}
    plan = plan or {}
    validated = results.get("validate") or {}
    return {
        "ok": all(steps.values()) and bool(validated.get("ok")),
        "backup_id": plan.get("backup_id"),
        "source": plan.get("source"),
        "skipped": plan.get("skipped", []),
        "dry_run": plan.get("dry_run"),
        "steps": steps,
        "problems": list(validated.get("problems", []))
        + [f"step {s} failed" for s, ok in steps.items() if not ok],
        "release": release,
    }


def notify_recovery(summary: dict[str, Any], webhook_url: str | None) -> dict[str, Any]:
    """Tell stakeholders (webhook, else a log entry); the summary with the ``channel`` used."""
    return {**summary, "channel": notify("disaster recovery", summary, webhook_url)}


def check_recovery(summary: Mapping[str, Any] | None) -> None:
    """Raise RecoveryFailed when the recovery did not succeed (so the run's state tells the truth)."""
    summary = summary or {"ok": False, "problems": ["notify failed"]}
    if not summary["ok"]:
        raise RecoveryFailed(f"disaster recovery failed: {summary['problems']}")
