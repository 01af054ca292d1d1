"""
### dr_drill

Weekly disaster-recovery drill (runbook "Weekly Tasks: Test disaster recovery procedures"), Sundays 04:00 UTC.

Restores the latest complete backup into a **scratch folder** (`var/dr-drill-*`, removed afterwards) and runs
the same checks as a real recovery: every sha256 verified, every checkpoint byte-identical after the
restore, MLflow aliases as recorded, the champion loads and predicts, and its per-task test accuracies
equal those recorded at backup time. **Live state is never touched** and no lock is taken.

It measures the restore time to a validated system (RTO) and the backup's age (RPO) and writes them to
`var/reports/dr_drill_<time>.json` (+ `dr_drill_latest.json`) and, when `PUSHGATEWAY_URL` is set, to the
Pushgateway: `continual_transformer_dr_restore_seconds`, `continual_transformer_backup_age_seconds`,
`continual_transformer_backup_last_success_timestamp_seconds` (job `dr_drill`).

**Params**: `source` = `local` | `s3` (download through the `s3_backup` connection); `backup_id` =
`latest` or an id like `20261128T214500Z`.

**When it fails**: the report lists the problems. A checksum mismatch names the corrupted file - that
backup cannot be trusted: run `make backup` and check the storage. An accuracy mismatch means the restored
model differs from the recorded one: check `packages` in the backup manifest against the installed versions.
"No complete backup": `checkpoint_backup` has not succeeded; fix it first (`make backup`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import CronTriggerTimetable, dag, task

from include.airflow_glue.recovery import BACKUP_ID_PARAM_PATTERN, backup_id_param, source_param


@dag(
    dag_id="dr_drill",
    schedule=CronTriggerTimetable("0 4 * * 0", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["disaster-recovery", "backup", "maintenance"],
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(minutes=5)},
    doc_md=__doc__,
    params={
        "source": source_param("Restore from local (the backup folder) or s3 (the s3_backup connection)."),
        "backup_id": backup_id_param(
            "Backup to drill: 'latest' complete one, or an id like 20261128T214500Z "
            f"(pattern {BACKUP_ID_PARAM_PATTERN})."
        ),
    },
)
def dr_drill():
    @task
    def drill(params: dict) -> dict:
        """Restore into scratch, validate, record RTO/RPO (report + metrics); fails when validation fails."""
        from include.airflow_glue.refusals import fail_on_refusal
        from include.airflow_glue.s3 import backup_store
        from include.ops.backup import dr_drill as run_drill
        from include.ops.backup.drill import DrillFailed
        from include.ops.backup.recovery import PERMANENT_ERRORS

        # no complete backup, a bad id, the lock held, a restore that does not validate: a retry cannot help
        with fail_on_refusal(DrillFailed, *PERMANENT_ERRORS):
            store = backup_store(params["source"])
            return run_drill(params["backup_id"], params["source"], store=store).to_dict()

    drill()


dr_drill()
