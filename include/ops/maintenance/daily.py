"""Daily checks (runbook "Daily Tasks"): system health, error log review, disk space, backup completion.

A check whose target is not deployed yet (nothing listens at the app's address; no backup was ever taken)
reports ``skipped`` with the reason: it does not fail a run, except a strict one (``report.overall_status``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

from include.ops.maintenance import integrations
from include.ops.maintenance.probes import http_request, mlflow_reachable, safe_url
from include.ops.maintenance.report import FAIL, NOT_AVAILABLE, PASS, SKIPPED, WARN, CheckResult
from include.ops.settings import Settings


@dataclass(frozen=True)
class LogPattern:
    """One of the runbook's "Important Log Patterns" and how bad a match is."""

    name: str
    regex: str
    severity: str  # FAIL or WARN
    ignore_case: bool = False

    def compile(self) -> re.Pattern[str]:
        """The compiled regex."""
        return re.compile(self.regex, re.IGNORECASE if self.ignore_case else 0)


RUNBOOK_PATTERNS = (
    LogPattern("training_errors", r"ERROR.*training", FAIL),
    LogPattern("cuda_oom", r"CUDA out of memory", FAIL),
    LogPattern("slow_inference", r"slow.*inference", WARN),
    LogPattern("loss_diverged", r"loss.*diverged", FAIL),
    # the runbook's grep -i "memory\|leak\|oom", as words: a setting such as pin_memory is no finding
    LogPattern("memory_leak_oom", r"\b(memory|leak|oom)\b", WARN, ignore_case=True),
)


SERVE_HINT = "start it with `make serve`"
INCOMPLETE_GRACE_HOURS = 1.0  # a newer incomplete backup younger than this may still be running: warn only


