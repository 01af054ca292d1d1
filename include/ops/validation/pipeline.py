"""Validate landed task batches end to end: pre-checks -> GX suite -> validated store, or quarantine + alert.

``validate_landed_file`` is the whole contract for one file; ``scan_landing``/``validate_batch`` split it for
Airflow (list, then one mapped task per file); ``validate_landing_zone`` runs everything for the CLI.
Outcomes: ``validated`` (copied to the store, indexed), ``rejected`` (quarantined with its report, alert
written, metrics pushed) or ``skipped`` (this content is already validated). Errors of the setup (no
manifest, broken suite) raise instead: they are not the file's fault and must not quarantine it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from include.ops.settings import Settings, get_settings
from include.ops.validation import alerts
from include.ops.validation.config import MANIFEST_NAME, SUITE_NAME, ValidationConfig, get_validation_config
from include.ops.validation.fsutil import atomic_write_json, sha256_file
from include.ops.validation.landing import LandedFile, LocalLanding, S3Landing, get_landing
from include.ops.validation.prechecks import PrecheckFailure
from include.ops.validation.store import (
    check_manifest_compatible,
    check_not_conflicting,
    find_validated,
    publish_validated,
    quarantine,
    read_index,
    utc_now,
)

log = logging.getLogger(__name__)
LEAKAGE_TYPE = "expect_table_train_rows_to_be_disjoint_from_test_rows"


class ValidationSetupError(RuntimeError):
    """Validation cannot run (no or malformed manifest, unreadable suite); no file is judged."""


@dataclass
class BatchResult:
    """Outcome of one landed file; ``asset_extra()`` is the ``validated_task_batch`` event extra."""

    name: str
    status: str  # validated | rejected | skipped
    checksum: str
    size_bytes: int
    source: str
    task_id: str | None = None
    rows: int | None = None
    stage: str | None = None  # precheck | expectations | publish (rejected only)
    failed_checks: list[str] = field(default_factory=list)
    reason: str = ""
    path: str | None = None  # validated copy, or the quarantined file
    report_path: str | None = None
    data_docs: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def asset_extra(self) -> dict[str, Any]:
        """``{task_id, path, checksum, rows, summary}`` of a validated batch (JSON-serialisable)."""
        if self.status != "validated":
            raise ValueError(f"{self.name} is {self.status}, only validated batches emit an asset event")
        return {
            "task_id": self.task_id,
            "path": self.path,
            "checksum": self.checksum,
            "rows": self.rows,
            "summary": self.summary,
        }

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-serialisable."""
        return asdict(self)


def staging_dir(settings: Settings) -> Path:
    """Local folder for S3 objects being validated (copies only; originals stay in S3)."""
    return settings.var_dir / "staging" / "landing"


def _load_manifest(path: Path):
    from model.data import load_manifest

    try:
        return load_manifest(path)
    except ValueError as exc:
        raise ValidationSetupError(str(exc)) from exc


def precheck_result(failure: PrecheckFailure, name: str) -> dict[str, Any]:
    """A pre-check failure in GX's validation-result layout, so every report reads the same way."""
    return {
        "success": False,
        "results": [
            {
                "success": False,
                "expectation_config": {
                    "type": f"precheck.{failure.check}",
                    "kwargs": {"file_name": name},
                    "meta": {"check": failure.check},
                },
                "result": {"observed_value": failure.observed or None, "details": failure.detail},
                "exception_info": {
                    "raised_exception": False,
                    "exception_message": None,
                    "exception_traceback": None,
                },
            }
        ],
        "statistics": {
            "evaluated_expectations": 1,
            "successful_expectations": 0,
            "unsuccessful_expectations": 1,
        },
    }


