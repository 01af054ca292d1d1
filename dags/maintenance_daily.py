"""
### maintenance_daily

The runbook's **Daily Tasks**, every day at 05:00 UTC: check system health, review error logs, monitor disk
space, verify backup completion. Each check is one task; `report` writes
`reports/maintenance/maintenance_daily_<UTC time>.md` + `.json`, logs them to the MLflow experiment
`<experiment>-maintenance`, pushes `continual_transformer_job_*` metrics (when `PUSHGATEWAY_URL` is set) and
posts to the `alert_webhook` HTTP connection when the run fails.

**Checks**
- `app_health`: `GET <app_url>/health/all` (healthy = pass, degraded = warn, unhealthy/unreachable = fail);
  nothing listening there (connection refused) = `skipped: not running` (the one check that needs `make serve`).
- `airflow_health`: the execution API answers (failed-run counts of the project DAGs); the api-server's
  `/api/v2/monitor/health` too when `CT_AIRFLOW_URL` is set.
- `mlflow_health`: the tracking store answers; a missing `champion` alias warns.
- `error_logs`: counts and samples the runbook's log patterns (`ERROR.*training`, `CUDA out of memory`,
  `loss.*diverged` fail; `slow.*inference`, `memory|leak|oom` warn) in every file under `CT_LOG_DIR`.
- `disk_space`: used % of the filesystems holding var/, checkpoints, backups and logs against the threshold.
- `backup`: the newest complete backup re-verified byte for byte (backup module) and not older than allowed;
  an incomplete newest backup (what `restore latest` would pass over) fails by name once older than 1 h;
  no backup at all = `skipped: no backup yet`.

**Params**: `app_url` (empty: env `CT_APP_URL`, else http://127.0.0.1:8000), `log_window_hours`,
`disk_max_used_pct` (null: env `CT_DISK_MAX_USED_PCT`, else 85), `backup_max_age_hours`, `strict`
(skipped / not-available checks fail too: use it where the app and backups are deployed), `alert_on_warning`.

**When it fails** (runbook "Incident Response")
- `app_health`: `curl <app>/health/all`; unhealthy model -> `POST /api/model/reload` (bearer token) or restart
  the app (`make serve`); memory -> "High Memory Usage": `POST /api/config/batch_size`,
  `POST /api/system/clear_gpu_cache`.
- `error_logs`: read the samples in the report. `loss diverged` / `ERROR ... training` -> "Training
  Convergence Issues" (`GET /api/training/history`, lower `POST /api/config/learning_rate`, re-run the task);
  `CUDA out of memory` -> lower the batch size.
- `disk_space`: run `maintenance_weekly` (cleanup keeps 10 checkpoints, deletes logs > 30 days), move backups
  off the host, or grow the volume.
- `backup`: trigger the backup DAG, then re-run this DAG; a failed verification names the corrupt files.
- `mlflow_health` / `airflow_health`: restart the service; check its database and disk.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag, task

from include.airflow_glue.params import app_url_param, outcome_params

KIND = "maintenance_daily"
CHECKS = ["app_health", "airflow_health", "mlflow_health", "error_logs", "disk_space", "backup"]
PROJECT_DAGS = [
    "data_validation",
    "continual_training",
    "checkpoint_backup",
    "disaster_recovery",
    "dr_drill",
    "maintenance_weekly",
    "maintenance_monthly",
]


@dag(
    dag_id=KIND,
    schedule="0 5 * * *",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["maintenance", "operations", "daily"],
    default_args={"owner": "ops", "retries": 1, "retry_delay": timedelta(minutes=2)},
    doc_md=__doc__,
    params={
        "app_url": app_url_param(),
        "log_window_hours": Param(
            24,
            type="number",
            exclusiveMinimum=0,
            maximum=24 * 31,
            description="How far back the log review reads, in hours: > 0 and <= 744 (31 days).",
        ),
        "disk_max_used_pct": Param(
            None,
            type=["null", "number"],
            exclusiveMinimum=0,
            maximum=100,
            description="Fail above this disk use %: > 0 and <= 100; null: env CT_DISK_MAX_USED_PCT, else 85.",
        ),
        "backup_max_age_hours": Param(
            48,
            type="number",
            exclusiveMinimum=0,
            description="Fail when the newest complete backup is older, in hours: > 0.",
        ),
        **outcome_params(),
    },
)
def maintenance_daily() -> None:
    @task
    def app_health() -> dict:
        from include.airflow_glue import maintenance as ds
        from include.ops.maintenance import daily

        return ds.check_task("app_health", daily.check_app_health, ds.app_url())

    @task
    def airflow_health() -> dict:
        from include.airflow_glue import maintenance as ds
        from include.ops.maintenance import daily
        from include.ops.settings import get_settings

        probe = ds.execution_api_probe(PROJECT_DAGS)
        return ds.check_task("airflow_health", daily.check_airflow, get_settings().airflow_url, probe)

    @task
    def mlflow_health() -> dict:
        from include.airflow_glue import maintenance as ds
        from include.ops.maintenance import daily
        from include.ops.settings import get_settings

        return ds.check_task("mlflow_health", daily.check_mlflow, get_settings())

    @task
    def error_logs() -> dict:
        from include.airflow_glue import maintenance as ds
        from include.ops.maintenance import daily
        from include.ops.settings import get_settings

        hours = float(ds.param("log_window_hours", 24))
        return ds.check_task("error_logs", daily.review_error_logs, get_settings().log_dir, hours)

    @task
    def disk_space() -> dict:
        from include.airflow_glue import maintenance as ds
        from include.ops.maintenance import daily
        from include.ops.settings import get_settings

        settings = get_settings()
        limit = float(ds.param("disk_max_used_pct") or settings.disk_max_used_pct)
        return ds.check_task("disk_space", daily.check_disk_space, daily.data_folders(settings), limit)

    @task
    def backup() -> dict:
        from include.airflow_glue import maintenance as ds
        from include.ops.maintenance import daily
        from include.ops.settings import get_settings

        hours = float(ds.param("backup_max_age_hours", 48))
        return ds.check_task("backup", daily.verify_backups, get_settings(), hours)

    @task(trigger_rule="all_done")
    def report() -> dict:
        from include.airflow_glue import maintenance as ds

        return ds.finish(KIND, CHECKS)

    [app_health(), airflow_health(), mlflow_health(), error_logs(), disk_space(), backup()] >> report()


maintenance_daily()
