"""Validate one landed file, stage by stage: identify -> pre-checks -> suite -> stream checks (rows repeating
another task's, image statistics) -> publish (with the commit-time leakage and duplicate re-checks) -> indexed,
stored and reported, or quarantined and alerted.

``validate_landed_file`` is the whole contract for one file and reads as its stages, each a function below.
Outcomes: ``validated`` (copied to the store, indexed), ``rejected`` (quarantined with its report, alert
written, metrics pushed) or ``skipped`` (this content is already validated). Errors of the setup (no
manifest, broken suite) raise instead: they are not the file's fault and must not quarantine it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.ops.settings import Settings, get_settings
from include.ops.validation import alerts, gx_suite, image_stats, row_index
from include.ops.validation.config import FILE_MODE, ValidationConfig, get_validation_config
from include.ops.validation.leakage import leakage_report
from include.ops.validation.outcome import (
    LEAKAGE_TYPE,
    BatchResult,
    Rejection,
    ValidationSetupError,
    batch_summary,
    precheck_rejection,
    publish_rejection,
    rejection_report,
    stream_rejection,
    suite_rejection,
)
from include.ops.validation.prechecks import PrecheckFailure, read_batch
from include.ops.validation.store import (
    check_manifest_compatible,
    check_not_conflicting,
    find_validated,
    publish_validated,
    quarantine,
)
from model.fsio import atomic_write_json, sha256_file

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from model.data import TaskManifest, TaskSpec


def load_task_manifest(path: Path, settings: Settings | None = None) -> TaskManifest:
    """The manifest batches are judged against, held to the schema and the stream's class capacity.

    ValidationSetupError naming the manifest and each problem when it is refused (a setup input: no batch is
    judged). Validating the first manifest of a stream records its capacity in the learner state.
    """
    from include.ops.task_manifest import record_stream_capacity, stream_capacity
    from include.ops.validation.manifest_schema import load_landing_manifest

    settings = settings or get_settings()
    try:
        manifest = load_landing_manifest(path, stream_capacity(settings).num_classes)
        record_stream_capacity(settings)
    except ValueError as exc:  # ManifestRefused, or a garbled capacity record naming its file
        raise ValidationSetupError(str(exc)) from exc
    return manifest


def identify(path: Path, name: str | None = None, source: str | None = None) -> BatchResult:
    """The landed file as a result still to be judged: its name, sha256, size and where it came from."""
    path = Path(path)
    return BatchResult(
        name=name if name is not None else path.name,
        status="",
        checksum=sha256_file(path),
        size_bytes=path.stat().st_size,
        source=source or str(path),
    )


def already_validated(base: BatchResult, settings: Settings) -> BatchResult | None:
    """``skipped`` (and an INFO record) when this content is in the validated store already; else None."""
    hit = find_validated(settings.validated_dir, base.checksum)
    if hit is None:
        return None
    stored_as, entry = hit
    alerts.record(
        settings.log_dir,
        "INFO",
        f"{base.name} skipped: identical to validated {stored_as}",
        file=base.name,
        sha256=base.checksum,
        validated_as=stored_as,
    )
    return base.replace(
        status="skipped",
        task_id=entry.get("task_id"),
        rows=entry.get("rows"),
        path=entry.get("path"),
        reason=f"already validated as {stored_as}",
    )


def precheck(
    path: Path,
    base: BatchResult,
    manifest: TaskManifest,
    manifest_path: Path,
    settings: Settings,
    config: ValidationConfig,
) -> tuple[TaskSpec, pd.DataFrame]:
    """File pre-checks (name, size, bytes, CSV), then the store's (immutable names, stable manifest).

    Fills ``base.task_id`` and ``base.rows`` once the file is read; raises PrecheckFailure.
    """
    spec, frame = read_batch(path, base.name, manifest, config.max_bytes)
    base.task_id, base.rows = spec.task_id, len(frame)
    check_not_conflicting(settings.validated_dir, base.name, base.checksum)
    check_manifest_compatible(settings.validated_dir, manifest)
    return spec, frame


def run_expectations(
    frame: pd.DataFrame,
    base: BatchResult,
    spec: TaskSpec,
    settings: Settings,
    config: ValidationConfig,
    build_docs: bool | None = None,
) -> gx_suite.SuiteOutcome:
    """The committed suite on the batch; data docs when ``build_docs`` (None: the config's default)."""
    want_docs = config.build_data_docs if build_docs is None else build_docs
    return gx_suite.run_suite(
        frame,
        file_name=base.name,
        task_classes=spec.classes,
        validated_dir=settings.validated_dir,
        config=config,
        docs_name=gx_suite.docs_folder_name(base.name, base.checksum) if want_docs else None,
    )


def duplicate_rows_check(
    pixels: np.ndarray, base: BatchResult, settings: Settings
) -> tuple[np.ndarray, dict]:
    """(row digests, report): PrecheckFailure ``duplicate_rows`` when the batch repeats another task's images."""
    hashes = row_index.row_hashes(pixels)
    index = row_index.load(settings.validated_dir)
    share = settings.validation_max_duplicate_share
    return hashes, row_index.check_duplicates(hashes, index, base.name, base.task_id, share)


def image_distribution_check(pixels: np.ndarray, base: BatchResult, settings: Settings) -> tuple[dict, dict]:
    """(report, the batch's counts): PrecheckFailure ``image_distribution`` when unlike the stream (mode fail)."""
    limits = image_stats.ImageLimits.from_settings(settings)
    if limits.mode == "off":
        return {"mode": "off"}, image_stats.sufficient_stats(pixels)
    report, counts = image_stats.distribution_report(pixels, settings.validated_dir, base.name, limits)
    image_stats.check_distribution(report)
    if report["failed"]:
        alerts.record(
            settings.log_dir,
            "WARNING",
            f"{base.name}: images unlike the stream's ({', '.join(report['failed'])}); passed (mode warn)",
            file=base.name,
            sha256=base.checksum,
            check=image_stats.CHECK,
            failed_measures=report["failed"],
        )
    return report, counts


def late_duplicate_check(
    hashes: np.ndarray, base: BatchResult, settings: Settings, then: Callable[[list[Path]], None]
) -> Callable[[list[Path]], None]:
    """The commit-time re-check (under the store lock): ``then``, and the row index again (concurrent batches)."""

    def recheck(store_files: list[Path]) -> None:
        then(store_files)
        index = row_index.load(settings.validated_dir)
        share = settings.validation_max_duplicate_share
        row_index.check_duplicates(hashes, index, base.name, base.task_id, share)

    return recheck


def index_published(base: BatchResult, hashes: np.ndarray, counts: dict, settings: Settings) -> None:
    """Add a published batch to the store's row index and image statistics (a failure here is reconciled later)."""
    try:
        row_index.record(settings.validated_dir, base.name, hashes)
        image_stats.record(settings.validated_dir, base.name, counts)
    except OSError as exc:
        alerts.record(settings.log_dir, "WARNING", f"{base.name}: store indexes not updated ({exc})")


def late_leakage_check(frame: pd.DataFrame, references_seen: list[str]) -> Callable[[list[Path]], None]:
    """The commit-time re-check: leakage against store files the suite did not see (validated meanwhile)."""
    seen = set(references_seen)

    def recheck(store_files: list[Path]) -> None:
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

    return recheck


def report_path_for(settings: Settings, base: BatchResult) -> Path:
    """Where the validation report of a passing batch is written."""
    return settings.reports_dir / "data_validation" / f"{Path(base.name).stem}-{base.checksum[:12]}.json"


def publish(
    path: Path,
    base: BatchResult,
    manifest_path: Path,
    settings: Settings,
    summary: dict[str, Any],
    recheck: Callable[[list[Path]], None],
) -> tuple[Path, bool]:
    """Copy the batch and the manifest into the validated store, indexed; (stored path, newly published)."""
    entry = {
        "task_id": base.task_id,
        "rows": base.rows,
        "validated_at": summary["validated_at"],
        "source": base.source,
        "report": summary["report"],
    }
    return publish_validated(
        path, base.name, base.checksum, manifest_path, settings.validated_dir, entry, recheck=recheck
    )


def reject(
    path: Path, base: BatchResult, rejection: Rejection, settings: Settings, move: bool
) -> BatchResult:
    """Quarantine the file (moved, or copied) with its report, write the alert, push the metrics."""
    report = rejection_report(base, rejection)
    qfile, qreport = quarantine(path, base.name, base.checksum, report, settings.quarantine_dir, move=move)
    return announce_rejection(base, rejection, qfile, qreport, settings)


def announce_rejection(
    base: BatchResult, rejection: Rejection, qfile: Path, qreport: Path, settings: Settings
) -> BatchResult:
    """After the quarantine: the ERROR alert record, the failure metrics, and the ``rejected`` result."""
    alerts.record(
        settings.log_dir,
        "ERROR",
        f"{base.name} rejected by data validation: {rejection.reason}",
        alert=alerts.ALERT_NAME,
        file=base.name,
        source=base.source,
        sha256=base.checksum,
        stage=rejection.stage,
        check=rejection.failed[0] if rejection.failed else rejection.stage,
        failed_checks=rejection.failed,
        quarantined=str(qfile),
        report=str(qreport),
    )
    alerts.push_metrics(settings.validated_dir, settings.quarantine_dir, failed_now=True)
    return base.replace(
        status="rejected",
        stage=rejection.stage,
        failed_checks=rejection.failed,
        reason=rejection.reason,
        path=str(qfile),
        report_path=str(qreport),
        data_docs=rejection.data_docs,
    )


def record_validated(
    base: BatchResult,
    stored: Path,
    report_path: Path,
    summary: dict[str, Any],
    outcome: gx_suite.SuiteOutcome,
    settings: Settings,
) -> BatchResult:
    """Write the report of a newly stored batch, its INFO record and the metrics; the ``validated`` result."""
    atomic_write_json(
        report_path,
        {
            "name": base.name,
            "source": base.source,
            "sha256": base.checksum,
            "status": "validated",
            "task_id": base.task_id,
            "rows": base.rows,
            "summary": summary,
            "result": outcome.result,
        },
        FILE_MODE,
    )
    alerts.record(
        settings.log_dir,
        "INFO",
        f"{base.name} validated as {base.task_id} ({base.rows} rows)",
        file=base.name,
        sha256=base.checksum,
        task_id=base.task_id,
        path=str(stored),
        rows=base.rows,
    )
    alerts.push_metrics(settings.validated_dir, settings.quarantine_dir, failed_now=False)
    return base.replace(
        status="validated",
        path=str(stored),
        report_path=str(report_path),
        data_docs=outcome.data_docs,
        summary=summary,
    )


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
    settings = settings or get_settings()
    config = config or get_validation_config(settings)
    started = time.perf_counter()
    path = Path(path)
    base = identify(path, name, source)
    skipped = already_validated(base, settings)
    if skipped is not None:
        return skipped
    manifest = load_task_manifest(manifest_path, settings)

    def rejected(rejection: Rejection) -> BatchResult:
        base.seconds = time.perf_counter() - started
        return reject(path, base, rejection, settings, move=move_on_reject)

    try:
        spec, frame = precheck(path, base, manifest, manifest_path, settings, config)
    except PrecheckFailure as failure:
        return rejected(precheck_rejection(failure, base.name))
    outcome = run_expectations(frame, base, spec, settings, config, build_docs)
    if not outcome.success:
        return rejected(suite_rejection(outcome))
    pixels = row_index.frame_pixels(frame)
    try:
        hashes, duplicates = duplicate_rows_check(pixels, base, settings)
        distribution, counts = image_distribution_check(pixels, base, settings)
    except PrecheckFailure as failure:
        return rejected(stream_rejection(failure, base.name, "stream", outcome.data_docs))
    report_path = report_path_for(settings, base)
    summary = batch_summary(frame, spec, manifest, outcome, report_path, base.source)
    summary["rows_of_other_tasks"] = {k: duplicates[k] for k in ("duplicate_rows", "share", "by_task")}
    summary["image_distribution"] = image_stats.summary_of(distribution)
    recheck = late_leakage_check(frame, outcome.observed.get("leakage_references") or [])
    recheck = late_duplicate_check(hashes, base, settings, then=recheck)
    try:
        stored, new = publish(path, base, manifest_path, settings, summary, recheck)
    except PrecheckFailure as failure:
        return rejected(publish_rejection(failure, base.name, settings.validated_dir, outcome.data_docs))
    base.seconds = time.perf_counter() - started
    if not new:
        return base.replace(
            status="skipped", path=str(stored), reason="validated concurrently by another run"
        )
    index_published(base, hashes, counts, settings)
    return record_validated(base, stored, report_path, summary, outcome, settings)
