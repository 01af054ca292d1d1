"""
### checkpoint_backup

Backs up everything needed to rebuild the model service (runbook "Backup Procedures": `backup_models.sh`
and `backup_database.sh`), daily at 02:30 UTC **and** whenever a new `model_checkpoint` Asset event arrives.

**A backup** (`var/backups/<id>/`, id like `20261128T214500Z`) holds the learner state (every checkpoint +
`.sha256`, `learner_state.json`), the MLflow backend store (SQLite online backup, or `pg_dump` for
PostgreSQL; MLflow-held secrets scrubbed) and artifacts, the task data the champion is evaluated on, the
effective configuration with **secret values removed** (names only), and `manifest.json`: every file's
path, size and sha256, code version, package versions, MLflow run ids and aliases, and the champion's
per-task test accuracies. The manifest is written **last**: a folder without one is incomplete and is
never restored or counted. With an `s3_backup` connection the files also go to S3 (content-addressed:
unchanged files are not uploaded again) and the S3 manifest is written before the local one.

**Steps**: `check_lock` (refuse while disaster recovery holds the maintenance lock) -> `plan` (backup id)
-> `snapshot` (local copy, hashed while copying) -> `upload` (S3; skipped without a connection) ->
`commit` (manifest) -> `verify` (re-read every byte, downloading from S3 too) -> `report` (metrics).

**Params**: `remote` = `auto` (S3 when the `s3_backup` connection exists) | `off` | `required`;
`verify_remote` = also download and check the S3 copy.

**When it fails**
- `check_lock` / `maintenance lock ... is held`: disaster recovery is running; the task fails at once
  (a refusal never retries) and the next scheduled run catches up. A stale lock (crashed recovery)
  expires after 6 h or: `make unlock`.
- `upload` failed (S3 unreachable, credentials): nothing was committed, the previous backup is still the
  latest complete one. Check the `s3_backup` connection and the bucket, then clear the `upload` task: it
  resumes and skips objects already uploaded.
- `verify` failed: the backup named the bad files; do not use it. Check the disk/bucket, run
  `make backup` again, and see docs/backup-recovery.md.
- `snapshot` says live state kept changing: training wrote during the copy three times; re-run later.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from include.airflow_glue.assets import CHECKPOINT


@dag(
    dag_id="checkpoint_backup",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("30 2 * * *", timezone="UTC"),
        assets=CHECKPOINT,
    ),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["backup", "maintenance", "disaster-recovery"],
    default_args={
        "owner": "ml-platform",
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
    },
    doc_md=__doc__,
    params={
        "remote": Param(
            "auto",
            type="string",
            enum=["auto", "off", "required"],
            description="S3 copy: auto = when the s3_backup connection exists; off = local only; "
            "required = fail without S3.",
        ),
        "verify_remote": Param(
            True, type="boolean", description="Also download the S3 copy and check every checksum."
        ),
    },
)
def checkpoint_backup():
    @task
    def check_lock() -> None:
        """Refuse to back up while disaster recovery holds the maintenance lock."""
        from include.airflow_glue.refusals import fail_on_refusal
        from include.ops.lock import assert_not_locked

        with fail_on_refusal():  # a held lock fails without retry; the next scheduled run catches up
            assert_not_locked("checkpoint_backup")

    @task
    def plan() -> str:
        """Choose the backup id once, so retries of later steps resume the same backup."""
        from include.ops.backup import allocate_backup_id
        from include.ops.settings import get_settings

        return allocate_backup_id(get_settings().backup_dir)

    @task
    def snapshot(backup_id: str) -> dict:
        """Copy state, MLflow store + artifacts, data and redacted config into the backup folder."""
        from include.airflow_glue.refusals import fail_on_refusal
        from include.ops.backup import snapshot_backup

        with fail_on_refusal():
            manifest = snapshot_backup(backup_id=backup_id)
        return {"backup_id": backup_id, "files": len(manifest.files), "bytes": manifest.total_bytes}

    @task
    def upload(snap: dict, params: dict) -> dict | None:
        """Upload files S3 does not hold yet (content-addressed); retried, then fails without a manifest."""
        from include.airflow_glue.s3 import backup_store
        from include.ops.backup import upload_backup

        store = backup_store(params["remote"])
        if store is None:
            print("no S3 store configured: local backup only")
            return None
        return upload_backup(snap["backup_id"], store).to_dict()

    @task
    def commit(snap: dict, uploaded: dict | None, params: dict) -> dict:
        """Write the manifest (S3 first, then local): the backup becomes complete."""
        from include.airflow_glue.s3 import backup_store
        from include.ops.backup import commit_backup

        store = backup_store(params["remote"]) if uploaded is not None else None
        manifest = commit_backup(snap["backup_id"], store=store)
        return {
            "backup_id": manifest.backup_id,
            "completed_at": manifest.completed_at,
            "remote": manifest.remote,
        }

    @task
    def verify(committed: dict, params: dict) -> list[dict]:
        """Re-read the backup and check every checksum (local, and S3 when it was uploaded)."""
        from include.airflow_glue.s3 import backup_store
        from include.ops.backup import verify_backup

        reports = [verify_backup(committed["backup_id"], "local").to_dict()]
        if committed["remote"] and params["verify_remote"]:
            reports.append(
                verify_backup(committed["backup_id"], "s3", store=backup_store("required")).to_dict()
            )
        return reports

    @task
    def report(committed: dict, verified: list[dict]) -> dict:
        """Push the time of the newest verified backup (Pushgateway, when configured)."""
        from include.ops.metrics import push_backup_metrics

        completed = datetime.fromisoformat(committed["completed_at"]).timestamp()
        push_backup_metrics(completed, None)
        return {"backup_id": committed["backup_id"], "verified": [v["source"] for v in verified]}

    backup_id = plan()
    check_lock() >> backup_id
    snap = snapshot(backup_id)
    committed = commit(snap, upload(snap))
    report(committed, verify(committed))


checkpoint_backup()