def _refused(url: str, timeout: float) -> bool:
    """True when nothing listens at ``url``'s host and port (the connection is refused): not running."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False  # a timeout or a name that does not resolve: reachable or not, it is not "not running"


def check_app_health(app_url: str, timeout: float = 10.0) -> CheckResult:
    """``GET <app>/health/all``: healthy -> pass, degraded -> warn, unhealthy/unreachable -> fail.

    Nothing listening at the app's address (connection refused) -> ``skipped: not running``.
    """
    where = safe_url(app_url)
    if _refused(app_url, min(timeout, 3.0)):
        return CheckResult(
            "app_health", SKIPPED, f"skipped: not running (nothing listens at {where}; {SERVE_HINT})",
            {"url": where, "running": False},
        )  # fmt: skip
    result = http_request(app_url.rstrip("/") + "/health/all", timeout=timeout)
    if result.status is None:
        return CheckResult("app_health", FAIL, f"app {where} unreachable: {result.error}")
    body = result.body if isinstance(result.body, dict) else {}
    status = body.get("status")
    details = {"url": where, "http_status": result.status, "latency_ms": round(result.latency_ms, 1), **body}
    if result.status == 200 and status == "healthy":
        return CheckResult("app_health", PASS, f"app healthy ({result.latency_ms:.0f} ms)", details)
    if result.status == 200 and status == "degraded":
        return CheckResult("app_health", WARN, "app degraded: " + "; ".join(body.get("issues", [])), details)
    errors = body.get("errors") or [f"HTTP {result.status}"]
    return CheckResult("app_health", FAIL, "app unhealthy: " + "; ".join(map(str, errors)), details)


def check_airflow(api_url: str | None, execution_api: dict[str, Any] | None) -> CheckResult:
    """Airflow answered: the execution API (run counts seen by this task) and, when set, the api-server health.

    ``execution_api`` is what the calling task read through Airflow (``{"failed_runs": {dag_id: n}}``) or
    ``{"error": ...}``; ``api_url`` is the api-server base URL (``CT_AIRFLOW_URL``), probed at
    ``/api/v2/monitor/health``.
    """
    details: dict[str, Any] = {"execution_api": execution_api}
    problems: list[str] = []
    if not execution_api or "error" in execution_api:
        problems.append(f"execution API: {(execution_api or {}).get('error', 'not queried')}")
    if api_url:
        health = http_request(api_url.rstrip("/") + "/api/v2/monitor/health", timeout=10)
        details["api_server"] = {"url": safe_url(api_url), "status": health.status, "body": health.body}
        if not health.ok:
            problems.append(f"api-server {safe_url(api_url)}: {health.error or health.status}")
        elif isinstance(health.body, dict):
            for component, info in health.body.items():
                state = info.get("status") if isinstance(info, dict) else None
                if state not in (None, "healthy"):
                    problems.append(f"{component} is {state}")
    else:
        details["api_server"] = "not probed: CT_AIRFLOW_URL is unset"
    if problems:
        return CheckResult("airflow", FAIL, "; ".join(problems), details)
    failed = (execution_api or {}).get("failed_runs", {})
    note = ", ".join(f"{d}: {n} failed run(s)" for d, n in failed.items() if n) or "no failed runs"
    probed = "api-server healthy" if api_url else "api-server not probed (CT_AIRFLOW_URL unset)"
    return CheckResult("airflow", PASS, f"execution API answered ({note}); {probed}", details)


def check_mlflow(paths: Settings) -> CheckResult:
    """The tracking store answers a query and the registry has a ``champion`` (warn without one)."""
    ok, reason = mlflow_reachable(paths.mlflow_tracking_uri)
    if not ok:
        return CheckResult("mlflow", FAIL, f"MLflow unreachable: {reason}")
    from include.ops.tracking import mlflow_client

    client = mlflow_client(paths, read_only=True)
    start = time.perf_counter()
    experiments = client.search_experiments(max_results=100)
    details: dict[str, Any] = {
        "store": reason,
        "query_ms": round((time.perf_counter() - start) * 1000, 1),
        "experiments": [e.name for e in experiments],
    }
    try:
        mv = client.get_model_version_by_alias(paths.registered_model, "champion")
    except Exception as exc:  # no registered model or no alias yet
        details["champion"] = None
        return CheckResult("mlflow", WARN, f"MLflow reachable; no champion: {str(exc)[:200]}", details)
    details["champion"] = {"version": mv.version, "tags": dict(mv.tags or {})}
    return CheckResult("mlflow", PASS, f"MLflow reachable; champion is version {mv.version}", details)


def _line_text(raw: str) -> tuple[str, float | None]:
    """Text the patterns match (JSON lines rendered like a console line) and the record time if known."""
    raw = raw.rstrip("\n")
    if raw.startswith("{"):
        try:
            rec = json.loads(raw)
        except json.JSONDecodeError:
            return raw, None
        if not isinstance(rec, dict):
            return raw, None
        try:
            ts: float | None = datetime.fromisoformat(str(rec.get("ts"))).timestamp()
        except ValueError:
            ts = None
        text = f"{rec.get('ts', '')} {rec.get('level', '')} {rec.get('logger', '')} [{rec.get('component', '')}] "
        text += str(rec.get("message", ""))
        if rec.get("exc"):
            text += " | " + str(rec["exc"]).splitlines()[-1]
        return text, ts
    return raw, None


def _log_files(log_dir: Path, since: float) -> Iterable[Path]:
    for path in sorted(log_dir.rglob("*.log*")):
        if path.is_file() and path.stat().st_mtime >= since:
            yield path


def review_error_logs(
    log_dir: Path,
    window_hours: float = 24.0,
    patterns: Iterable[LogPattern] = RUNBOOK_PATTERNS,
    samples: int = 5,
) -> CheckResult:
    """Count and sample the runbook's log patterns in the last ``window_hours`` of every log under ``log_dir``.

    A match of a FAIL pattern (training errors, CUDA OOM, loss diverged) fails the check; WARN patterns
    (slow inference, memory/leak/oom) warn.
    """
    if window_hours <= 0:
        raise ValueError(f"window_hours must be > 0, got {window_hours}")
    if not log_dir.is_dir():
        return CheckResult("error_logs", FAIL, f"log folder {log_dir} does not exist: nothing to review")
    since = time.time() - window_hours * 3600
    compiled = [(p, p.compile()) for p in patterns]
    found: dict[str, dict[str, Any]] = {
        p.name: {"pattern": p.regex, "severity": p.severity, "count": 0, "samples": [], "files": []}
        for p, _ in compiled
    }
    files, lines = [], 0
    for path in _log_files(log_dir, since):
        files.append(str(path))
        with path.open(encoding="utf-8", errors="replace") as f:
            for raw in f:
                text, ts = _line_text(raw)
                if ts is not None and ts < since:
                    continue
                lines += 1
                for pattern, rx in compiled:
                    if rx.search(text):
                        entry = found[pattern.name]
                        entry["count"] += 1
                        if len(entry["samples"]) < samples:
                            entry["samples"].append(f"{path.name}: {text[:400]}")
                        if str(path.name) not in entry["files"]:
                            entry["files"].append(path.name)
    details = {"log_dir": str(log_dir), "window_hours": window_hours, "files": files, "lines": lines,
               "patterns": found}  # fmt: skip
    hits = {name: e["count"] for name, e in found.items() if e["count"]}
    summary = f"{lines} line(s) in {len(files)} file(s); " + (
        ", ".join(f"{n}={c}" for n, c in hits.items()) if hits else "no runbook pattern matched"
    )
    if any(found[p.name]["count"] and p.severity == FAIL for p, _ in compiled):
        return CheckResult("error_logs", FAIL, summary, details)
    return CheckResult("error_logs", WARN if hits else PASS, summary, details)


def data_folders(paths: Settings) -> list[Path]:
    """The folders whose filesystems must not fill: var, state (checkpoints), backups, logs."""
    return [paths.var_dir, paths.state_dir, paths.backup_dir, paths.log_dir]


def check_disk_space(
    folders: Iterable[Path], max_used_pct: float, warn_margin_pct: float = 10.0
) -> CheckResult:
    """Used % of each distinct filesystem: above ``max_used_pct`` fails, within ``warn_margin_pct`` below warns."""
    if not 0 < max_used_pct <= 100:
        raise ValueError(f"max_used_pct must be in (0, 100], got {max_used_pct}")
    seen: dict[int, dict[str, Any]] = {}
    for folder in folders:
        probe = Path(folder)
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        dev = os.stat(probe).st_dev
        if dev in seen:
            seen[dev]["folders"].append(str(folder))
            continue
        usage = psutil.disk_usage(str(probe))
        seen[dev] = {"mount_probe": str(probe), "folders": [str(folder)], "used_pct": usage.percent,
                     "free_bytes": usage.free, "total_bytes": usage.total}  # fmt: skip
    disks = list(seen.values())
    worst = max(disks, key=lambda d: d["used_pct"])
    details = {
        "max_used_pct": max_used_pct,
        "warn_above_pct": max_used_pct - warn_margin_pct,
        "filesystems": disks,
    }
    summary = f"fullest filesystem {worst['used_pct']:.1f}% used ({worst['free_bytes'] / 2**30:.1f} GiB free)"
    if worst["used_pct"] > max_used_pct:
        return CheckResult("disk_space", FAIL, f"{summary} > threshold {max_used_pct:g}%", details)
    if worst["used_pct"] > max_used_pct - warn_margin_pct:
        return CheckResult(
            "disk_space", WARN, f"{summary}, within {warn_margin_pct:g}% of {max_used_pct:g}%", details
        )
    return CheckResult("disk_space", PASS, f"{summary} <= threshold {max_used_pct:g}%", details)


def _newer_incomplete(paths: Settings) -> list[dict[str, Any]]:
    """Backups newer than the latest complete one (what ``restore latest`` passes over), newest first."""
    fn = integrations.find("include.ops.backup.catalog", "latest_with_skipped")
    return [] if fn is None else list(fn(paths)[1])


def verify_backups(
    paths: Settings, max_age_hours: float = 48.0, incomplete_grace_hours: float = INCOMPLETE_GRACE_HOURS
) -> CheckResult:
    """The newest backup is complete, re-verifies byte for byte and is younger than ``max_age_hours``.

    No backup at all -> ``skipped: no backup yet``. A newest backup that is incomplete fails (``restore
    latest`` would pass over it) once older than ``incomplete_grace_hours``; younger, it may be running: warn.
    """
    outcome = integrations.backup_status(paths)
    if outcome is None:
        return CheckResult(
            "backup", NOT_AVAILABLE, "backup verification not available: " + integrations.missing()
        )
    if not outcome.get("backups"):
        return CheckResult(
            "backup", SKIPPED,
            f"skipped: no backup yet in {paths.backup_dir} (trigger checkpoint_backup or `make backup`)", outcome,
        )  # fmt: skip
    newer = _newer_incomplete(paths)
    outcome["newer_incomplete"] = newer
    stale = [b for b in newer if b["age_hours"] >= incomplete_grace_hours]
    if stale:
        bad = stale[0]
        latest = outcome["backup_id"]
        fallback = f"restore latest would use {latest}" if latest else "no backup is complete"
        return CheckResult(
            "backup", FAIL,
            f"newest backup {bad['backup_id']} is incomplete ({bad['age_hours']:g} h old: {bad['reason']}); "
            f"{fallback}",
            outcome,
        )  # fmt: skip
    if not outcome["backup_id"]:
        return CheckResult(
            "backup", WARN, f"no complete backup yet; {newer[0]['backup_id']} is incomplete, younger than "
            f"{incomplete_grace_hours:g} h (still running?)", outcome,
        )  # fmt: skip
    age_h = (time.time() - outcome["created_at"]) / 3600
    outcome["age_hours"] = round(age_h, 2)
    name = outcome["backup_id"]
    if not outcome["ok"]:
        return CheckResult(
            "backup", FAIL, f"backup {name} failed verification: {outcome['problems'][:3]}", outcome
        )
    if age_h > max_age_hours:
        return CheckResult(
            "backup", FAIL, f"newest backup {name} is {age_h:.1f} h old > {max_age_hours:g} h", outcome
        )
    summary = f"backup {name} verified: {outcome['files']} files, {age_h:.1f} h old"
    if newer:
        ids = ", ".join(b["backup_id"] for b in newer)
        return CheckResult(
            "backup", WARN, f"{summary}; newer backup(s) {ids} incomplete, younger than "
            f"{incomplete_grace_hours:g} h (still running?)", outcome,
        )  # fmt: skip
    if outcome["incomplete"]:
        return CheckResult("backup", WARN, f"{summary}; incomplete: {outcome['incomplete']}", outcome)
    return CheckResult("backup", PASS, summary, outcome)
