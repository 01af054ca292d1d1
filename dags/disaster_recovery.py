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

from include.airflow_glue.recovery import BACKUP_ID_PARAM_PATTERN, backup_id_param, source_param


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
        "backup_id": backup_id_param(
            "Backup to restore: 'latest' (newest complete backup) or an id like 20261128T214500Z "
            f"(pattern {BACKUP_ID_PARAM_PATTERN})."
        ),
        "source": source_param(
            "Where to read the backup: local (the backup folder) or s3 (the s3_backup connection)."
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
        from include.airflow_glue.recovery import fail_without_retry
        from include.airflow_glue.s3 import backup_store
        from include.ops.backup import recovery

        with fail_without_retry():
            store = backup_store(params["source"])
            return recovery.plan_recovery(params["backup_id"], params["source"], params["dry_run"], store)

    @task
    def take_lock(plan: dict, dag_run=None) -> str:
        """Hold the maintenance lock (training and backups refuse to run meanwhile)."""
        from include.airflow_glue.recovery import fail_without_retry
        from include.ops.backup import recovery

        with fail_without_retry():
            return recovery.lock_for_recovery(plan, f"disaster_recovery:{dag_run.run_id}")

    @task
    def pause_dags(plan: dict, holder: str) -> dict:
        """Pause training and backup DAGs over the REST API (when an airflow_api connection exists)."""
        from include.airflow_glue.recovery import api_endpoint
        from include.ops.backup import recovery

        return recovery.pause_for_recovery(plan, api_endpoint())

    @task
    def verify(plan: dict) -> dict:
        """Re-read the backup and check every sha256 before anything live is touched."""
        from include.airflow_glue.recovery import fail_without_retry
        from include.airflow_glue.s3 import backup_store
        from include.ops.backup import recovery

        with fail_without_retry():
            return recovery.verify_for_recovery(plan, backup_store(plan["source"]))

    @task
    def restore(plan: dict, holder: str, verified: dict) -> dict:
        """Stage, re-hash and swap in the backup (dry run: report the changes only)."""
        from include.airflow_glue.recovery import fail_without_retry
        from include.airflow_glue.s3 import backup_store
        from include.ops.backup import recovery

        with fail_without_retry():
            return recovery.restore_for_recovery(plan, holder, backup_store(plan["source"]))

    @task
    def health_check(plan: dict, restored: dict) -> dict:
        """The restored champion model loads (checksum-verified) and predicts."""
        from include.ops.backup import recovery

        return recovery.health_after_restore(plan, restored)

    @task
    def validate(plan: dict, restored: dict, healthy: dict) -> dict:
        """make test-validation: byte-identical checkpoints, same aliases, same accuracies as at backup time."""
        from include.ops.backup import recovery

        return recovery.validate_after_restore(plan, restored)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def release(ti=None) -> dict:
        """Release the lock and unpause, unless live state was replaced and then failed its checks."""
        from include.airflow_glue.recovery import api_endpoint
        from include.ops.backup import recovery

        paused = (ti.xcom_pull(task_ids="pause_dags") or {}).get("paused", [])
        return recovery.release_after_recovery(
            ti.xcom_pull(task_ids="resolve"),
            ti.xcom_pull(task_ids="take_lock"),
            ti.xcom_pull(task_ids="restore"),
            ti.xcom_pull(task_ids="validate"),
            paused,
            api_endpoint(),
        )

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def notify(ti=None) -> dict:
        """Tell stakeholders the outcome: webhook (notify_webhook connection) or a log entry."""
        from include.airflow_glue.recovery import webhook_url
        from include.ops.backup import recovery

        results = {step: ti.xcom_pull(task_ids=step) for step in recovery.WORK_STEPS}
        summary = recovery.recovery_summary(results, results["resolve"], ti.xcom_pull(task_ids="release"))
        return recovery.notify_recovery(summary, webhook_url())

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def finish(ti=None) -> None:
        """Fail the run when any recovery step failed (so the run's state tells the truth)."""
        from include.ops.backup import recovery

        recovery.check_recovery(ti.xcom_pull(task_ids="notify"))

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
