"""Health checks as the runbook's "Expected Responses": healthy, degraded (issues), unhealthy (errors)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from include.ops.settings import ServingSettings, Settings
from include.serving.registry import ModelStore

HEALTHY, DEGRADED, UNHEALTHY = "healthy", "degraded", "unhealthy"


@dataclass
class CheckResult:
    """One component's verdict: details for operators, issues (degrade), errors (make unhealthy) and warnings
    (reported, status unchanged: a busy host CPU says nothing about the model)."""

    details: dict[str, Any]
    issues: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``unhealthy`` with any error, else ``degraded`` with any issue, else ``healthy``."""
        return UNHEALTHY if self.errors else DEGRADED if self.issues else HEALTHY

    def body(self) -> dict[str, Any]:
        """Response body of a single-component endpoint."""
        return {
            "status": self.status,
            **self.details,
            "issues": self.issues,
            "errors": self.errors,
            "warnings": self.warnings,
        }


def _disk_targets(paths: Settings) -> list[tuple[str, Path]]:
    """(setting name, existing folder) the app and training write to, one per filesystem."""
    seen: set[int] = set()
    out: list[tuple[str, Path]] = []
    for name in ("var_dir", "state_dir", "log_dir", "backup_dir"):
        probe = getattr(paths, name)
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        dev = probe.stat().st_dev
        if dev not in seen:
            seen.add(dev)
            out.append((name, probe))
    return out


def system_check(paths: Settings, serving: ServingSettings) -> CheckResult:
    """CPU, memory, disk of the data folders, and every CUDA device against the configured thresholds."""
    warn, crit = serving.degraded_pct, serving.unhealthy_pct
    result = CheckResult(details={})
    cpu = psutil.cpu_percent(interval=None)  # since the previous call; primed at app start
    result.details["cpu"] = {"percent": cpu, "cores": psutil.cpu_count()}
    if cpu > warn:  # load alone is no fault: reported, never degrading (inference is sized for a busy host)
        result.warnings.append(f"cpu {cpu:.0f}% > {warn:.0f}%")
    mem = psutil.virtual_memory()
    result.details["memory"] = {
        "percent": mem.percent,
        "total_bytes": mem.total,
        "available_bytes": mem.available,
    }
    if mem.percent > crit:
        result.errors.append(f"memory {mem.percent:.0f}% > {crit:.0f}%")
    elif mem.percent > warn:
        result.issues.append(f"memory {mem.percent:.0f}% > {warn:.0f}%")
    disks = []
    for name, path in _disk_targets(paths):
        usage = psutil.disk_usage(str(path))
        disks.append(
            {
                "folder": name,  # the setting, not the path: unauthenticated readers learn no paths
                "percent": usage.percent,
                "free_bytes": usage.free,
                "total_bytes": usage.total,
            }
        )
        if usage.percent > crit:
            result.errors.append(f"disk {name} {usage.percent:.0f}% > {crit:.0f}%")
        elif usage.percent > warn:
            result.issues.append(f"disk {name} {usage.percent:.0f}% > {warn:.0f}%")
    result.details["disk"] = disks
    torch = sys.modules.get("torch")
    gpus = []
    if torch is not None and torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            pct = 100.0 * (total - free) / total
            gpus.append(
                {
                    "device": f"gpu_{i}",
                    "name": torch.cuda.get_device_name(i),
                    "percent": round(pct, 1),
                    "reserved_bytes": torch.cuda.memory_reserved(i),
                    "total_bytes": total,
                }
            )
            if pct > warn:
                result.issues.append(f"gpu_{i} memory {pct:.0f}% > {warn:.0f}%")
    result.details["gpu"] = gpus
    return result


def model_check(store: ModelStore, paths: Settings, serving: ServingSettings) -> CheckResult:
    """Loaded or not, served vs registry version, age, last retention, the served file still intact; fallback
    serving, a changed file, a champion not yet followed, low retention and old models degrade."""
    registry = {
        "registry_version": store.registry_version,
        "registry_checked_seconds_ago": None
        if store.registry_checked_at is None
        else round(time.time() - store.registry_checked_at, 1),
        "registry_error": store.registry_error,
    }
    loaded = store.current
    if loaded is None:
        return CheckResult(
            details={"loaded": False, "served_version": None, **registry},
            errors=[f"no model loaded: {store.last_error or 'not loaded'}"],
        )
    info = loaded.describe()
    result = CheckResult(
        details={"loaded": True, **info, "served_version": loaded.version, **registry},
        issues=list(loaded.issues),
    )
    file_issue = store.verify()
    if file_issue is not None:
        result.issues.append(file_issue)
    if store.registry_version is not None and (
        loaded.source != "registry" or loaded.version != store.registry_version
    ):
        result.issues.append(
            f"registry champion is v{store.registry_version}, serving v{loaded.version} ({loaded.source})"
        )
    retention = loaded.mean_retention
    if retention is not None and retention < paths.retention_threshold:
        result.issues.append(f"mean retention {retention:.3f} < {paths.retention_threshold}")
    max_age = serving.model_max_age_hours * 3600
    if info["age_seconds"] > max_age:
        result.issues.append(
            f"model age {info['age_seconds'] / 3600:.1f} h > {serving.model_max_age_hours:g} h"
        )
    return result


def aggregate(checks: dict[str, CheckResult]) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of ``/health/all``: 503 on errors, else 200 degraded with issues, else healthy."""
    issues = [f"{name}: {msg}" for name, check in checks.items() for msg in check.issues]
    errors = [f"{name}: {msg}" for name, check in checks.items() for msg in check.errors]
    warnings = [f"{name}: {msg}" for name, check in checks.items() for msg in check.warnings]
    body: dict[str, Any] = {
        "warnings": warnings,
        "checks": {name: check.body() for name, check in checks.items()},
        "ts": time.time(),
    }
    if errors:
        return 503, {"status": UNHEALTHY, "errors": errors, "issues": issues, **body}
    if issues:
        return 200, {"status": DEGRADED, "issues": issues, **body}
    return 200, {"status": HEALTHY, **body}
