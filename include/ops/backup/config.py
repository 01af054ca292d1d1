"""Effective configuration for backups: captured with secrets removed, restored without clobbering secrets.

A key is secret when its name matches ``SECRET_NAME_RE`` (PASSWORD, SECRET, TOKEN, KEY, CONN, ...) or its value
carries URL credentials (``scheme://user:password@host``). Secret values are never written to a backup and
never logged; only their names are kept so a restore can say which secrets the operator must provide.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from include.ops.config_check.envfile import format_line, parse_env_text
from include.ops.settings import Settings, get_settings
from model.fsio import atomic_write_bytes

log = logging.getLogger(__name__)

SECRET_NAME_RE = re.compile(
    r"PASSWORD|PASSWD|SECRET|TOKEN|KEY|CONN|CREDENTIAL|PRIVATE|AUTH|COOKIE|SESSION|SIGNATURE|DSN|WEBHOOK",
    re.IGNORECASE,
)
CONFIG_PREFIXES = (
    "CT_",
    "MLFLOW_",
    "AIRFLOW_CONN_",
    "AIRFLOW_VAR_",
    "AIRFLOW__",
    "AWS_",
    "S3_",
    "PUSHGATEWAY_",
)
CONFIG_NAMES = ("AIRFLOW_HOME", "ENVIRONMENT", "LOG_LEVEL", "ENABLE_METRICS", "GX_ANALYTICS_ENABLED")


def env_file_path() -> Path:
    """The operator's env file the runbook backs up as ``config.env``: ``Settings.env_file`` (``CT_ENV_FILE``)."""
    return get_settings().env_file


def _has_url_credentials(value: str) -> bool:
    if "://" not in value:
        return False
    try:
        return urlsplit(value.strip()).password is not None
    except ValueError:
        return True  # unparsable URL-looking value: treat as secret


def is_secret(name: str, value: str | None = None) -> bool:
    """True when ``name`` looks like a secret, or ``value`` embeds URL credentials."""
    return bool(SECRET_NAME_RE.search(name)) or (value is not None and _has_url_credentials(value))


def split_secrets(values: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """``(non-secret values, sorted secret names)`` of a key/value mapping."""
    plain = {k: v for k, v in values.items() if not is_secret(k, v)}
    return dict(sorted(plain.items())), sorted(k for k in values if k not in plain)


def parse_env_file(text: str, where: str) -> dict[str, str]:
    """The values of an env file's ``text`` (python-dotenv rules); ValueError naming the first bad line."""
    values, _, problems = parse_env_text(text, where)
    if problems:
        raise ValueError(f"{problems[0].where}: {problems[0].message}")
    return values


def render_env_file(values: Mapping[str, str], comments: list[str] | None = None) -> str:
    """Render ``KEY=VALUE`` lines (sorted, quoted where needed), preceded by ``# comment`` lines."""
    lines = [f"# {c}" for c in comments or []]
    lines += [format_line(k, v) for k, v in sorted(values.items())]
    return "\n".join(lines) + "\n"


def _redact_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """Settings as strings (nested ones as dicts), any value holding URL credentials redacted."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out[key] = _redact_settings(value)
            continue
        text = str(value)
        out[key] = "<redacted: holds credentials>" if _has_url_credentials(text) else text
    return out


def capture_config(settings: Settings, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The effective configuration as a JSON-ready dict holding no secret value (names only)."""
    environ = os.environ if environ is None else environ
    selected = {k: v for k, v in environ.items() if k.startswith(CONFIG_PREFIXES) or k in CONFIG_NAMES}
    env_plain, env_secrets = split_secrets(selected)
    path = env_file_path()
    file_plain: dict[str, str] = {}
    file_secrets: list[str] = []
    if path.is_file():
        file_plain, file_secrets = split_secrets(parse_env_file(path.read_text(), str(path)))
    resolved = _redact_settings(settings.model_dump(mode="json"))
    return {
        "redaction": f"values of names matching /{SECRET_NAME_RE.pattern}/i or holding URL credentials are removed",
        "environment": {"values": env_plain, "secrets": env_secrets},
        "env_file": {
            "path": str(path),
            "present": path.is_file(),
            "values": file_plain,
            "secrets": file_secrets,
        },
        "settings": resolved,
    }


@dataclass
class ConfigRestoreReport:
    """What a configuration restore did (or would do): names only, never secret values."""

    env_file: str
    written: bool
    restored: list[str] = field(default_factory=list)  # non-secret keys taken from the backup
    kept_secrets: list[str] = field(default_factory=list)  # live secrets left untouched
    missing_secrets: list[str] = field(default_factory=list)  # secrets the backup names but nobody provides
    kept_live_only: list[str] = field(default_factory=list)  # live keys the backup does not know

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for XCom and reports."""
        return asdict(self)


def restore_config(
    captured: Mapping[str, Any],
    target: Path,
    dry_run: bool = False,
    environ: Mapping[str, str] | None = None,
) -> ConfigRestoreReport:
    """Rebuild the env file at ``target`` from a captured config; live secrets always win, missing ones reported.

    Non-secret keys come from the backup; a secret is kept from the live env file, or left to the live
    environment when set there; a secret nobody provides is written as a commented placeholder and listed in
    ``missing_secrets``. Live keys unknown to the backup are kept.
    """
    environ = os.environ if environ is None else environ
    try:
        backup_values = dict(captured["env_file"]["values"])
        backup_secrets = list(captured["env_file"]["secrets"])
        env_secrets = list(captured["environment"]["secrets"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"captured configuration is malformed (missing {exc})") from exc
    live = parse_env_file(target.read_text(), str(target)) if target.is_file() else {}
    report = ConfigRestoreReport(env_file=str(target), written=False)
    merged: dict[str, str] = {}
    for key, value in backup_values.items():
        if key in live and is_secret(key, live[key]):
            report.kept_secrets.append(key)  # the live value is secret: never replace it
            merged[key] = live[key]
        else:
            merged[key] = value
            report.restored.append(key)
    placeholders = []
    for key in sorted(set(backup_secrets) | set(env_secrets)):
        if key in live:
            merged[key] = live[key]
            report.kept_secrets.append(key)
        elif key in environ:
            report.kept_secrets.append(key)  # provided by the live environment; not copied into the file
        else:
            report.missing_secrets.append(key)
            if key in backup_secrets:
                placeholders.append(f"{key}=<secret not in backup: set it>")
    for key, value in live.items():
        if key not in merged and key not in report.kept_secrets:
            merged[key] = value
            report.kept_live_only.append(key)
    report.kept_secrets = sorted(set(report.kept_secrets))
    if report.missing_secrets:
        log.warning("secrets the backup does not hold and the live system lacks: %s", report.missing_secrets)
    if not dry_run and (backup_values or backup_secrets or live):
        comments = ["restored by include.ops.backup (secrets are never backed up)", *placeholders]
        atomic_write_bytes(target, render_env_file(merged, comments).encode(), mode=0o600)
        report.written = True
    return report


def write_config_json(captured: Mapping[str, Any]) -> bytes:
    """Serialise a captured configuration for the backup."""
    return (json.dumps(captured, indent=2, sort_keys=True) + "\n").encode()
