"""Check results and maintenance reports: Markdown + JSON files, an MLflow run, job metrics, a webhook alert body.

A check is ``pass``, ``warn``, ``fail``, ``skipped`` (it could not run here, e.g. a service is unreachable)
or ``not_available`` (the capability it needs is not installed). Only ``fail`` fails a run, unless the run
is strict; ``skipped`` and ``not_available`` are always shown, never counted as a pass.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from include.ops.maintenance.probes import mlflow_reachable
from include.ops.settings import Settings
from model.fsio import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

PASS, WARN, FAIL, SKIPPED, NOT_AVAILABLE = "pass", "warn", "fail", "skipped", "not_available"
STATUSES = (PASS, WARN, FAIL, SKIPPED, NOT_AVAILABLE)
ICONS = {PASS: "✅", WARN: "⚠️", FAIL: "❌", SKIPPED: "⏭️", NOT_AVAILABLE: "➖"}
MAINTENANCE_EXPERIMENT_SUFFIX = "-maintenance"


@dataclass
class CheckResult:
    """Outcome of one maintenance check: status, a one-line summary and details for the report."""

    name: str
    status: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status of check {self.name!r} must be one of {STATUSES}, got {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (XCom, report)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        """Inverse of ``to_dict``."""
        return cls(**data)


def run_check(name: str, fn: Callable[..., CheckResult], *args: Any, **kwargs: Any) -> CheckResult:
    """Run one check, timing it; an exception becomes a ``fail`` result that carries the traceback."""
    start = time.perf_counter()
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:
        log.exception("maintenance check %s crashed", name)
        result = CheckResult(
            name, FAIL, f"check crashed: {type(exc).__name__}: {exc}", {"traceback": traceback.format_exc()}
        )
    result.name = name
    result.duration_s = round(time.perf_counter() - start, 3)
    log.info("check %s: %s - %s", name, result.status, result.summary)
    return result


def overall_status(checks: list[CheckResult], strict: bool = False) -> str:
    """``fail`` if any check failed (or, when strict, was skipped/not available); ``warn`` if any is not a pass."""
    statuses = {c.status for c in checks}
    if FAIL in statuses or (strict and statuses & {SKIPPED, NOT_AVAILABLE}):
        return FAIL
    return WARN if statuses - {PASS} else PASS


@dataclass
class MaintenanceReport:
    """All checks of one maintenance run."""

    kind: str  # maintenance_daily / maintenance_weekly / maintenance_monthly
    run_id: str
    started_at: float
    checks: list[CheckResult]
    strict: bool = False
    finished_at: float = field(default_factory=time.time)
    artifacts: list[str] = field(default_factory=list)  # extra files (plots) written by checks

    @property
    def status(self) -> str:
        """Overall status (see ``overall_status``)."""
        return overall_status(self.checks, self.strict)

    @property
    def failed(self) -> list[CheckResult]:
        """Checks that make the run fail."""
        bad = {FAIL, SKIPPED, NOT_AVAILABLE} if self.strict else {FAIL}
        return [c for c in self.checks if c.status in bad]

    def to_dict(self) -> dict[str, Any]:
        """The JSON report."""
        return {
            "kind": self.kind,
            "run_id": self.run_id,
            "status": self.status,
            "strict": self.strict,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": round(self.finished_at - self.started_at, 3),
            "counts": {s: sum(c.status == s for c in self.checks) for s in STATUSES},
            "checks": [c.to_dict() for c in self.checks],
            "artifacts": self.artifacts,
        }

    def to_markdown(self) -> str:
        """The human report: a summary table, then each check's details."""
        when = datetime.fromtimestamp(self.started_at, UTC).isoformat(timespec="seconds")
        lines = [
            f"# {self.kind} — {ICONS[self.status]} {self.status.upper()}",
            "",
            f"- run: `{self.run_id}`",
            f"- started: {when} ({self.finished_at - self.started_at:.1f} s)",
            f"- strict: {self.strict}",
            "",
            "| check | status | summary |",
            "|---|---|---|",
        ]
        for c in self.checks:
            lines.append(f"| {c.name} | {ICONS[c.status]} {c.status} | {c.summary.replace('|', '/')} |")
        for c in self.checks:
            lines += ["", f"## {c.name}: {c.status}", "", c.summary, ""]
            if c.details:
                lines += ["```json", json.dumps(c.details, indent=2, default=str)[:20000], "```"]
        if self.artifacts:
            lines += ["", "## Artifacts", ""] + [f"- `{a}`" for a in self.artifacts]
        return "\n".join(lines) + "\n"


def write_report(report: MaintenanceReport, reports_dir: Path) -> tuple[Path, Path]:
    """Write ``<kind>_<UTC stamp>.md`` and ``.json`` atomically under ``reports_dir/maintenance``."""
    folder = reports_dir / "maintenance"
    stamp = datetime.fromtimestamp(report.started_at, UTC).strftime("%Y%m%dT%H%M%SZ")
    base = folder / f"{report.kind}_{stamp}"
    atomic_write_text(base.with_suffix(".md"), report.to_markdown())
    atomic_write_json(base.with_suffix(".json"), report.to_dict())
    return base.with_suffix(".md"), base.with_suffix(".json")


def log_to_mlflow(report: MaintenanceReport, paths: Settings, files: list[Path]) -> str | None:
    """Record the run (status counts, report files) in the maintenance experiment; None if unreachable."""
    ok, reason = mlflow_reachable(paths.mlflow_tracking_uri)
    if not ok:
        log.warning("maintenance report not logged to MLflow: %s", reason)
        return None
    from include.ops import tracking

    client = tracking.mlflow_client(paths)
    name = paths.mlflow_experiment + MAINTENANCE_EXPERIMENT_SUFFIX
    exp = client.get_experiment_by_name(name)
    if exp is None:
        location = None
        if paths.mlflow_tracking_uri.startswith("sqlite:///"):
            db = Path(paths.mlflow_tracking_uri.removeprefix("sqlite:///"))
            location = (db.parent / "artifacts").resolve().as_uri()
        exp_id = client.create_experiment(name, artifact_location=location)
    else:
        exp_id = exp.experiment_id
    data = report.to_dict()
    run = client.create_run(
        exp_id,
        run_name=f"{report.kind} {report.run_id}",
        tags={"ct.maintenance": report.kind, "ct.dag_run_id": report.run_id, "ct.status": report.status},
    )
    for status, count in data["counts"].items():
        client.log_metric(run.info.run_id, f"checks.{status}", count)
    client.log_metric(run.info.run_id, "duration_s", data["duration_s"])
    for path in files:
        client.log_artifact(run.info.run_id, str(path), artifact_path="report")
    client.set_terminated(run.info.run_id, status="FAILED" if report.status == FAIL else "FINISHED")
    return run.info.run_id


def alert_payload(report: MaintenanceReport, report_path: Path | None = None) -> dict[str, Any]:
    """Webhook body (``text`` as the runbook's health_check.sh sends, plus structured fields)."""
    bad = [c for c in report.checks if c.status != PASS]
    text = f"{report.kind} {report.status.upper()}: " + "; ".join(f"{c.name}: {c.summary}" for c in bad)
    return {
        "text": text[:3000],
        "kind": report.kind,
        "status": report.status,
        "run_id": report.run_id,
        "checks": {c.name: c.status for c in report.checks},
        "report": str(report_path) if report_path else None,
    }
