"""Configuration capture holds only allowlisted values (derived from Settings); restore never overwrites the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import Field, SecretStr
from pydantic.fields import FieldInfo

from include.ops.backup.config import (
    capture_config,
    field_is_secret,
    is_public,
    parse_env_file,
    public_env_names,
    restore_config,
)
from include.ops.settings import SECRET_FIELD, ServingSettings


@pytest.mark.parametrize(
    ("name", "value", "public"),
    [
        ("CT_STATE_DIR", "/var/state", True),
        ("CT_SERVING_MAX_BATCH_SIZE", "32", True),
        ("MLFLOW_TRACKING_URI", "sqlite:////var/mlflow.db", True),
        ("MLFLOW_TRACKING_URI", "postgresql://mlflow:hunter2@db:5432/mlflow", False),  # URL credentials
        ("CT_APP_URL", "https://app.example/health?token=abc", False),  # a query may carry a token
        ("CT_API_TOKEN", "x", False),  # SecretStr field of ServingSettings
        # names the old denylist let through: not Settings fields, so not on the allowlist
        ("CT_SMTP_PASS", "x", False),
        ("S3_CREDS", "x", False),
        ("CT_DB_PASS", "x", False),
        ("CT_ALERT_URL", "https://hooks.example.com/services/T0/B0/tok", False),
        ("AIRFLOW_CONN_S3_BACKUP", '{"conn_type": "aws"}', False),
        ("LOG_LEVEL", "INFO", False),
    ],
)
def test_allowlist_rule(name: str, value: str, public: bool):
    assert is_public(name, value) is public


def test_allowlist_is_derived_from_the_settings_fields():
    names = public_env_names()
    assert {"CT_VAR_DIR", "CT_BACKUP_DIR", "CT_SERVING_PORT", "MLFLOW_TRACKING_URI"} <= names
    assert "CT_API_TOKEN" not in names
    assert all(n.startswith(("CT_", "MLFLOW_")) for n in names)
    # what makes a field secret: SecretStr, the SECRET_FIELD mark, a webhook name (token in the URL path)
    assert field_is_secret("api_token", ServingSettings.model_fields["api_token"])
    assert field_is_secret("smtp_password", Field(None, json_schema_extra=SECRET_FIELD))
    assert field_is_secret("db", Field(None)) is False
    assert field_is_secret("anything", FieldInfo.from_annotation(SecretStr | None))
    assert field_is_secret("alert_webhook_url", Field("https://hooks.example.com/x"))


def test_capture_holds_allowlisted_values_and_names_the_rest(ct_env: Path, monkeypatch: pytest.MonkeyPatch):
    from include.ops.settings import get_settings

    env_file = ct_env / "app.env"
    env_file.write_text(
        "export LOG_LEVEL=DEBUG\nWEBHOOK_TOKEN='tok-file-secret-123'\n# comment\nCT_MLFLOW_EXPERIMENT=prod-exp\n"
        "CT_SMTP_PASS=smtp-secret-321\n"
    )
    monkeypatch.setenv("CT_ENV_FILE", str(env_file))
    monkeypatch.setenv("CT_API_TOKEN", "tok-env-secret-456")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://mlflow:pw-secret-789@db/mlflow")
    monkeypatch.setenv("S3_CREDS", "s3-secret-654")
    captured = capture_config(get_settings())
    text = json.dumps(captured)
    for secret in (
        "tok-file-secret-123",
        "tok-env-secret-456",
        "pw-secret-789",
        "smtp-secret-321",
        "s3-secret-654",
    ):
        assert secret not in text
    assert {"CT_API_TOKEN", "MLFLOW_TRACKING_URI", "S3_CREDS"} <= set(captured["environment"]["left_out"])
    assert captured["env_file"]["values"] == {"CT_MLFLOW_EXPERIMENT": "prod-exp"}
    assert captured["env_file"]["left_out"] == ["CT_SMTP_PASS", "LOG_LEVEL", "WEBHOOK_TOKEN"]
    assert "mlflow_tracking_uri" in captured["settings_left_out"]
    assert "serving.api_token" in captured["settings_left_out"]
    assert "api_token" not in captured["settings"]["serving"]
    assert captured["settings"]["var_dir"] == str(ct_env)


def test_restore_keeps_live_values_and_reports_missing_ones(tmp_path: Path):
    captured = {
        "env_file": {
            "values": {"CT_MLFLOW_EXPERIMENT": "prod-exp", "CT_LOG_DIR": "/var/logs"},
            "left_out": ["WEBHOOK_TOKEN", "DB_PASSWORD"],
        },
        "environment": {"values": {}, "left_out": ["AIRFLOW_CONN_S3_BACKUP", "CT_API_TOKEN"]},
    }
    target = tmp_path / ".env"
    target.write_text("CT_MLFLOW_EXPERIMENT=old\nWEBHOOK_TOKEN=live-token\nEXTRA=1\n")
    live_env = {"CT_API_TOKEN": "from-env"}

    dry = restore_config(captured, target, dry_run=True, environ=live_env)
    assert not dry.written and target.read_text().startswith("CT_MLFLOW_EXPERIMENT=old")

    report = restore_config(captured, target, environ=live_env)
    values = parse_env_file(target.read_text(), str(target))
    assert values["WEBHOOK_TOKEN"] == "live-token"  # live value untouched
    assert values["CT_MLFLOW_EXPERIMENT"] == "prod-exp" and values["CT_LOG_DIR"] == "/var/logs"  # restored
    assert values["EXTRA"] == "1"  # live-only key kept
    assert "CT_API_TOKEN" not in values  # provided by the live environment, not copied into the file
    assert sorted(report.missing_secrets) == ["AIRFLOW_CONN_S3_BACKUP", "DB_PASSWORD"]
    assert "DB_PASSWORD=<not in backup" in target.read_text()
    assert set(report.kept_secrets) == {"WEBHOOK_TOKEN", "CT_API_TOKEN"}
    assert target.stat().st_mode & 0o777 == 0o600


def test_restore_reads_backups_made_with_the_old_secrets_key(tmp_path: Path):
    captured = {
        "env_file": {"values": {"CT_LOG_DIR": "/l"}, "secrets": ["DB_PASSWORD"]},
        "environment": {"values": {}, "secrets": []},
    }
    report = restore_config(captured, tmp_path / ".env", environ={})
    assert report.restored == ["CT_LOG_DIR"] and report.missing_secrets == ["DB_PASSWORD"]
