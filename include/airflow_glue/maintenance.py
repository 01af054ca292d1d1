"""Maintenance DAG support: run a check as a task, then write, publish and judge the run.

The Airflow side of the maintenance DAGs; the checks themselves live in the Airflow-free
``include.ops.maintenance``. Airflow is imported only inside functions (tasks call them at run time).
A check task pushes its result under XCom key ``check_result`` and fails when the check fails, so the
graph shows which check broke; the final ``report`` task (trigger rule ``all_done``) collects every
result, writes the reports, logs them to MLflow, pushes job metrics, alerts, and fails the run if needed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from include.ops.maintenance.report import (
    FAIL,
    NOT_AVAILABLE,
    SKIPPED,
    WARN,
    CheckResult,
    MaintenanceReport,
    alert_payload,
    log_to_mlflow,
    run_check,
    write_report,
)
from include.ops.settings import get_settings

log = logging.getLogger(__name__)

RESULT_KEY = "check_result"
ALERT_CONN_ID = "alert_webhook"


def param(name: str, default: Any = None) -> Any:
    """A DAG-run param of the current task (``default`` when unset or null)."""
    from airflow.sdk import get_current_context

    value = get_current_context()["params"].get(name)
    return default if value is None else value


def app_url() -> str:
    """The serving app's base URL: param ``app_url``, else ``Settings.app_url`` (``CT_APP_URL``)."""
    return param("app_url") or get_settings().app_url


def run_artifact(name: str) -> str:
    """Path for a file a check of this DAG run produces (``reports_dir/maintenance/<dag>_<run>_<name>``)."""
    import re

    from airflow.sdk import get_current_context

    ctx = get_current_context()
    run = re.sub(r"[^A-Za-z0-9_.-]+", "_", ctx["dag_run"].run_id)
    return str(get_settings().reports_dir / "maintenance" / f"{ctx['dag'].dag_id}_{run}_{name}")


def check_task(name: str, fn: Callable[..., CheckResult], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run a check inside a task: push its result, raise AirflowFailException when it fails (or is strict)."""
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException

    result = run_check(name, fn, *args, **kwargs)
    get_current_context()["ti"].xcom_push(key=RESULT_KEY, value=result.to_dict())
    strict = bool(param("strict", False))
    if result.status == FAIL or (strict and result.status in (SKIPPED, NOT_AVAILABLE)):
        raise AirflowFailException(f"check {name} {result.status}: {result.summary}")
    if result.status != "pass":
        log.warning("check %s %s: %s", name, result.status, result.summary)
    return {"name": name, "status": result.status, "summary": result.summary}


def execution_api_probe(dag_ids: list[str]) -> dict[str, Any]:
    """Failed-run counts of ``dag_ids`` read through the Airflow execution API (proves Airflow answers)."""
    from airflow.sdk import get_current_context

    ti = get_current_context()["ti"]
    try:
        return {"failed_runs": {d: ti.get_dr_count(dag_id=d, states=["failed"]) for d in dag_ids}}
    except Exception as exc:  # the API server or its database did not answer
        return {"error": f"{type(exc).__name__}: {exc}"}


def send_alert(payload: dict[str, Any]) -> str:
    """POST ``payload`` through the HTTP connection ``alert_webhook``; returns what happened (never raises)."""
    from airflow.providers.http.hooks.http import HttpHook
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(ALERT_CONN_ID)
    except Exception:  # AirflowNotFoundException: no such connection configured
        log.warning("alert not sent: connection %r is not configured", ALERT_CONN_ID)
        return "not configured"
    try:
        HttpHook(method="POST", http_conn_id=ALERT_CONN_ID).run(
            endpoint=conn.extra_dejson.get("endpoint", ""), json=payload, extra_options={"timeout": 10}
        )
    except Exception as exc:
        log.warning("alert via %r failed: %s", ALERT_CONN_ID, type(exc).__name__)
        return f"failed: {type(exc).__name__}"
    return "sent"


def finish(kind: str, check_names: list[str], artifacts: list[str] | None = None) -> dict[str, Any]:
    """Collect the checks, write Markdown + JSON reports, log to MLflow, push job metrics, alert, judge."""
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException

    from include.ops.metrics import push_job_metrics

    ctx = get_current_context()
    ti, dag_run = ctx["ti"], ctx["dag_run"]
    checks = []
    for name in check_names:
        data = ti.xcom_pull(task_ids=name, key=RESULT_KEY)
        if data:
            checks.append(CheckResult.from_dict(data))
        else:
            checks.append(
                CheckResult(name, FAIL, "no result: the task crashed, timed out or was skipped (see its log)")
            )
    started = dag_run.start_date.timestamp() if getattr(dag_run, "start_date", None) else time.time()
    report = MaintenanceReport(kind, dag_run.run_id, started, checks, strict=bool(param("strict", False)),
                               artifacts=list(artifacts or []))  # fmt: skip
    paths = get_settings()
    md, js = write_report(report, paths.reports_dir)
    try:
        extra = [Path(a) for a in report.artifacts if Path(a).is_file()]
        mlflow_run = log_to_mlflow(report, paths, [md, js, *extra])
    except Exception as exc:  # the report files exist; MLflow is a copy
        log.warning("maintenance report not logged to MLflow: %s", exc)
        mlflow_run = None
    status = report.status
    push_job_metrics(kind, report.finished_at - report.started_at, success=status != FAIL)
    alerted = "not needed"
    if status == FAIL or (status == WARN and param("alert_on_warning", False)):
        alerted = send_alert(alert_payload(report, md))
    outcome = {"status": status, "report_md": str(md), "report_json": str(js), "mlflow_run_id": mlflow_run,
               "alert": alerted, "checks": {c.name: c.status for c in checks}}  # fmt: skip
    log.info("%s finished %s: %s", kind, status, outcome)
    if status == FAIL:
        bad = "; ".join(f"{c.name}: {c.summary}" for c in report.failed)
        raise AirflowFailException(f"{kind} failed ({md}): {bad}")
    return outcome
