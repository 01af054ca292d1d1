"""scripts/smoke_test.py against the local stack (app, Airflow api-server, MLflow, Prometheus, Pushgateway)
and against nothing: every check must pass on the live stack and fail, with a non-zero exit, when it is down."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.integration.deploy.compose_local import ROOT, free_port
from tests.integration.deploy.deploy_support import CeleryRun, Stack, http_json

SCRIPT = ROOT / "scripts" / "smoke_test.py"


def _smoke(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CT_SMOKE_", "AIRFLOW_ADMIN_"))}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def _stack_args(stack: Stack) -> list[str]:
    return [
        "--app-url",
        stack.app_url,
        "--airflow-url",
        stack.airflow_url,
        "--mlflow-url",
        stack.mlflow_url,
        "--prometheus-url",
        stack.url("prometheus", 9090),
        "--pushgateway-url",
        stack.url("pushgateway", 9091),
    ]


@pytest.mark.integration
def test_smoke_passes_against_the_running_stack(local_stack: Stack, celery_run: CeleryRun) -> None:
    assert celery_run.state == "success"
    # runbook "Model Configuration Updates": pick up the model the DAG run just registered
    reloaded = http_json(
        "POST", f"{local_stack.app_url}/api/model/reload", token=local_stack.env["CT_API_TOKEN"]
    )
    assert reloaded["status"] == "reloaded"
    env = {"AIRFLOW_ADMIN_USER": local_stack.env["AIRFLOW_ADMIN_USER"]}
    env["AIRFLOW_ADMIN_PASSWORD"] = local_stack.env["AIRFLOW_ADMIN_PASSWORD"]
    proc = _smoke(*_stack_args(local_stack), "--json", env=env)
    report = json.loads(proc.stdout)
    failed = {c["name"]: c["detail"] for c in report["checks"] if not c["ok"]}
    assert proc.returncode == 0 and report["ok"], failed
    names = {c["name"] for c in report["checks"]}
    assert {"app /health", "app /metrics", "app /predict", "airflow /api/v2/dags", "mlflow /health"} <= names
    detail = {c["name"]: c["detail"] for c in report["checks"]}
    assert "continual_training" in detail["airflow /api/v2/dags"]
    assert detail["app /predict"].startswith("class 0"), detail["app /predict"]  # the digit is a zero
    assert "continual-tiny-transformer" in detail["mlflow experiments/search"]
    assert local_stack.env["AIRFLOW_ADMIN_PASSWORD"] not in proc.stdout + proc.stderr


@pytest.mark.integration
def test_smoke_names_what_failed(local_stack: Stack) -> None:
    proc = _smoke(
        *_stack_args(local_stack),
        "--expect-dag",
        "no_such_dag",
        "--airflow-password",
        "wrong-password",
        "--skip",
        "app",
    )
    assert proc.returncode == 1
    assert "PASS  airflow /api/v2/monitor/health" in proc.stdout
    assert "FAIL  airflow POST /auth/token" in proc.stdout and "HTTP 401" in proc.stdout
    assert "PASS  mlflow /health" in proc.stdout
    assert "FAILED: airflow POST /auth/token, airflow /api/v2/dags" in proc.stdout


def test_smoke_reads_airflow_credentials_from_the_env_file(tmp_path) -> None:
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("ct_smoke_script", SCRIPT)
    module = module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    env = tmp_path / ".env"
    env.write_text(
        "# comment\nAIRFLOW_ADMIN_USER=ops\nAIRFLOW_ADMIN_PASSWORD='s3cret-value'\nLOG_LEVEL=INFO\n"
    )
    assert module.read_env_file(env) == {
        "AIRFLOW_ADMIN_USER": "ops",
        "AIRFLOW_ADMIN_PASSWORD": "s3cret-value",
        "LOG_LEVEL": "INFO",
    }
    assert module.read_env_file(tmp_path / "missing.env") == {}


def test_smoke_exits_non_zero_when_nothing_is_up() -> None:
    dead = [f"http://127.0.0.1:{free_port()}" for _ in range(3)]
    proc = _smoke(
        "--app-url", dead[0], "--airflow-url", dead[1], "--mlflow-url", dead[2], "--airflow-password", "x"
    )
    assert proc.returncode == 1, proc.stdout
    rows = [ln for ln in proc.stdout.splitlines() if ln.startswith(("PASS", "FAIL"))]
    assert len(rows) == 9 and all(r.startswith("FAIL") for r in rows), proc.stdout
    assert sum("unreachable" in r for r in rows) >= 7
    assert "smoke tests: 0/9 passed" in proc.stdout
