"""Validate a landing zone: list its new files, validate one (Airflow's mapped task), or all of them (the CLI).

``scan_landing``/``validate_batch`` split :func:`validate_landing_zone` for Airflow: list, then one mapped task
per file. The zone is passed in; without one it is the local ``settings.landing_dir``. The Airflow glue
(``include.airflow_glue.landing_s3.get_landing``) passes the S3 zone when the ``s3`` connection exists.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from include.ops.settings import Settings, get_settings
from include.ops.validation.config import MANIFEST_NAME, ValidationConfig, get_validation_config
from include.ops.validation.landing import LandedFile, Landing, LocalLanding
from include.ops.validation.outcome import BatchResult, ValidationSetupError
from include.ops.validation.pipeline import announce_rejection, load_task_manifest, validate_landed_file
from include.ops.validation.prechecks import entry_kind, file_type_failure
from include.ops.validation.store import read_index
from model.fsio import sha256_file

log = logging.getLogger(__name__)


def staging_dir(settings: Settings) -> Path:
    """Local folder for S3 objects being validated (copies only; originals stay in S3)."""
    return settings.var_dir / "staging" / "landing"


def landing_manifest(landing: Landing, settings: Settings) -> Path:
    """The manifest landed batches are judged against: the zone's, else the validated store's; else raise.

    This is the contract of incoming batches, not the manifest training reads
    (``include.ops.task_manifest.resolve_task_manifest``).
    """
    path = landing.fetch_manifest(staging_dir(settings))
    if path is None:
        stored = settings.validated_dir / MANIFEST_NAME
        if not stored.exists():
            raise ValidationSetupError(
                f"no {MANIFEST_NAME} in the landing zone {landing.describe()} nor in {settings.validated_dir}: "
                "land the task manifest beside the batches"
            )
        path = stored
    load_task_manifest(path, settings)  # the schema and the stream's class capacity: refused -> setup error
    return path


def scan_landing(
    settings: Settings | None = None, *, landing: Landing | None = None
) -> tuple[list[LandedFile], list[tuple[LandedFile, str]]]:
    """Files of the landing zone to validate (with checksums) and those skipped with the reason."""
    settings = settings or get_settings()
    landing = landing or LocalLanding(settings.landing_dir)
    items = landing.list_files()
    if not items:
        return [], []
    landing_manifest(landing, settings)
    validated = {e.get("sha256"): n for n, e in read_index(settings.validated_dir).get("files", {}).items()}
    todo, skipped = [], []
    for item in items:
        if item.kind != "file":  # rejected by validate_batch; a link is never followed to hash its target
            todo.append(LandedFile(item.name, item.location, item.size, entry_checksum(item), item.kind))
            continue
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
    *,
    landing: Landing | None = None,
) -> BatchResult:
    """Fetch one landed file, validate it, and move a rejected S3 object to the quarantine prefix."""
    settings = settings or get_settings()
    config = config or get_validation_config(settings)
    landing = landing or LocalLanding(settings.landing_dir)
    item = item if isinstance(item, LandedFile) else LandedFile.from_dict(item)
    manifest = landing_manifest(landing, settings)
    if item.kind != "file" or (landing.kind == "local" and _local_kind(Path(item.location)) != "file"):
        return reject_entry(item, settings)
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


def entry_checksum(item: LandedFile) -> str:
    """A stand-in checksum of an entry that is not a regular file: sha256 of its kind, name and link target."""
    import hashlib
    import os

    target = ""
    if item.kind == "symlink":
        try:
            target = os.readlink(item.location)
        except OSError:
            target = "?"
    return hashlib.sha256(f"{item.kind}:{item.name}:{target}".encode()).hexdigest()


def _local_kind(path: Path) -> str:
    try:
        return entry_kind(path)
    except FileNotFoundError:
        return "missing"


def reject_entry(item: LandedFile, settings: Settings) -> BatchResult:
    """Reject a landing entry that is not a regular file: the entry itself is moved to the quarantine, never a
    link's target (``precheck.file_type``); alert written, metrics pushed."""
    from include.ops.validation.outcome import precheck_rejection, rejection_report
    from include.ops.validation.store import quarantine_entry

    path = Path(item.location)
    kind = _local_kind(path)
    if kind == "missing":
        raise FileNotFoundError(f"landing entry {path} is gone (quarantined by another run?)")
    item = LandedFile(item.name, item.location, item.size, item.checksum or entry_checksum(item), kind)
    base = BatchResult(
        name=item.name, status="", checksum=item.checksum or "", size_bytes=item.size, source=item.location
    )
    rejection = precheck_rejection(file_type_failure(path, kind), item.name)
    qfile, qreport = quarantine_entry(
        path, item.name, base.checksum, rejection_report(base, rejection), settings.quarantine_dir
    )
    return announce_rejection(base, rejection, qfile, qreport, settings)


def validate_landing_zone(
    settings: Settings | None = None,
    config: ValidationConfig | None = None,
    build_docs: bool | None = None,
    *,
    landing: Landing | None = None,
) -> list[BatchResult]:
    """Validate every new file of the landing zone one by one; skipped files are reported, not re-validated."""
    settings = settings or get_settings()
    config = config or get_validation_config(settings)
    landing = landing or LocalLanding(settings.landing_dir)
    todo, skipped = scan_landing(settings, landing=landing)
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
        results.append(validate_batch(item, settings, config, build_docs=build_docs, landing=landing))
    return results
