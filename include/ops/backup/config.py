"""Effective configuration for backups: only allowlisted values captured, restored without clobbering the rest.

The allowlist is derived from the one ``Settings`` model (``include/ops/settings.py``, with its
``ServingSettings``): a variable's value is written to a backup only when it is the env name of a settings
field that is not secret. A field is secret when it is typed ``SecretStr``, is marked
``json_schema_extra={"secret": True}``, or is named like a webhook (a webhook URL carries its token in the
path, so webhook URLs are never backed up). A URL-valued value of an allowlisted field is kept only when it
holds no user info, query or fragment (``postgresql://user:pw@db``, ``...?token=``). Everything else, unknown
variables included, is left out and listed by name only, so a restore can say what the operator must
provide; such values are never logged.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from include.ops.config_check.envfile import format_line, parse_env_text
from include.ops.config_check.specs import env_names
from include.ops.settings import ServingSettings, Settings, get_settings
from model.fsio import atomic_write_bytes

log = logging.getLogger(__name__)

# variables whose NAMES the backup lists (their values only when allowlisted)
CONFIG_PREFIXES = (
    "CT_",
    "MLFLOW_",
    "AIRFLOW_CONN_",
    "AIRFLOW_VAR_",
    "AIRFLOW__",
    "AWS_",
    "S3_",
    "PUSHGATEWAY_",
    "SMTP_",
)
CONFIG_NAMES = ("AIRFLOW_HOME", "ENVIRONMENT", "LOG_LEVEL", "ENABLE_METRICS", "GX_ANALYTICS_ENABLED")
RULE = (
    "allowlist: only env names of Settings/ServingSettings fields not marked secret (SecretStr, "
    'json_schema_extra={"secret": True}, webhook fields) keep their values; URL values only without user '
    "info, query or fragment; every other key is listed by name only"
)


def env_file_path() -> Path:
    """The operator's env file the runbook backs up as ``config.env``: ``Settings.env_file`` (``CT_ENV_FILE``)."""
    return get_settings().env_file


def _holds_secret_type(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_holds_secret_type(arg) for arg in typing.get_args(annotation))


def field_is_secret(name: str, info: FieldInfo) -> bool:
    """True for a settings field whose value never leaves the live configuration."""
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    return bool(extra.get("secret")) or _holds_secret_type(info.annotation) or "webhook" in name.lower()


@functools.cache
def public_env_names() -> frozenset[str]:
    """The allowlist: env names of every ``Settings``/``ServingSettings`` field that is not secret."""
    out = set()
    for model in (Settings, ServingSettings):
        for env, name in env_names(model).items():
            if not field_is_secret(name, model.model_fields[name]):
                out.add(env)
    return frozenset(out)


def _url_is_clean(value: str) -> bool:
    """A value that is not a URL, or a URL without user info, query or fragment."""
    if "://" not in value:
        return True
    try:
        parts = urlsplit(value.strip())
        return not (parts.username or parts.password or parts.query or parts.fragment or "@" in parts.netloc)
    except ValueError:
        return False  # unparsable URL-looking value: keep it out


def is_public(name: str, value: str | None = None) -> bool:
    """True when ``name`` is on the allowlist and ``value`` (if given) embeds no URL credentials or query."""
    return name in public_env_names() and (value is None or _url_is_clean(value))


