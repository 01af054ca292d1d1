"""include/ops/config_check/: every problem found with where it is and how to fix it, non-zero exit on any
problem; generated env files, timestamped backups, and apply-after-validate."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from include.ops import config_check as cc
from tests.integration.deploy.compose_local import ENV_EXAMPLE, ROOT
from tests.integration.deploy.deploy_support import require_binaries, write_env_file


def _edit(path: Path, **values: str | None) -> None:
    """Set (or, with None, remove) variables of an env file in place."""
    lines = []
    for line in path.read_text().splitlines():
        key = line.partition("=")[0]
        if key in values:
            if values[key] is None:
                continue
            line = f"{key}={values[key]}"
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")


def test_generated_env_file_is_valid(env_file: Path) -> None:
    assert cc.check_env_file(env_file) == []


def test_example_placeholders_are_reported_with_line_and_fix() -> None:
    problems = cc.check_env_file(ENV_EXAMPLE)
    flagged = {re.match(r"(\w+)", p.message).group(1) for p in problems}
    assert flagged == {k for k, v in cc.parse_env_file(ENV_EXAMPLE)[0].items() if "change-me" in v}
    for p in problems:
        assert re.search(r"\.env\.example:\d+$", p.where), p.where
        assert "make deploy-env" in p.fix


def test_bad_values_are_reported_one_by_one(env_file: Path) -> None:
    _edit(
        env_file,
        LOG_LEVEL="verbose",
        AIRFLOW_API_WORKERS="two",
        AIRFLOW_WORKER_CONCURRENCY="0",
        CT_TRAINING_BACKEND="kubernetes",
        PUSHGATEWAY_URL="pushgateway:9091",
        AIRFLOW_FERNET_KEY="not-a-fernet-key-at-all",
        POSTGRES_PASSWORD="has@and/in-it-1234567",
        REDIS_PASSWORD="short",
        MLFLOW_BUCKET="Bad_Bucket",
        CT_BIND_ADDRESS="localhost",
        AIRFLOW_ADMIN_USER=None,
    )
    with env_file.open("a") as f:
        f.write("this line has no equals sign\nENVIRONMENT=production\n")
    problems = cc.check_env_file(env_file)
    text = "\n".join(map(str, problems))
    for expected in (
        "LOG_LEVEL must be one of",
        "AIRFLOW_API_WORKERS must be an integer",
        "AIRFLOW_WORKER_CONCURRENCY must lie in [1, 256]",
        "CT_TRAINING_BACKEND must be one of",
        "PUSHGATEWAY_URL scheme must be one of",
        "AIRFLOW_FERNET_KEY is not a Fernet key",
        "POSTGRES_PASSWORD contains characters that break the URLs",
        "REDIS_PASSWORD is too short",
        "MLFLOW_BUCKET is not a valid S3 bucket name",
        "CT_BIND_ADDRESS must be an IP address",
        "AIRFLOW_ADMIN_USER is not set",
        "not a KEY=value line",
        "ENVIRONMENT is set again",
    ):
        assert expected in text, expected
    assert all(p.fix for p in problems)
    assert "has@and" not in text, "a secret value was printed"


def test_process_env_uris_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    good = {
        "MLFLOW_TRACKING_URI": "http://mlflow:5000",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://u:p@db:5432/airflow",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+postgresql+psycopg2://u:p@db/airflow",
        "AIRFLOW__CELERY__BROKER_URL": "redis://:p@redis:6379/0",
        "CT_TRAIN_OVERRIDES": '{"epochs": 3, "lr": 0.001}',
    }
    assert cc.check_process_env(good) == []
    bad = {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://u:sekret@db/airflow",
        "AIRFLOW__CELERY__RESULT_BACKEND": "postgresql://u:sekret@db/airflow",
        "CT_TRAIN_OVERRIDES": '{"epochs": 0}',
        "CT_TRAINING_BACKEND": "k8s",
        "PUSHGATEWAY_URL": "http://pg:notaport",
        "MLFLOW_TRACKING_URI": "ftp://x",
    }
    problems = {p.where.split()[-1]: p for p in cc.check_process_env(bad)}
    assert set(problems) == set(bad)
    assert "psycopg2" in problems["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].fix
    assert "epochs must be >= 1" in problems["CT_TRAIN_OVERRIDES"].message
    assert "sekret" not in "\n".join(map(str, problems.values()))


def test_settings_variables_are_checked_by_their_own_field() -> None:
    # the Settings field decides: what get_settings() accepts passes, what it rejects is named with its bounds
    assert cc.check_process_env({"CT_TRAINING_BACKEND": " Docker ", "CT_RETENTION_THRESHOLD": "0.75"}) == []
    bad = {"CT_SERVING_PORT": "0", "CT_RETENTION_THRESHOLD": "1.5", "CT_SERVING_BATCHING": "maybe"}
    problems = {p.where.split()[-1]: p for p in cc.check_process_env(bad)}
    assert set(problems) == set(bad)
    assert "CT_SERVING_PORT must lie in [1, 65535], got 0" in problems["CT_SERVING_PORT"].message
    assert "[0.0, 1.0]" in problems["CT_RETENTION_THRESHOLD"].message
    assert "Settings.retention_threshold" in problems["CT_RETENTION_THRESHOLD"].fix
    assert "true or false" in problems["CT_SERVING_BATCHING"].message


def test_env_files_are_read_like_dotenv_and_written_back_quoted(tmp_path: Path) -> None:
    env = tmp_path / "x.env"
    env.write_text("export A='one two'\nB=\"x # y\"\nC=plain # comment\nD\n")
    values, lines, problems = cc.parse_env_file(env)
    assert values == {"A": "one two", "B": "x # y", "C": "plain"} and lines == {"A": 1, "B": 2, "C": 3}
    assert [p.where for p in problems] == [f"{env}:4"] and "not a KEY=value line" in problems[0].message
    text = cc.generate_env("A=\nB=change-me\n", {"A": "x # y"})
    again = tmp_path / "again.env"
    again.write_text(text)
    assert cc.parse_env_file(again)[0]["A"] == "x # y" and "change-me" not in text


def test_compose_check_names_unset_variables(env_file: Path) -> None:
    require_binaries("docker-compose")
    assert cc.check_compose(env_file) == []
    _edit(env_file, MINIO_ROOT_PASSWORD=None)
    problems = cc.check_compose(env_file)
    assert any("MINIO_ROOT_PASSWORD" in p.message for p in problems)
    assert any("docker-compose config failed" in p.message for p in problems)


def test_prometheus_check_passes_and_catches_a_broken_rule(tmp_path: Path) -> None:
    require_binaries("promtool")
    assert cc.check_prometheus() == []
    (tmp_path / "alerts").mkdir()
    rules = tmp_path / "alerts" / "bad.rules.yml"
    rules.write_text("groups:\n  - name: g\n    rules:\n      - alert: X\n        expr: rate(foo[5m] > 1\n")
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\nrule_files:\n  - alerts/*.yml\n")
    problems = cc.check_prometheus(config, tmp_path / "alerts")
    assert {Path(p.where).name for p in problems} == {"prometheus.yml", "bad.rules.yml"}


def test_dag_check_reports_import_errors(tmp_path: Path) -> None:
    # the real DAG beside a broken one: exactly the broken file and the missing id are reported
    (tmp_path / "continual_training.py").symlink_to(ROOT / "dags" / "continual_training.py")
    (tmp_path / "broken_dag.py").write_text("from airflow.sdk import dag\nimport not_a_module_ct\n")
    problems = cc.check_dags(tmp_path, expect=["continual_training", "no_such_dag"])
    assert len(problems) == 2, problems
    messages = {Path(p.where).name: p.message for p in problems}
    assert "not_a_module_ct" in messages["broken_dag.py"] and "python" in problems[0].fix
    assert any("'no_such_dag' is missing" in p.message for p in problems)


def test_write_env_generates_keeps_and_backs_up(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    _, generated = cc.write_env(env)
    assert "AIRFLOW_FERNET_KEY" in generated and "POSTGRES_PASSWORD" in generated
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    first = cc.parse_env_file(env)[0]
    assert cc.check_env_file(env) == []
    with env.open("a") as f:
        f.write("MY_EXTRA=1\n")
    _, generated_again = cc.write_env(env)
    assert generated_again == []
    second = cc.parse_env_file(env)[0]
    assert {k: second[k] for k in first} == first and second["MY_EXTRA"] == "1"
    assert len(list(tmp_path.glob(".env.backup.*"))) == 1


def test_backup_and_apply(env_file: Path, tmp_path: Path) -> None:
    original = env_file.read_text()
    backup = cc.backup_config(env_file)
    assert re.fullmatch(r"\.env\.backup\.\d{8}-\d{6}", backup.name) and backup.read_text() == original
    assert cc.backup_config(env_file) != backup  # same second: a distinct name, never overwritten

    bad = tmp_path / "new-bad.env"
    bad.write_text(original.replace("LOG_LEVEL=INFO", "LOG_LEVEL=LOUD"))
    problems, made = cc.apply_config(bad, env_file, compose=False)
    assert made is None and any("LOG_LEVEL" in p.message for p in problems)
    assert env_file.read_text() == original

    good = tmp_path / "new-good.env"
    good.write_text(original.replace("LOG_LEVEL=INFO", "LOG_LEVEL=DEBUG"))
    problems, made = cc.apply_config(good, env_file, compose=False)
    assert problems == [] and made is not None and made.read_text() == original
    assert "LOG_LEVEL=DEBUG" in env_file.read_text()


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CT_TRAIN", "AIRFLOW__CELERY"))}
    return subprocess.run(
        [sys.executable, "-m", "include.ops.config_check", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_exit_codes(tmp_path: Path) -> None:
    require_binaries("docker-compose", "promtool")
    env = tmp_path / ".env"
    write_env_file(env)
    ok = _cli("check", "--env-file", str(env), "--skip", "dags")
    assert ok.returncode == 0 and ok.stdout.startswith("OK:"), ok.stdout + ok.stderr
    _edit(env, CT_TRAINING_QUEUE="gpu queue", CT_API_TOKEN="change-me-api-token")
    bad = _cli("check", "--env-file", str(env), "--skip", "dags,compose,prometheus")
    assert bad.returncode == 1
    assert f"{env}:" in bad.stdout and "CT_TRAINING_QUEUE" in bad.stdout and "fix:" in bad.stdout
    assert "CT_API_TOKEN is still the .env.example placeholder" in bad.stdout
    missing = _cli("check", "--env-file", str(tmp_path / "nope.env"), "--skip", "dags,compose,prometheus")
    assert missing.returncode == 1 and "cp .env.example .env && make deploy-env" in missing.stdout
    applied = _cli("apply", str(env), "--env-file", str(tmp_path / "live.env"))
    assert applied.returncode == 1 and "nothing applied" in applied.stdout


def test_make_targets_are_wired(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    write_env_file(env)
    proc = subprocess.run(
        ["make", "--no-print-directory", "config-backup", f"ENV_FILE={env}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(list(tmp_path.glob(".env.backup.*"))) == 1
    dry = subprocess.run(
        ["make", "-n", "check-config", "validate-config", "test-smoke", "config-apply", "FILE=x"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert dry.returncode == 0, dry.stderr
    assert "include.ops.config_check check" in dry.stdout and "scripts/smoke_test.py" in dry.stdout