def leakage_result(report: dict[str, Any], validated_dir: Path) -> dict[str, Any]:
    """A commit-time leakage finding in GX's validation-result layout (same type as the suite's expectation)."""
    return {
        "success": False,
        "results": [
            {
                "success": False,
                "expectation_config": {
                    "type": LEAKAGE_TYPE,
                    "kwargs": {"reference_dir": str(validated_dir)},
                    "meta": {"check": "leakage", "stage": "publish"},
                },
                "result": {"observed_value": report.get("leaked_rows"), "details": report},
                "exception_info": {
                    "raised_exception": False,
                    "exception_message": None,
                    "exception_traceback": None,
                },
            }
        ],
        "statistics": {
            "evaluated_expectations": 1,
            "successful_expectations": 0,
            "unsuccessful_expectations": 1,
        },
    }


def _reject(
    path: Path,
    base: BatchResult,
    settings: Settings,
    *,
    stage: str,
    failed: list[str],
    reason: str,
    result: dict[str, Any],
    move: bool,
    data_docs: str | None = None,
) -> BatchResult:
    check = failed[0] if failed else stage
    report = {
        "name": base.name,
        "source": base.source,
        "sha256": base.checksum,
        "size_bytes": base.size_bytes,
        "task_id": base.task_id,
        "rows": base.rows,
        "status": "rejected",
        "stage": stage,
        "check": check,
        "failed_checks": failed,
        "reason": reason,
        "suite": SUITE_NAME,
        "data_docs": data_docs,
        "validated_at": utc_now(),
        "result": result,
    }
    qfile, qreport = quarantine(path, base.name, base.checksum, report, settings.quarantine_dir, move=move)
    out = BatchResult(
        **{
            **base.to_dict(),
            "status": "rejected",
            "stage": stage,
            "failed_checks": failed,
            "reason": reason,
            "path": str(qfile),
            "report_path": str(qreport),
            "data_docs": data_docs,
        }
    )
    alerts.record(
        settings.log_dir,
        "ERROR",
        f"{base.name} rejected by data validation: {reason}",
        alert=alerts.ALERT_NAME,
        file=base.name,
        source=base.source,
        sha256=base.checksum,
        stage=stage,
        check=check,
        failed_checks=failed,
        quarantined=str(qfile),
        report=str(qreport),
    )
    alerts.push_metrics(settings.validated_dir, settings.quarantine_dir, failed_now=True)
    return out


def _summary(frame, spec, manifest, outcome, report_path: Path, source: str) -> dict[str, Any]:
    counts = frame["label"].value_counts().sort_index()
    split = frame["split"].value_counts()
    stats = outcome.statistics
    return {
        "task_index": manifest.index(spec.task_id),
        "classes": list(spec.classes),
        "class_counts": {str(int(k)): int(v) for k, v in counts.items()},
        "train_rows": int(split.get("train", 0)),
        "test_rows": int(split.get("test", 0)),
        "expectations_evaluated": int(stats.get("evaluated_expectations", 0)),
        "expectations_successful": int(stats.get("successful_expectations", 0)),
        **{k: outcome.observed.get(k) for k in ("duplicate_rows", "leaked_rows", "max_class_share")},
        "suite": SUITE_NAME,
        "report": str(report_path),
        "data_docs": outcome.data_docs,
        "source": source,
        "validated_at": utc_now(),
    }