def split_public(values: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """``(allowlisted values, sorted names of everything left out)`` of a key/value mapping."""
    plain = {k: v for k, v in values.items() if is_public(k, v)}
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


def _public_settings(model: BaseSettings, prefix: str = "") -> tuple[dict[str, Any], list[str]]:
    """Resolved settings of the allowlisted fields (nested models as dicts) and the names left out."""
    values: dict[str, Any] = {}
    left_out: list[str] = []
    dumped = model.model_dump(mode="json")
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            nested, nested_out = _public_settings(value, f"{prefix}{name}.")  # type: ignore[arg-type]
            values[name] = nested
            left_out += nested_out
        elif field_is_secret(name, info) or not _url_is_clean(str(dumped[name])):
            left_out.append(prefix + name)
        else:
            values[name] = dumped[name]
    return values, left_out


def capture_config(settings: Settings, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The effective configuration as a JSON-ready dict: allowlisted values only, every other key by name."""
    environ = os.environ if environ is None else environ
    selected = {k: v for k, v in environ.items() if k.startswith(CONFIG_PREFIXES) or k in CONFIG_NAMES}
    env_plain, env_out = split_public(selected)
    path = env_file_path()
    file_plain: dict[str, str] = {}
    file_out: list[str] = []
    if path.is_file():
        file_plain, file_out = split_public(parse_env_file(path.read_text(), str(path)))
    resolved, settings_out = _public_settings(settings)
    return {
        "redaction": RULE,
        "environment": {"values": env_plain, "left_out": env_out},
        "env_file": {
            "path": str(path),
            "present": path.is_file(),
            "values": file_plain,
            "left_out": file_out,
        },
        "settings": resolved,
        "settings_left_out": sorted(settings_out),
    }


def left_out_names(captured: Mapping[str, Any]) -> list[str]:
    """Every key a captured configuration names without its value (``secrets`` in backups made before)."""
    names: set[str] = set()
    for section in ("environment", "env_file"):
        part = captured.get(section) or {}
        names.update(part.get("left_out", part.get("secrets", [])))
    return sorted(names)


def _section(captured: Mapping[str, Any], name: str) -> tuple[dict[str, str], list[str]]:
    part = captured[name]
    return dict(part.get("values", {})), list(part.get("left_out", part.get("secrets", [])))


@dataclass
class ConfigRestoreReport:
    """What a configuration restore did (or would do): names only, never values left out of the backup."""

    env_file: str
    written: bool
    restored: list[str] = field(default_factory=list)  # allowlisted keys taken from the backup
    kept_secrets: list[str] = field(default_factory=list)  # live values not on the allowlist, left untouched
    missing_secrets: list[str] = field(default_factory=list)  # keys the backup names but nobody provides
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
    """Rebuild the env file at ``target`` from a captured config; live non-allowlisted values always win.

    Allowlisted keys come from the backup; a key the backup left out is kept from the live env file, or left
    to the live environment when set there; one nobody provides is written as a commented placeholder and
    listed in ``missing_secrets``. Live keys unknown to the backup are kept.
    """
    environ = os.environ if environ is None else environ
    try:
        backup_values, backup_out = _section(captured, "env_file")
        _, env_out = _section(captured, "environment")
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"captured configuration is malformed (missing {exc})") from exc
    live = parse_env_file(target.read_text(), str(target)) if target.is_file() else {}
    report = ConfigRestoreReport(env_file=str(target), written=False)
    merged: dict[str, str] = {}
    for key, value in backup_values.items():
        if key in live and not is_public(key, live[key]):
            report.kept_secrets.append(key)  # the live value is not allowlisted: never replace it
            merged[key] = live[key]
        elif is_public(key, value):
            merged[key] = value
            report.restored.append(key)
    placeholders = []
    for key in sorted(set(backup_out) | set(env_out)):
        if key in live:
            merged[key] = live[key]
            report.kept_secrets.append(key)
        elif key in environ:
            report.kept_secrets.append(key)  # provided by the live environment; not copied into the file
        else:
            report.missing_secrets.append(key)
            if key in backup_out:
                placeholders.append(f"{key}=<not in backup: set it>")
    for key, value in live.items():
        if key not in merged and key not in report.kept_secrets:
            merged[key] = value
            report.kept_live_only.append(key)
    report.kept_secrets = sorted(set(report.kept_secrets))
    if report.missing_secrets:
        log.warning("keys the backup does not hold and the live system lacks: %s", report.missing_secrets)
    if not dry_run and (backup_values or backup_out or live):
        comments = ["restored by include.ops.backup (only allowlisted values are backed up)", *placeholders]
        atomic_write_bytes(target, render_env_file(merged, comments).encode(), mode=0o600)
        report.written = True
    return report


def write_config_json(captured: Mapping[str, Any]) -> bytes:
    """Serialise a captured configuration for the backup."""
    return (json.dumps(captured, indent=2, sort_keys=True) + "\n").encode()
