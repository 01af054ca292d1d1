"""``maintenance_daily`` as the README runs it, on a fresh install: no serving app, no backup yet.

Not deployed is not broken: both checks report ``skipped`` and a non-strict run succeeds (that ``strict``
fails on a skipped check is tested on the library functions in tests/ops/maintenance/test_daily_checks.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.dag_helpers import load_dag, state_name


@pytest.fixture
def fresh(ct_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A var/ with an MLflow store and a clean log, nothing served, nothing backed up."""
    from mlflow import MlflowClient

    from include.serving.server import free_port

    MlflowClient(tracking_uri=f"sqlite:///{ct_env / 'mlflow' / 'mlflow.db'}").create_experiment("ct")
    (ct_env / "logs").mkdir()
    (ct_env / "logs" / "training.log").write_text('{"level": "INFO", "message": "learned task task_0"}\n')
    monkeypatch.setenv("CT_APP_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("CT_DISK_MAX_USED_PCT", "99.99")
    for name in ("PUSHGATEWAY_URL", "CT_AIRFLOW_URL", "AIRFLOW_CONN_ALERT_WEBHOOK"):
        monkeypatch.delenv(name, raising=False)
    return ct_env


def _report(var: Path) -> dict:
    reports = sorted((var / "reports" / "maintenance").glob("maintenance_daily_*.json"))
    return json.loads(reports[-1].read_text())


def test_daily_on_a_fresh_install_skips_what_is_not_deployed(fresh: Path):
    dag = load_dag("maintenance_daily")
    assert state_name(dag.test(run_conf={"strict": False}).state) == "success"
    checks = {c["name"]: c for c in _report(fresh)["checks"]}
    assert checks["app_health"]["status"] == "skipped"
    assert checks["app_health"]["summary"].startswith("skipped: not running")
    assert checks["backup"]["status"] == "skipped"
    assert checks["backup"]["summary"].startswith("skipped: no backup yet")
    assert _report(fresh)["status"] == "warn"  # strict: true fails on skipped checks (report.overall_status)
