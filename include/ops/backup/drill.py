"""Disaster-recovery drill: restore a backup into a scratch folder, verify it like a real recovery, measure it.

Live state is never touched. The drill records how long a restore to a validated system takes (RTO) and
how old the backup is (RPO) in a JSON report under ``reports_dir`` and, when ``PUSHGATEWAY_URL`` is set,
as Prometheus metrics.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from include.ops.backup.catalog import load_manifest, resolve_backup
from include.ops.backup.layout import BackupError, ProgressFn
from include.ops.backup.restore import restore_backup
from include.ops.backup.s3 import S3Store
from include.ops.backup.target import RestoreTarget
from include.ops.backup.validate import validate_restore
from include.ops.metrics import push_job_metrics, pushgateway_url
from include.ops.settings import Settings, get_settings
from model.fsio import atomic_write_bytes

log = logging.getLogger(__name__)

DR_RESTORE_SECONDS = "continual_transformer_dr_restore_seconds"
BACKUP_AGE_SECONDS = "continual_transformer_backup_age_seconds"
BACKUP_LAST_SUCCESS = "continual_transformer_backup_last_success_timestamp_seconds"
DRILL_JOB = "dr_drill"
DRILL_PERIOD_S = 7 * 86400.0  # weekly, runbook "Test disaster recovery procedures"


class DrillFailed(BackupError):
    """The drill could not restore or validate the backup; ``report`` holds the details (also on disk)."""

    def __init__(self, report: DrillReport) -> None:
        super().__init__(f"DR drill of backup {report.backup_id} failed: " + "; ".join(report.problems))
        self.report = report


@dataclass
class DrillReport:
    """Outcome of one drill; ``restore_seconds`` is the RTO measured, ``backup_age_seconds`` the RPO."""

    backup_id: str | None
    source: str
    ok: bool = False
    started_at: str = ""
    finished_at: str = ""
    backup_created_at: str | None = None
    backup_completed_at: str | None = None
    backup_age_seconds: float | None = None
    restore_seconds: float | None = None  # verify + stage + swap + validation: time to a validated system
    verify_restore_seconds: float | None = None  # verify + stage + swap only
    files: int = 0
    bytes: int = 0
    validation: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    report_path: str | None = None
    metrics_pushed: bool = False
    skipped: list[dict[str, Any]] = field(default_factory=list)  # newer backups ``latest`` passed over

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for XCom and the CLI."""
        return asdict(self)


def push_drill_metrics(report: DrillReport) -> bool:
    """Push RTO, RPO and the drilled backup's completion time to ``PUSHGATEWAY_URL`` (job ``dr_drill``)."""
    url = pushgateway_url()
    if not url:
        log.info("PUSHGATEWAY_URL is not set: drill metrics only in %s", report.report_path)
        return False
    from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway

    registry = CollectorRegistry()
    if report.restore_seconds is not None:
        Gauge(DR_RESTORE_SECONDS, "Time to restore and validate the latest backup in the DR drill (RTO)",
              registry=registry).set(report.restore_seconds)  # fmt: skip
    if report.backup_age_seconds is not None:
        Gauge(BACKUP_AGE_SECONDS, "Age of the backup the DR drill restored (RPO)", registry=registry).set(
            report.backup_age_seconds
        )
    if report.ok and report.backup_completed_at:
        Gauge(BACKUP_LAST_SUCCESS, "Unix time of the newest backup proven restorable", registry=registry).set(
            datetime.fromisoformat(report.backup_completed_at).timestamp()
        )
    pushed = False
    try:
        pushadd_to_gateway(url, job=DRILL_JOB, registry=registry, timeout=5.0)
        pushed = True
    except Exception as exc:  # metrics must never turn a drill result into a different failure
        log.warning("push of drill metrics failed: %s", type(exc).__name__)
    push_job_metrics(DRILL_JOB, float(report.restore_seconds or 0.0), report.ok, DRILL_PERIOD_S)
    return pushed


def dr_drill(
    backup_id: str | None = None,
    source: str = "local",
    settings: Settings | None = None,
    store: S3Store | None = None,
    scratch_dir: Path | None = None,
    keep_scratch: bool = False,
    progress: ProgressFn | None = None,
) -> DrillReport:
    """Restore ``backup_id`` (None: latest complete) into scratch, validate it, report RTO/RPO; DrillFailed if bad.

    The JSON report is written to ``<reports_dir>/dr_drill_<time>.json`` whatever the outcome.
    """
    settings = settings or get_settings()
    now = datetime.now(UTC)
    report = DrillReport(backup_id=None, source=source, started_at=now.isoformat())
    base = Path(scratch_dir) if scratch_dir else settings.var_dir
    base.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="dr-drill-", dir=base))
    started = time.monotonic()
    try:
        report.backup_id, report.skipped = resolve_backup(backup_id, settings, source, store)
        manifest = load_manifest(report.backup_id, settings, source, store)
        report.backup_created_at, report.backup_completed_at = manifest.created_at, manifest.completed_at
        report.backup_age_seconds = round((now - manifest.created).total_seconds(), 3)
        target = RestoreTarget.scratch(scratch)
        result = restore_backup(report.backup_id, source, settings, store, target=target, progress=progress)
        report.verify_restore_seconds = result.seconds
        report.files, report.bytes = result.files, result.bytes
        validation = validate_restore(
            report.backup_id,
            source,
            settings,
            target,
            backup_root=Path(result.backup_root),
            raise_on_error=False,
        )
        report.restore_seconds = round(time.monotonic() - started, 3)
        report.validation = validation.to_dict()
        report.problems += validation.problems
        report.ok = validation.ok
    except (BackupError, ValueError, OSError) as exc:
        report.problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        report.finished_at = datetime.now(UTC).isoformat()
        if not keep_scratch:
            shutil.rmtree(scratch, ignore_errors=True)
        report.metrics_pushed = push_drill_metrics(report)
        _write_report(settings, report)
    if not report.ok:
        log.error("DR drill failed: %s", report.problems)
        raise DrillFailed(report)
    log.info(
        "DR drill of %s passed: RTO %.1fs, RPO %.0fs, report %s",
        report.backup_id, report.restore_seconds, report.backup_age_seconds, report.report_path,
    )  # fmt: skip
    return report


def _write_report(settings: Settings, report: DrillReport) -> Path:
    """Write the report to ``dr_drill_<time>.json`` and ``dr_drill_latest.json`` in ``reports_dir``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = settings.reports_dir / f"dr_drill_{stamp}.json"
    report.report_path = str(path)
    atomic_write_bytes(path, (json.dumps(report.to_dict(), indent=2) + "\n").encode())
    atomic_write_bytes(settings.reports_dir / "dr_drill_latest.json", path.read_bytes())
    return path
