"""
### maintenance_weekly

The runbook's **Weekly Tasks**, Sundays at 06:00 UTC: dependency vulnerabilities, cleanup of old checkpoints
and logs, performance trends, and a disaster-recovery drill. `report` writes
`reports/maintenance/maintenance_weekly_<UTC time>.md` + `.json` (and the trend PNG), logs them to MLflow,
pushes job metrics and posts to the `alert_webhook` HTTP connection when the run fails.

**Checks**
- `dependency_audit`: `pip-audit` of the running environment when its vulnerability service (PyPI or OSV)
  answers; otherwise the check is **skipped: service unreachable** (never a pass). Known vulnerabilities fail.
- `cleanup`: keeps the newest `keep_checkpoints` checkpoints, deletes logs older than `log_retention_days`
  (backup module's functions) and frees the GPU cache.
- `performance_trends`: loss and retention of the last `trend_days` from MLflow, inference P95 from
  Prometheus (`PROMETHEUS_URL`), plotted to `..._performance_trends.png`; warns on loss > 2.0, retention < 0.8,
  P95 > 1 s, missing data or missing Prometheus.
- `dr_drill`: the backup module's disaster-recovery drill (restore the newest backup into a scratch area and
  validate it).

**Params**: `keep_checkpoints`, `log_retention_days`, `trend_days`, `vuln_service` (`pypi`/`osv`), `strict`
(skipped / not-available checks fail too), `alert_on_warning`.

**When it fails**
- `dependency_audit`: the report lists each vulnerable package and its fix versions; bump the pin in
  requirements.txt/constraints.txt, `make test`, redeploy.
- `cleanup`: read the error; check permissions of the checkpoint and log folders.
- `performance_trends` warnings: runbook "Training Convergence Issues" (loss, retention) or "Performance
  Degradation" (latency: `python scripts/profile_inference.py`, batching settings).
- `dr_drill`: backups cannot be restored; treat as an incident: verify the newest backup, run the backup DAG,
  read the drill's step log in the report, fix before the next real disaster.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag, task

from include.airflow_glue.params import outcome_params

KIND = "maintenance_weekly"
CHECKS = ["dependency_audit", "cleanup", "performance_trends", "dr_drill"]


@dag(
    dag_id=KIND,
    schedule="0 6 * * 0",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["maintenance", "operations", "weekly"],
    default_args={"owner": "ops", "retries": 1, "retry_delay": timedelta(minutes=5)},
    doc_md=__doc__,
    params={
        "keep_checkpoints": Param(
            10, type="integer", minimum=1, description="Newest checkpoints to keep: an integer >= 1."
        ),
        "log_retention_days": Param(
            30, type="integer", minimum=1, description="Delete logs older than this many days: >= 1."
        ),
        "trend_days": Param(
            7,
            type="number",
            exclusiveMinimum=0,
            maximum=90,
            description="Trend window in days: > 0 and <= 90.",
        ),
        "vuln_service": Param(
            "pypi",
            type="string",
            enum=["pypi", "osv"],
            description="Vulnerability database pip-audit queries: pypi or osv.",
        ),
        **outcome_params(),
    },
)
def maintenance_weekly() -> None:
    @task
    def dependency_audit() -> dict:
        from include.airflow_glue import maintenance as ds
        from include.ops.maintenance import weekly

        service = ds.param("vuln_service", "pypi")
        return ds.check_task("dependency_audit", weekly.audit_dependencies, service)

    @task(trigger_rule="all_done")  # runs even when the check before it failed
    def cleanup() -> dict:
        from include.airflow_glue import maintenance as ds
        from include.ops.maintenance import weekly
        from include.ops.settings import get_settings

        keep, days = int(ds.param("keep_checkpoints", 10)), int(ds.param("log_retention_days", 30))
        return ds.check_task("cleanup", weekly.cleanup, get_settings(), keep, days)

    @task
    def performance_trends() -> dict:
        from pathlib import Path

        from include.airflow_glue import maintenance as ds
        from include.ops.maintenance import weekly
        from include.ops.settings import get_settings

        png = Path(ds.run_artifact("performance_trends.png"))
        days = float(ds.param("trend_days", 7))
        prom = os.environ.get("PROMETHEUS_URL")
        return ds.check_task("performance_trends", weekly.performance_trends, get_settings(), png, days, prom)

    @task(trigger_rule="all_done")  # runs even when the check before it failed
    def dr_drill() -> dict:
        from include.airflow_glue import maintenance as ds
        from include.ops.maintenance import weekly
        from include.ops.settings import get_settings

        return ds.check_task("dr_drill", weekly.dr_drill, get_settings())

    @task(trigger_rule="all_done")
    def report() -> dict:
        from include.airflow_glue import maintenance as ds

        return ds.finish(KIND, CHECKS, artifacts=[ds.run_artifact("performance_trends.png")])

    done = report()
    # cleanup runs after the trends were read and before the drill restores a backup
    performance_trends() >> cleanup() >> dr_drill() >> done
    dependency_audit() >> done


maintenance_weekly()
