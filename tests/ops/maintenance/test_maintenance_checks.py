"""Maintenance checks as plain functions, on real files: logs, disks, secrets, permissions, docs, reports."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from include.ops.maintenance import capacity, daily, docs_audit, report, security, weekly
from include.ops.maintenance.report import FAIL, NOT_AVAILABLE, PASS, SKIPPED, WARN, CheckResult
from include.ops.settings import get_settings
from tests.paths import ROOT


def jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def rec(message: str, level: str = "INFO", logger: str = "include.serving", age_h: float = 0.0) -> dict:
    ts = (datetime.now(UTC) - timedelta(hours=age_h)).isoformat()
    return {"ts": ts, "level": level, "logger": logger, "component": "app", "message": message}


def test_log_review_counts_samples_and_honours_the_window(tmp_path: Path):
    logs = tmp_path / "logs"
    jsonl(logs / "training.log", [
        rec("loss diverged: nan at task 'task_2' epoch 0 step 0", "ERROR", "model.training"),
        rec("loss diverged: nan at task 'task_1'", "ERROR", "model.training", age_h=48),  # outside the window
        rec("learned task task_0", "INFO", "model.training"),
        rec("run settings: {'pin_memory': False, 'loom': 1}", "INFO", "model.training"),  # words only
    ])  # fmt: skip
    jsonl(logs / "app.log", [rec("slow inference: 812.0 ms for 1 image(s)", "WARNING") for _ in range(7)])
    (logs / "worker.log").write_text("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB\n")
    result = daily.review_error_logs(logs, window_hours=24, samples=3)
    patterns = result.details["patterns"]
    assert result.status == FAIL
    assert patterns["loss_diverged"]["count"] == 1 and patterns["training_errors"]["count"] == 1
    assert patterns["slow_inference"]["count"] == 7 and len(patterns["slow_inference"]["samples"]) == 3
    assert patterns["cuda_oom"]["count"] == 1 and patterns["cuda_oom"]["files"] == ["worker.log"]
    assert patterns["memory_leak_oom"]["count"] == 1  # the OOM line, case-insensitively
    assert "loss_diverged=1" in result.summary


def test_log_review_warns_on_warn_patterns_and_passes_clean_logs(tmp_path: Path):
    jsonl(tmp_path / "app.log", [rec("slow inference: 300 ms")])
    assert daily.review_error_logs(tmp_path).status == WARN
    jsonl(tmp_path / "app.log", [rec("serving checkpoint model version=3")])
    clean = daily.review_error_logs(tmp_path)
    assert clean.status == PASS and clean.details["lines"] == 1
    assert daily.review_error_logs(tmp_path / "missing").status == FAIL
    with pytest.raises(ValueError, match="window_hours"):
        daily.review_error_logs(tmp_path, window_hours=0)


def test_disk_threshold(tmp_path: Path):
    assert daily.check_disk_space([tmp_path], max_used_pct=100).status in (PASS, WARN)
    failed = daily.check_disk_space([tmp_path, tmp_path / "not-yet-created"], max_used_pct=0.001)
    assert failed.status == FAIL and "> threshold 0.001%" in failed.summary
    assert len(failed.details["filesystems"]) == 1  # same filesystem counted once
    with pytest.raises(ValueError, match="max_used_pct"):
        daily.check_disk_space([tmp_path], max_used_pct=0)


def test_airflow_check_needs_an_answer():
    assert daily.check_airflow(None, {"failed_runs": {"continual_training": 2}}).status == PASS
    assert daily.check_airflow(None, {"error": "ConnectionError: refused"}).status == FAIL
    assert daily.check_airflow("http://127.0.0.1:9", {"failed_runs": {}}).status == FAIL


def test_dependency_audit_is_skipped_when_the_service_is_unreachable():
    from include.serving.server import free_port

    result = weekly.audit_dependencies(probe_url=f"http://127.0.0.1:{free_port()}/pypi")
    assert result.status == SKIPPED and result.summary.startswith("skipped: service unreachable")
    with pytest.raises(ValueError, match="service"):
        weekly.audit_dependencies(service="nvd")


def test_secret_scan_finds_literals_not_references(tmp_path: Path):
    (tmp_path / "app.yml").write_text(
        "db:\n  password: s3cr3t-value\n  password_file: /run/secrets/db\n  token: ${CT_API_TOKEN}\n"
        "  url: postgresql://ct:hunter22@db:5432/ct\n  url2: postgresql://ct:${PW}@db/ct\n"
        "# password: in-a-comment\n  secretName: ct-airflow\n"
    )
    (tmp_path / ".env").write_text("CT_API_TOKEN=change-me-api-token\nAWS_KEY=AKIAIOSFODNN7EXAMPLE\n")
    (tmp_path / "key.json").write_text('{"k": "-----BEGIN RSA PRIVATE KEY-----"}\n')
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "x.yml").write_text("password: ignored-in-venv\n")
    found = {(f["file"], f["line"], f["kind"]) for f in security.scan_config_secrets(tmp_path)}
    assert found == {
        ("app.yml", 2, "assigned_secret"),
        ("app.yml", 5, "url_credentials"),
        (".env", 2, "aws_access_key"),
        ("key.json", 1, "private_key"),
    }
    assert all(f["value"].endswith("***") for f in security.scan_config_secrets(tmp_path))
    assert "hunter22" not in json.dumps(security.scan_config_secrets(tmp_path))


def test_permissions_flag_world_and_group_writable(tmp_path: Path):
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    (ckpt / "a.pt").write_bytes(b"x")
    (ckpt / "b.pt").write_bytes(b"y")
    os.chmod(ckpt / "a.pt", 0o666)  # noqa: S103 (the finding under test)
    os.chmod(ckpt / "b.pt", 0o660)
    perms = security.check_permissions([ckpt, tmp_path / "backups"])
    assert [Path(p.split(" ")[0]).name for p in perms["world_writable"]] == ["a.pt"]
    assert [Path(p.split(" ")[0]).name for p in perms["group_writable"]] == ["b.pt"]
    assert perms["folders"][str(tmp_path / "backups")] == "missing"


def test_growth_and_days_until_full(tmp_path: Path):
    now = time.time()
    for i, age_days in enumerate((40, 10, 1)):
        path = tmp_path / f"f{i}"
        path.write_bytes(b"x" * 1000)
        os.utime(path, (now - age_days * 86400, now - age_days * 86400))
    g = capacity.growth(tmp_path, window_days=30, now=now)
    assert g["bytes"] == 3000 and g["files"] == 3
    assert g["bytes_per_day"] == pytest.approx(2000 / 30)


def test_documentation_check_lists_what_is_missing(tmp_path: Path):
    readme = tmp_path / "README.md"
    readme.write_text(
        "# X\n\n## Runbook map\n\n| Health | `make health`, `GET /health/all` |\n| Daily | maintenance_daily |\n"
        "\n## Elsewhere\n\nmaintenance_weekly `/health` make serve\n"
    )
    result = docs_audit.documentation_check(
        readme,
        ["maintenance_daily", "maintenance_weekly"],
        ["health", "serve"],
        ["GET /health/all", "GET /health"],
    )
    assert result.status == FAIL
    assert result.details["missing"] == {
        "dags": ["maintenance_weekly"], "make_targets": ["serve"], "endpoints": ["GET /health"]
    }  # fmt: skip
    readme.write_text("# X\n")
    assert "no 'Runbook map' section" in docs_audit.documentation_check(readme, [], [], []).summary


def test_dag_ids_and_make_targets_are_discovered():
    root = ROOT
    assert {"maintenance_daily", "maintenance_weekly", "maintenance_monthly"} <= set(
        docs_audit.dag_ids(root / "dags")
    )
    assert {"serve", "health", "promtool-test", "test"} <= set(docs_audit.make_targets(root))


def test_the_endpoint_audit_reads_the_route_table_not_the_app():
    import subprocess
    import sys

    code = (
        "import sys; from include.ops.maintenance import monthly; e = monthly.app_endpoints(); "
        "print(len(e), 'POST /predict' in e, 'PUT /api/config/model' in e, "
        "any(m.startswith('include.serving') for m in sys.modules))"
    )
    root = ROOT
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    count, predict, put, serving_loaded = out.stdout.split()
    assert int(count) >= 17 and predict == put == "True"
    assert serving_loaded == "False"  # ops never imports the serving app


def test_report_status_rules_and_files(tmp_path: Path):
    checks = [CheckResult("a", PASS, "ok"), CheckResult("b", SKIPPED, "skipped: service unreachable")]
    assert report.overall_status(checks) == WARN
    assert report.overall_status(checks, strict=True) == FAIL
    assert report.overall_status([CheckResult("a", PASS, "ok")]) == PASS
    assert report.overall_status([*checks, CheckResult("c", FAIL, "bad")]) == FAIL
    with pytest.raises(ValueError, match="status"):
        CheckResult("x", "great", "?")
    crashed = report.run_check("boom", lambda: 1 / 0)
    assert crashed.status == FAIL and "ZeroDivisionError" in crashed.summary
    rep = report.MaintenanceReport("maintenance_daily", "manual__1", time.time(), [*checks, crashed])
    md, js = report.write_report(rep, tmp_path)
    data = json.loads(js.read_text())
    assert data["status"] == FAIL and data["counts"] == {
        PASS: 1,
        WARN: 0,
        FAIL: 1,
        SKIPPED: 1,
        NOT_AVAILABLE: 0,
    }
    assert "| boom | ❌ fail |" in md.read_text()
    payload = report.alert_payload(rep, md)
    assert payload["text"].startswith("maintenance_daily FAIL") and "boom" in payload["text"]


def test_performance_trends_judge_retention_by_the_settings_threshold(
    ct_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    from tests.plugins.mlflow_seed import seed_store

    monkeypatch.delenv("PROMETHEUS_URL", raising=False)
    settings = get_settings()
    settings.var_dir.joinpath("mlflow").mkdir(parents=True, exist_ok=True)
    seed_store(settings.mlflow_tracking_uri, settings.mlflow_experiment, settings.registered_model)
    default = weekly.performance_trends(settings, tmp_path / "default.png")
    assert default.details["summary"]["runs"] == 3
    last = default.details["summary"]["mean_retention_last"]
    assert last is not None and "latest mean retention" not in default.summary
    monkeypatch.setenv("CT_RETENTION_THRESHOLD", "0.9")
    strict = weekly.performance_trends(get_settings(), tmp_path / "strict.png")
    assert strict.status == WARN and f"latest mean retention {last:.3f} < 0.9" in strict.summary
    assert (tmp_path / "strict.png").read_bytes()[:4] == b"\x89PNG"
