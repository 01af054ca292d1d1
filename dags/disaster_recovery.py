"""
### disaster_recovery

Manual disaster recovery (runbook "Disaster Recovery": `disaster_recovery.sh`): restore a backup over the
live system, check its health, validate it against the backup, notify. Trigger it from the UI/API with the
params below; nothing runs on a schedule.

**Params**
- `backup_id`: `latest` (the newest *complete* backup: one with a manifest) or an id like `20261128T214500Z`.
  Anything else is rejected before any step runs.
- `source`: `local` (`var/backups`) or `s3` (downloaded and verified through the `s3_backup` connection).
- `dry_run`: verify and stage only, report what would change; live state, lock holders and DAGs untouched.

**Steps**
1. `resolve` - validate the params, pick the backup; 2. `take_lock` - the maintenance lock
   (`var/maintenance.lock`): training and backups refuse to run while it is held;
3. `pause_dags` - pause `continual_training` and `checkpoint_backup` through the Airflow REST API when an
   `airflow_api` connection is configured; 4. `verify` - re-read every file, check every sha256 (download
   from S3 first) **before touching live state**; 5. `restore` - copy into staging folders, re-hash, swap in
   by rename (the previous live folders are kept as `.<name>.pre-restore-*`), MLflow store and artifacts,
   configuration merged so **a live secret is never overwritten** (secrets the backup lacked are listed);
6. `health_check` - the champion model loads and predicts; 7. `validate` - `make test-validation`: every
   checkpoint byte-identical, MLflow aliases as recorded, champion accuracies on every task equal to those
   recorded at backup time; 8. `release` - release the lock and unpause; 9. `notify` - webhook
   (`notify_webhook` connection) or a log entry; fails the run if any step failed.

**When it fails**
- Before `restore` swapped anything (bad id, checksum mismatch - the error names the file, S3 unreachable):
  live state is untouched, the lock is released. Pick another backup (`make list-backups`) and re-trigger.
- After the swap (`health_check`/`validate` failed): the lock is **kept** and the DAGs stay paused so nothing
  trains on a bad state. Inspect the notification/logs; roll back by renaming the `.pre-restore-*` folders,
  or restore an older backup, then `make unlock` and unpause the DAGs.
- Secrets listed as missing: set them (env / `.env`) before restarting services. Then reload the serving
  app (`POST /api/model/reload` or restart it).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, TriggerRule, dag, task

BACKUP_ID_PARAM_PATTERN = r"^(latest|\d{8}T\d{6}Z(-\d{1,3})?)$"
API_CONN_ID = "airflow_api"
WEBHOOK_CONN_ID = "notify_webhook"
WORK_STEPS = ("resolve", "take_lock", "pause_dags", "verify", "restore", "health_check", "validate")


def _connection(conn_id: str):
    """The Airflow connection ``conn_id``, or None when it is not configured."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def _store(source: str):
    """The S3 store when reading from S3 (s3_backup connection), else None."""
    if source != "s3":
        return None
    from include.ops.backup import s3_store_from_connection

    store = s3_store_from_connection()
    if store is None:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("source=s3 but the s3_backup connection is not configured")
    return store


