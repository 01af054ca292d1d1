"""
### maintenance_monthly

The runbook's **Monthly Tasks**, on the 1st at 07:00 UTC: security audit, capacity planning, performance
optimization review, documentation check. `report` writes `reports/maintenance/maintenance_monthly_<UTC time>.md`
+ `.json`, logs them to MLflow, pushes job metrics and posts to the `alert_webhook` HTTP connection on failure.

**Checks**
- `security_audit`: bandit over dags/, include/, model/, plugins/, scripts/, bench/ (HIGH fails, MEDIUM warns),
  literal secrets in configuration files (fail; values redacted in the report), permissions of the checkpoint
  and backup folders (world-writable fails, group-writable warns).
- `capacity_planning`: growth per day of checkpoints, backups, logs and the MLflow store over 30 days, days
  until the disk is full (fail < 14, warn < 90), free memory of each GPU.
- `performance_review`: throughput per batch size for inference and training and the recommended batch size
  (`include.ops.perf`, as `scripts/optimize_batch_size.py`), and the runbook's "Optimization Checklist" with
  each item's measured value (GPU memory use, CPU balance, I/O wait, network latency to the app, RSS trend from
  Prometheus, `/predict` P95, training samples/s). Unmet items warn.
- `documentation`: every DAG, documented make target and app endpoint appears in README.md's "Runbook map";
  missing ones are listed and fail the check.

**Params**: `app_url` (empty: env `CT_APP_URL`, else http://127.0.0.1:8000), `min_train_samples_per_s` (the
checklist's "X"), `quick_benchmark` (short sweeps), `readme_path` (empty: the project's README.md), `strict`,
`alert_on_warning`.

**When it fails**
- `security_audit`: fix HIGH findings (file:line in the report), move secrets into env vars / Airflow
  connections, `chmod o-w` the listed paths.
- `capacity_planning`: run `maintenance_weekly` cleanup, lower `keep_checkpoints`, move old backups to S3, grow
  the volume before the predicted date.
- `documentation`: add the listed DAGs / targets / endpoints to README.md's runbook map.
- `performance_review` warnings: runbook "Performance Tuning" (batch size from the report, mixed precision
  `POST /api/config/mixed_precision`, batching settings of the app).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag, task

from include.airflow_glue.params import app_url_param, outcome_params

KIND = "maintenance_monthly"
CHECKS = ["security_audit", "capacity_planning", "performance_review", "documentation"]


@dag(
    dag_id=KIND,
    schedule="0 7 1 * *",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["maintenance", "operations", "monthly"],
    default_args={"owner": "ops", "retries": 1, "retry_delay": timedelta(minutes=5)},
    doc_md=__doc__,
    params={
        "app_url": app_url_param(),
        "min_train_samples_per_s": Param(
            1000,
            type="number",
            exclusiveMinimum=0,
            description="Checklist target for training samples/second: > 0.",
        ),
        "quick_benchmark": Param(False, type="boolean", description="Short batch-size sweeps (a smoke run)."),
        "readme_path": Param(
            "", type="string", description="README with the runbook map; empty: the project's."
        ),
        **outcome_params(),
    },
)
def maintenance_monthly() -> None:
    @task
    def security_audit() -> dict:
        from include.airflow_glue import maintenance as ds
        from include.ops.maintenance import monthly
        from include.ops.settings import get_settings

        return ds.check_task("security_audit", monthly.security_audit, get_settings())

    @task(trigger_rule="all_done")  # runs even when the check before it failed
    def capacity_planning() -> dict:
        from include.airflow_glue import maintenance as ds
        from include.ops.maintenance import monthly
        from include.ops.settings import get_settings

        return ds.check_task("capacity_planning", monthly.capacity_planning, get_settings())

    @task(trigger_rule="all_done")  # runs even when the check before it failed
    def performance_review() -> dict:
        from include.airflow_glue import maintenance as ds
        from include.ops.maintenance import monthly
        from include.ops.settings import get_settings

        return ds.check_task(
            "performance_review",
            monthly.performance_review,
            get_settings(),
            ds.app_url(),
            float(ds.param("min_train_samples_per_s", 1000)),
            os.environ.get("PROMETHEUS_URL"),
            bool(ds.param("quick_benchmark", False)),
        )

    @task(trigger_rule="all_done")  # runs even when the check before it failed
    def documentation() -> dict:
        from pathlib import Path

        from include.airflow_glue import maintenance as ds
        from include.ops.maintenance import monthly
        from include.ops.settings import PROJECT_ROOT

        readme = Path(ds.param("readme_path") or PROJECT_ROOT / "README.md")
        dags, targets = monthly.dag_ids(PROJECT_ROOT / "dags"), monthly.make_targets(PROJECT_ROOT)
        return ds.check_task(
            "documentation", monthly.documentation_check, readme, dags, targets, monthly.app_endpoints()
        )

    @task(trigger_rule="all_done")
    def report() -> dict:
        from include.airflow_glue import maintenance as ds

        return ds.finish(KIND, CHECKS)

    # the sweep and the latency probe run alone so the audit's CPU load does not skew them
    security_audit() >> capacity_planning() >> performance_review() >> documentation() >> report()


maintenance_monthly()
