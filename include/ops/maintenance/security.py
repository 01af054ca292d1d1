"""Monthly security audit (runbook "Monthly Tasks"): bandit, literal secrets in config files, folder modes."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from include.ops.maintenance.report import FAIL, PASS, WARN, CheckResult
from include.ops.settings import PROJECT_ROOT, Settings

CODE_DIRS = ("dags", "include", "model", "plugins", "scripts", "bench")
SKIP_DIRS = {".venv", "var", ".git", "node_modules", "__pycache__", ".ruff_cache", "uncommitted", "tests"}
CONFIG_GLOBS = ("*.yml", "*.yaml", "*.json", "*.toml", "*.cfg", "*.ini", "*.env", ".env", ".env.*", "*.conf")


def bandit_scan(root: Path, dirs: Iterable[str] = CODE_DIRS) -> dict[str, Any]:
    """Run bandit over the project's code folders; findings grouped by severity."""
    targets = [str(root / d) for d in dirs if (root / d).is_dir()]
    cmd = [
        sys.executable,
        "-m",
        "bandit",
        "-r",
        *targets,
        "-f",
        "json",
        "-q",
        "-x",
        ",".join(sorted(SKIP_DIRS)),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise RuntimeError(
            f"bandit produced no JSON (exit {proc.returncode}): {proc.stderr[-2000:]}"
        ) from exc
    findings = [
        {"severity": r["issue_severity"], "confidence": r["issue_confidence"], "test": r["test_id"],
         "file": os.path.relpath(r["filename"], root), "line": r["line_number"], "text": r["issue_text"]}
        for r in data.get("results", [])
    ]  # fmt: skip
    by = {s: sum(f["severity"] == s for f in findings) for s in ("HIGH", "MEDIUM", "LOW")}
    return {"targets": [os.path.relpath(t, root) for t in targets], "counts": by, "findings": findings,
            "errors": data.get("errors", [])}  # fmt: skip


_TOKEN_PATTERNS = (
    ("aws_access_key", re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("private_key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
)
_URL_CREDENTIALS = re.compile(r"[a-z][a-z0-9+.-]*://[^\s:/@'\"]*:(?P<value>[^\s@'\"]+)@", re.IGNORECASE)
_KEY_VALUE = re.compile(r"""^\s*(?:-\s*)?(?:export\s+)?["']?(?P<key>[\w.-]+)["']?\s*[:=]\s*(?P<value>.*)$""")
_SECRET_KEY = re.compile(
    r"(password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)", re.IGNORECASE
)
_REFERENCE_KEY = re.compile(r"(name|file|path|ref|dir|arn|_env|expiry|ttl|seconds|length)$", re.IGNORECASE)


def _literal(raw: str) -> str:
    """A config value without quotes, trailing comma or trailing comment."""
    value = raw.strip()
    if value and value[0] in "\"'":
        end = value.find(value[0], 1)
        return value[1:end] if end > 0 else value[1:]
    return re.split(r"\s+#", value, maxsplit=1)[0].rstrip(",").strip()


def _placeholder(value: str) -> bool:
    """References and obvious templates, not secrets: ${VAR}, {{ x }}, <x>, change-me, UPPER_CASE, numbers."""
    low = value.lower()
    return (
        not value
        or any(mark in value for mark in ("${", "{{", "<", "%("))
        or value.startswith("$")
        or low in ("null", "none", "true", "false", "~", "''", '""')
        or low.startswith(("change-me", "changeme", "example", "xxx", "***"))
        or re.fullmatch(r"[A-Z_]+", value) is not None
        or re.fullmatch(r"[\d.]+[smhd]?", value) is not None
    )


def _config_files(root: Path) -> Iterable[Path]:
    seen: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        for name in filenames:
            path = Path(dirpath) / name
            if (
                path not in seen
                and any(path.match(g) for g in CONFIG_GLOBS)
                and path.stat().st_size < 2_000_000
            ):
                seen.add(path)
                yield path


def scan_config_secrets(root: Path) -> list[dict[str, Any]]:
    """Literal secrets in configuration files: keys, passwords/tokens given as literal values, credentials in URLs.

    Comments, ``${VAR}``/``{{ }}`` references, ``change-me`` placeholders and ``*_NAME``/``*_FILE`` style
    references are not findings. Values are redacted in the result.
    """
    findings = []
    for path in _config_files(root):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.lstrip().startswith(("#", "//", ";")):
                continue
            line = re.split(r"\s+#\s", line, maxsplit=1)[0]  # a trailing comment is documentation, not config
            kind, value = None, ""
            for name, rx in _TOKEN_PATTERNS:
                if match := rx.search(line):
                    kind, value = name, match.group(0)
            if kind is None and (match := _URL_CREDENTIALS.search(line)) and not _placeholder(match["value"]):
                kind, value = "url_credentials", match["value"]
            if kind is None and (match := _KEY_VALUE.match(line)):
                key, literal = match["key"], _literal(match["value"])
                if _SECRET_KEY.search(key) and not _REFERENCE_KEY.search(key) and not _placeholder(literal):
                    kind, value = "assigned_secret", literal
            if kind is not None:
                findings.append({"file": os.path.relpath(path, root), "line": lineno, "kind": kind,
                                 "value": value[:2] + "***"})  # fmt: skip
    return findings


def check_permissions(folders: Iterable[Path]) -> dict[str, Any]:
    """World-writable or group-writable entries in sensitive folders (checkpoints, backups), and their modes."""
    out: dict[str, Any] = {"folders": {}, "world_writable": [], "group_writable": [], "world_readable": 0}
    uid = os.getuid()
    for folder in folders:
        if not folder.exists():
            out["folders"][str(folder)] = "missing"
            continue
        out["folders"][str(folder)] = oct(stat.S_IMODE(folder.stat().st_mode))
        for path in [folder, *folder.rglob("*")]:
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                continue
            mode = stat.S_IMODE(st.st_mode)
            if mode & stat.S_IWOTH:
                out["world_writable"].append(f"{path} ({oct(mode)})")
            elif mode & stat.S_IWGRP and st.st_uid == uid:
                out["group_writable"].append(f"{path} ({oct(mode)})")
            if mode & stat.S_IROTH:
                out["world_readable"] += 1
    return out


def security_audit(paths: Settings, root: Path = PROJECT_ROOT) -> CheckResult:
    """bandit (HIGH fails, MEDIUM warns), literal secrets in config files (fail), folder permissions.

    World-writable checkpoint/backup entries fail; group-writable ones warn.
    """
    bandit = bandit_scan(root)
    secrets = scan_config_secrets(root)
    perms = check_permissions([paths.checkpoint_dir, paths.backup_dir])
    details = {"bandit": bandit, "config_secrets": secrets, "permissions": perms}
    c = bandit["counts"]
    summary = (
        f"bandit HIGH={c['HIGH']} MEDIUM={c['MEDIUM']} LOW={c['LOW']}; {len(secrets)} secret(s) in config files; "
        f"{len(perms['world_writable'])} world-writable, {len(perms['group_writable'])} group-writable entries"
    )
    if c["HIGH"] or secrets or perms["world_writable"]:
        return CheckResult("security_audit", FAIL, summary, details)
    if c["MEDIUM"] or perms["group_writable"]:
        return CheckResult("security_audit", WARN, summary, details)
    return CheckResult("security_audit", PASS, summary, details)