def validate_landed_file(
    path: Path,
    name: str | None = None,
    *,
    manifest_path: Path,
    source: str | None = None,
    settings: Settings | None = None,
    config: ValidationConfig | None = None,
    move_on_reject: bool = True,
    build_docs: bool | None = None,
) -> BatchResult:
    """Validate the file at ``path`` (landed as ``name``) against the manifest's task; store or quarantine it.

    A rejected file is moved (``move_on_reject``) or copied into the quarantine with its report; the
    validated store is only touched by a passing file. Raises ValidationSetupError for a bad manifest.
    """
    from include.ops.validation.gx_suite import docs_folder_name, run_suite
    from include.ops.validation.leakage import leakage_report
    from include.ops.validation.prechecks import read_batch

    settings = settings or get_settings()
    config = config or get_validation_config()
    started = time.perf_counter()
    path = Path(path)
    name = name if name is not None else path.name
    base = BatchResult(
        name=name,
        status="",
        checksum=sha256_file(path),
        size_bytes=path.stat().st_size,
        source=source or str(path),
    )
    hit = find_validated(settings.validated_dir, base.checksum)
    if hit is not None:
        alerts.record(
            settings.log_dir,
            "INFO",
            f"{name} skipped: identical to validated {hit[0]}",
            file=name,
            sha256=base.checksum,
            validated_as=hit[0],
        )
        return BatchResult(
            **{
                **base.to_dict(),
                "status": "skipped",
                "task_id": hit[1].get("task_id"),
                "rows": hit[1].get("rows"),
                "path": hit[1].get("path"),
                "reason": f"already validated as {hit[0]}",
            }
        )
    manifest = _load_manifest(manifest_path)
    try:
        spec, frame = read_batch(path, name, manifest, config.max_bytes)
        base.task_id, base.rows = spec.task_id, len(frame)
        check_not_conflicting(settings.validated_dir, name, base.checksum)
        check_manifest_compatible(settings.validated_dir, manifest_path)
    except PrecheckFailure as failure:
        base.seconds = time.perf_counter() - started
        return _reject(
            path,
            base,
            settings,
            stage="precheck",
            failed=[f"precheck.{failure.check}"],
            reason=f"pre-check {failure.check} failed: {failure.detail}",
            result=precheck_result(failure, name),
            move=move_on_reject,
        )

    want_docs = config.build_data_docs if build_docs is None else build_docs
    outcome = run_suite(
        frame,
        file_name=name,
        task_classes=spec.classes,
        validated_dir=settings.validated_dir,
        config=config,
        docs_name=docs_folder_name(name, base.checksum) if want_docs else None,
    )
    if not outcome.success:
        base.seconds = time.perf_counter() - started
        return _reject(
            path,
            base,
            settings,
            stage="expectations",
            failed=outcome.failed_types,
            reason=outcome.reason(),
            result=outcome.result,
            move=move_on_reject,
            data_docs=outcome.data_docs,
        )

    seen = set(outcome.observed.get("leakage_references") or [])

    def recheck(store_files: list[Path]) -> None:
        """Leakage against task files validated while this batch was being checked."""
        late = [p for p in store_files if p.name not in seen]
        if not late:
            return
        report = leakage_report(frame, late)
        if report["leaked_rows"]:
            raise PrecheckFailure(
                LEAKAGE_TYPE,
                f"{report['leaked_rows']} rows equal rows of the other split in "
                f"{sorted(report['by_reference'])} (validated concurrently)",
                report,
            )

    report_path = settings.reports_dir / "data_validation" / f"{Path(name).stem}-{base.checksum[:12]}.json"
    summary = _summary(frame, spec, manifest, outcome, report_path, base.source)
    entry = {
        "task_id": spec.task_id,
        "rows": len(frame),
        "validated_at": summary["validated_at"],
        "source": base.source,
        "report": str(report_path),
    }
    try:
        stored, new = publish_validated(
            path, name, base.checksum, manifest_path, settings.validated_dir, entry, recheck=recheck
        )
    except PrecheckFailure as failure:
        base.seconds = time.perf_counter() - started
        if failure.check == LEAKAGE_TYPE:
            kind, result = LEAKAGE_TYPE, leakage_result(failure.observed, settings.validated_dir)
        else:
            kind, result = f"precheck.{failure.check}", precheck_result(failure, name)
        return _reject(
            path,
            base,
            settings,
            stage="publish",
            failed=[kind],
            reason=f"{kind} failed: {failure.detail}",
            result=result,
            move=move_on_reject,
            data_docs=outcome.data_docs,
        )
    base.seconds = time.perf_counter() - started
    if not new:
        return BatchResult(
            **{
                **base.to_dict(),
                "status": "skipped",
                "path": str(stored),
                "reason": "validated concurrently by another run",
            }
        )
    atomic_write_json(
        report_path,
        {
            "name": name,
            "source": base.source,
            "sha256": base.checksum,
            "status": "validated",
            "task_id": spec.task_id,
            "rows": len(frame),
            "summary": summary,
            "result": outcome.result,
        },
    )
    result = BatchResult(
        **{
            **base.to_dict(),
            "status": "validated",
            "path": str(stored),
            "report_path": str(report_path),
            "data_docs": outcome.data_docs,
            "summary": summary,
        }
    )
    alerts.record(
        settings.log_dir,
        "INFO",
        f"{name} validated as {spec.task_id} ({len(frame)} rows)",
        file=name,
        sha256=base.checksum,
        task_id=spec.task_id,
        path=str(stored),
        rows=len(frame),
    )
    alerts.push_metrics(settings.validated_dir, settings.quarantine_dir, failed_now=False)
    return result