def _no_retry(fn, *args, **kwargs):
    """Call ``fn``; a permanent failure (bad id, unusable or corrupted backup, lock held) fails without retries."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.ops.backup import (
        BackupIntegrityError,
        BackupNotFound,
        IncompleteBackup,
        InvalidBackupId,
        UnsafePathError,
    )
    from include.ops.lock import MaintenanceLocked

    permanent = (
        BackupIntegrityError,
        BackupNotFound,
        IncompleteBackup,
        InvalidBackupId,
        UnsafePathError,
        MaintenanceLocked,
    )
    try:
        return fn(*args, **kwargs)
    except permanent as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


@dag(
    dag_id="disaster_recovery",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["disaster-recovery", "backup", "maintenance"],
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(seconds=30)},
    doc_md=__doc__,
    params={
        "backup_id": Param(
            "latest",
            type="string",
            pattern=BACKUP_ID_PARAM_PATTERN,
            description="Backup to restore: 'latest' (newest complete backup) or an id like 20261128T214500Z.",
        ),
        "source": Param(
            "local",
            type="string",
            enum=["local", "s3"],
            description="Where to read the backup: local backup folder or S3 (s3_backup connection).",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            description="Verify and stage only; report the changes, touch nothing live.",
        ),
    },
)
def disaster_recovery():
    @task
    def resolve(params: dict) -> dict:
        """Validate the params and pick the backup (latest complete one); it must have a valid manifest."""
        from include.ops.backup import load_manifest, resolve_backup_id

        store = _store(params["source"])
        backup_id = _no_retry(resolve_backup_id, params["backup_id"], source=params["source"], store=store)
        manifest = _no_retry(load_manifest, backup_id, source=params["source"], store=store)
        print(f"restoring backup {backup_id} ({params['source']}) made {manifest.created_at}")
        return {"backup_id": backup_id, "source": params["source"], "dry_run": bool(params["dry_run"])}

    @task
    def take_lock(plan: dict, dag_run=None) -> str:
        """Hold the maintenance lock (training and backups refuse to run meanwhile)."""
        from include.ops.lock import acquire_maintenance_lock

        holder = f"disaster_recovery:{dag_run.run_id}"
        if not plan["dry_run"]:
            _no_retry(acquire_maintenance_lock, holder)
        return holder

    @task
    def pause_dags(plan: dict, holder: str) -> dict:
        """Pause training and backup DAGs over the REST API (when an airflow_api connection exists)."""
        from include.ops.backup.notify import PAUSED_DURING_RECOVERY, connection_url, set_dags_paused

        conn = _connection(API_CONN_ID)
        if plan["dry_run"] or conn is None:
            return {"paused": [], "note": "dry run" if plan["dry_run"] else f"no {API_CONN_ID} connection"}
        url = connection_url(conn, default_scheme="http")
        previous = set_dags_paused(url, conn.login, conn.password, PAUSED_DURING_RECOVERY, paused=True)
        return {"paused": [d for d, was_paused in previous.items() if not was_paused]}

    @task
    def verify(plan: dict) -> dict:
        """Re-read the backup and check every sha256 before anything live is touched."""
        from include.ops.backup import verify_backup

        store = _store(plan["source"])
        return _no_retry(
            verify_backup, plan["backup_id"], plan["source"], store=store, keep_download=True
        ).to_dict()

    @task
    def restore(plan: dict, holder: str, verified: dict) -> dict:
        """Stage, re-hash and swap in the backup (dry run: report the changes only)."""
        from include.ops.backup import restore_backup

        store = _store(plan["source"])
        result = _no_retry(
            restore_backup,
            plan["backup_id"],
            plan["source"],
            store=store,
            dry_run=plan["dry_run"],
            holder=holder,
        )
        for area, change in result.changes.items():
            print(
                f"{area}: {len(change['added'])} added, {len(change['changed'])} changed, {len(change['removed'])} removed"
            )
        return result.to_dict()

    @task
    def health_check(plan: dict, restored: dict) -> dict:
        """The restored champion model loads (checksum-verified) and predicts."""
        from include.ops.backup import check_restored_health

        if plan["dry_run"]:
            return {"skipped": "dry run"}
        return check_restored_health(restored["backup_root"])

    @task
    def validate(plan: dict, restored: dict, healthy: dict) -> dict:
        """make test-validation: byte-identical checkpoints, same aliases, same accuracies as at backup time."""
        from pathlib import Path

        from include.ops.backup import validate_restore

        if plan["dry_run"]:
            return {"ok": True, "skipped": "dry run"}
        report = validate_restore(
            plan["backup_id"], plan["source"], backup_root=Path(restored["backup_root"])
        )
        return report.to_dict()

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def release(ti=None) -> dict:
        """Release the lock and unpause, unless live state was replaced and then failed its checks."""
        from include.ops.backup.notify import connection_url, set_dags_paused
        from include.ops.lock import read_lock, release_maintenance_lock

        plan, holder = ti.xcom_pull(task_ids="resolve"), ti.xcom_pull(task_ids="take_lock")
        restored, validated = ti.xcom_pull(task_ids="restore"), ti.xcom_pull(task_ids="validate")
        paused = (ti.xcom_pull(task_ids="pause_dags") or {}).get("paused", [])
        live_replaced = bool(restored) and not restored.get("dry_run")
        if live_replaced and not (validated or {}).get("ok"):
            print("restored state failed its checks: keeping the maintenance lock and the DAGs paused")
            return {"lock": "kept", "paused": paused}
        lock = read_lock()
        if holder and lock is not None and lock.holder == holder:
            release_maintenance_lock(holder)
        conn = _connection("airflow_api")
        if paused and conn is not None:
            set_dags_paused(connection_url(conn, "http"), conn.login, conn.password, paused, paused=False)
        return {"lock": "released" if plan else "not taken", "unpaused": paused}

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def notify(ti=None) -> dict:
        """Tell stakeholders the outcome: webhook (notify_webhook connection) or a log entry."""
        from include.ops.backup.notify import connection_url
        from include.ops.backup.notify import notify as send

        steps = {s: ti.xcom_pull(task_ids=s) is not None for s in WORK_STEPS}
        plan = ti.xcom_pull(task_ids="resolve") or {}
        validated = ti.xcom_pull(task_ids="validate") or {}
        summary = {
            "ok": all(steps.values()) and bool(validated.get("ok")),
            "backup_id": plan.get("backup_id"),
            "source": plan.get("source"),
            "dry_run": plan.get("dry_run"),
            "steps": steps,
            "problems": validated.get("problems", [])
            + [f"step {s} failed" for s, ok in steps.items() if not ok],
            "release": ti.xcom_pull(task_ids="release"),
        }
        conn = _connection(WEBHOOK_CONN_ID)
        summary["channel"] = send("disaster recovery", summary, connection_url(conn) if conn else None)
        return summary

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def finish(ti=None) -> None:
        """Fail the run when any recovery step failed (so the run's state tells the truth)."""
        summary = ti.xcom_pull(task_ids="notify") or {"ok": False, "problems": ["notify failed"]}
        if not summary["ok"]:
            raise RuntimeError(f"disaster recovery failed: {summary['problems']}")

    plan = resolve()
    holder = take_lock(plan)
    verified = verify(plan)
    pause_dags(plan, holder) >> verified
    restored = restore(plan, holder, verified)
    checked = validate(plan, restored, health_check(plan, restored))
    released = release()
    checked >> released
    summary = notify()
    released >> summary
    summary >> finish()


disaster_recovery()
