"""Configuration capture never holds a secret value; restore never overwrites a live secret and names missing ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from include.ops.backup.config import capture_config, is_secret, parse_env_file, restore_config


@pytest.mark.parametrize(
    ("name", "value", "secret"),
    [
        ("AIRFLOW_CONN_S3_BACKUP", '{"conn_type": "aws"}', True),
        ("CT_API_TOKEN", "x", True),
        ("AWS_SECRET_ACCESS_KEY", "x", True),
        ("DB_PASSWORD", "x", True),
        ("MLFLOW_TRACKING_URI", "postgresql://mlflow:hunter2@db:5432/mlflow", True),
        ("MLFLOW_TRACKING_URI", "sqlite:////var/mlflow.db", False),
        ("CT_STATE_DIR", "/var/state", False),
        ("LOG_LEVEL", "INFO", False),
    ],
)
def test_secret_rule(name: str, value: str, secret: bool):
    assert is_secret(name, value) is secret


def test_capture_holds_names_but_no_secret_value(ct_env: Path, monkeypatch: pytest.MonkeyPatch):
    from include.ops.settings import get_settings

    env_file = ct_env / "app.env"
    env_file.write_text(
        "export LOG_LEVEL=DEBUG\nWEBHOOK_TOKEN='tok-file-secret-123'\n# comment\nENVIRONMENT=prod\n"
    )
    monkeypatch.setenv("CT_ENV_FILE", str(env_file))
    monkeypatch.setenv("CT_API_TOKEN", "tok-env-secret-456")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://mlflow:pw-secret-789@db/mlflow")
    captured = capture_config(get_settings())
    text = json.dumps(captured)
    for secret in ("tok-file-secret-123", "tok-env-secret-456", "pw-secret-789"):
        assert secret not in text
    assert "CT_API_TOKEN" in captured["environment"]["secrets"]
    assert "MLFLOW_TRACKING_URI" in captured["environment"]["secrets"]
    assert captured["env_file"]["values"] == {"ENVIRONMENT": "prod", "LOG_LEVEL": "DEBUG"}
    assert captured["env_file"]["secrets"] == ["WEBHOOK_TOKEN"]


def test_restore_keeps_live_secrets_and_reports_missing_ones(tmp_path: Path):
    captured = {
        "env_file": {
            "values": {"LOG_LEVEL": "DEBUG", "ENVIRONMENT": "prod"},
            "secrets": ["WEBHOOK_TOKEN", "DB_PASSWORD"],
        },
        "environment": {"values": {}, "secrets": ["AIRFLOW_CONN_S3_BACKUP", "CT_API_TOKEN"]},
    }
    target = tmp_path / ".env"
    target.write_text("LOG_LEVEL=INFO\nWEBHOOK_TOKEN=live-token\nEXTRA=1\n")
    live_env = {"CT_API_TOKEN": "from-env"}

    dry = restore_config(captured, target, dry_run=True, environ=live_env)
    assert not dry.written and target.read_text().startswith("LOG_LEVEL=INFO")

    report = restore_config(captured, target, environ=live_env)
    values = parse_env_file(target.read_text(), str(target))
    assert values["WEBHOOK_TOKEN"] == "live-token"  # live secret untouched
    assert values["LOG_LEVEL"] == "DEBUG" and values["ENVIRONMENT"] == "prod"  # restored from backup
    assert values["EXTRA"] == "1"  # live-only key kept
    assert "CT_API_TOKEN" not in values  # provided by the live environment, not copied into the file
    assert sorted(report.missing_secrets) == ["AIRFLOW_CONN_S3_BACKUP", "DB_PASSWORD"]
    assert "DB_PASSWORD=<secret not in backup" in target.read_text()
    assert set(report.kept_secrets) == {"WEBHOOK_TOKEN", "CT_API_TOKEN"}
    assert target.stat().st_mode & 0o777 == 0o600