def landing_manifest(landing: LocalLanding | S3Landing, settings: Settings) -> Path:
    """The manifest to validate against: the landing zone's, else the validated store's; else raise."""
    path = landing.manifest_path(staging_dir(settings))
    if path is None:
        stored = settings.validated_dir / MANIFEST_NAME
        if not stored.exists():
            raise ValidationSetupError(
                f"no {MANIFEST_NAME} in the landing zone {landing.describe()} nor in {settings.validated_dir}: "
                "land the task manifest beside the batches"
            )
        path = stored
    _load_manifest(path)
    return path


def scan_landing(
    settings: Settings | None = None, config: ValidationConfig | None = None
) -> tuple[list[LandedFile], list[tuple[LandedFile, str]]]:
    """Files of the landing zone to validate (with checksums) and those skipped with the reason."""
    settings = settings or get_settings()
    config = config or get_validation_config()
    landing = get_landing(settings, config)
    items = landing.list_files()
    if not items:
        return [], []
    landing_manifest(landing, settings)
    validated = {e.get("sha256"): n for n, e in read_index(settings.validated_dir).get("files", {}).items()}
    todo, skipped = [], []
    for item in items:
        local, staged = landing.fetch(item, staging_dir(settings))
        try:
            checksum = sha256_file(local)
        finally:
            if staged:
                local.unlink(missing_ok=True)
        item = LandedFile(item.name, item.location, item.size, checksum)
        if checksum in validated:
            skipped.append((item, f"already validated as {validated[checksum]}"))
            log.info("skip %s: already validated as %s (sha256 %s)", item.name, validated[checksum], checksum)
        else:
            todo.append(item)
    return todo, skipped


def validate_batch(
    item: LandedFile | dict[str, Any],
    settings: Settings | None = None,
    config: ValidationConfig | None = None,
    build_docs: bool | None = None,
) -> BatchResult:
    """Fetch one landed file (local or S3), validate it, and move a rejected S3 object to the quarantine prefix."""
    settings = settings or get_settings()
    config = config or get_validation_config()
    item = item if isinstance(item, LandedFile) else LandedFile.from_dict(item)
    landing = get_landing(settings, config)
    manifest = landing_manifest(landing, settings)
    local, staged = landing.fetch(item, staging_dir(settings))
    if not local.exists():
        raise FileNotFoundError(
            f"landed file {item.location} is gone (validated or quarantined by another run?)"
        )
    try:
        result = validate_landed_file(
            local,
            item.name,
            manifest_path=manifest,
            source=item.location,
            settings=settings,
            config=config,
            build_docs=build_docs,
        )
        if result.status == "rejected" and result.path is not None:
            moved = landing.quarantine_source(item, Path(result.path).parent.name)
            if moved:
                result.summary["quarantined_object"] = moved
    finally:
        if staged:
            local.unlink(missing_ok=True)
    return result


def validate_landing_zone(
    settings: Settings | None = None, config: ValidationConfig | None = None, build_docs: bool | None = None
) -> list[BatchResult]:
    """Validate every new file of the landing zone one by one; skipped files are reported, not re-validated."""
    settings = settings or get_settings()
    config = config or get_validation_config()
    todo, skipped = scan_landing(settings, config)
    results = [
        BatchResult(
            name=i.name,
            status="skipped",
            checksum=i.checksum or "",
            size_bytes=i.size,
            source=i.location,
            reason=why,
        )
        for i, why in skipped
    ]
    for item in todo:
        results.append(validate_batch(item, settings, config, build_docs=build_docs))
    return results
