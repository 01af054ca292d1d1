"""Create a backup in three steps: snapshot live state locally, upload to S3, commit (manifest last).

``snapshot_backup`` (``snapshot.py``) copies and hashes everything into ``<backup_dir>/<id>/`` and stages the
manifest; ``upload_backup`` sends files S3 lacks; ``commit_backup`` writes the manifest to S3, then locally.
A failure anywhere leaves no manifest: the backup is incomplete and the previous one stays the latest
complete backup.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from include.ops.backup.layout import (
    FILE_MODE,
    MANIFEST_NAME,
    BackupError,
    Manifest,
    ProgressFn,
    ProgressLog,
    backup_path,
    read_manifest,
)
from include.ops.backup.s3 import S3Store
from include.ops.backup.snapshot import PENDING_NAME, allocate_backup_id, snapshot_backup
from include.ops.settings import Settings, get_settings
from model.fsio import atomic_write_bytes, sha256_file

log = logging.getLogger(__name__)


@dataclass
class BackupResult:
    """Outcome of :func:`create_backup`."""

    backup_id: str
    path: str
    files: int
    bytes: int
    uploaded: int = 0
    skipped_remote: int = 0
    remote: dict[str, str] | None = None
    seconds: float = 0.0
    already_complete: bool = False
    evaluation: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for XCom and the CLI."""
        return asdict(self)


@dataclass
class UploadReport:
    """What :func:`upload_backup` sent to S3 and what it found already there."""

    uploaded: int
    skipped: int
    bytes_uploaded: int
    remote: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for XCom."""
        return asdict(self)


def _pending(settings: Settings, backup_id: str) -> tuple[Path, Manifest]:
    """The folder and staged manifest of a snapshot not committed yet; BackupError when there is none."""
    root = backup_path(settings.backup_dir, backup_id)
    pending = root / PENDING_NAME
    if not pending.is_file():
        raise BackupError(
            f"backup {backup_id} has no staged snapshot at {pending}: run the snapshot step first"
        )
    return root, Manifest.from_json(pending.read_bytes(), where=str(pending))


def upload_backup(
    backup_id: str, store: S3Store, settings: Settings | None = None, progress: ProgressFn | None = None
) -> UploadReport:
    """Upload the staged files S3 does not hold yet (content-addressed); RemoteUnavailable if S3 fails."""
    settings = settings or get_settings()
    root = backup_path(settings.backup_dir, backup_id)
    if (root / MANIFEST_NAME).exists():
        manifest = read_manifest(root)
    else:
        root, manifest = _pending(settings, backup_id)
    store.check_bucket()
    store.mark_started(backup_id)
    existing = store.existing_objects()
    todo = []
    skipped = 0
    for entry in manifest.files:
        if entry.sha256 in existing and existing[entry.sha256]["size"] == entry.size:
            skipped += 1
        elif entry.sha256 not in {e.sha256 for e in todo}:
            todo.append(entry)
    tracker = ProgressLog("upload to s3", len(todo), sum(e.size for e in todo), progress)
    for entry in todo:
        path = root / entry.path
        if (path.stat().st_size, sha256_file(path)) != (entry.size, entry.sha256):
            raise BackupError(f"backup {backup_id}: {entry.path} changed on disk before upload")
        store.upload(path, entry.sha256, entry.size)
        tracker.advance(entry.size)
    log.info("backup %s: uploaded %d objects, %d already in S3", backup_id, len(todo), skipped)
    return UploadReport(len(todo), skipped, sum(e.size for e in todo), store.describe())


def commit_backup(backup_id: str, settings: Settings | None = None, store: S3Store | None = None) -> Manifest:
    """Write the manifest (to S3 first when ``store``, then locally): from now on the backup is complete."""
    settings = settings or get_settings()
    root = backup_path(settings.backup_dir, backup_id)
    if (root / MANIFEST_NAME).exists():
        manifest = read_manifest(root)
        if store is not None:
            store.put_manifest(manifest)
        return manifest
    root, manifest = _pending(settings, backup_id)
    manifest.completed_at = datetime.now(UTC).isoformat()
    if store is not None:
        existing = store.existing_objects()
        missing = [e.path for e in manifest.files if e.sha256 not in existing]
        if missing:
            raise BackupError(
                f"backup {backup_id}: S3 lacks {len(missing)} objects (e.g. {missing[0]}); upload first"
            )
        manifest.remote = store.describe()
        store.put_manifest(manifest)
    atomic_write_bytes(root / MANIFEST_NAME, manifest.to_json(), mode=FILE_MODE)
    (root / PENDING_NAME).unlink(missing_ok=True)
    log.info(
        "backup %s committed (%d files, %.1f MB)", backup_id, len(manifest.files), manifest.total_bytes / 1e6
    )
    return manifest


def create_backup(
    settings: Settings | None = None,
    backup_id: str | None = None,
    store: S3Store | None = None,
    progress: ProgressFn | None = None,
) -> BackupResult:
    """Snapshot, upload (when ``store``) and commit one backup; raises and leaves no manifest on any failure."""
    settings = settings or get_settings()
    started = time.monotonic()
    backup_id = backup_id or allocate_backup_id(settings.backup_dir)
    already = (backup_path(settings.backup_dir, backup_id) / MANIFEST_NAME).exists()
    snapshot_backup(settings, backup_id, progress)
    report = upload_backup(backup_id, store, settings, progress) if store is not None else None
    manifest = commit_backup(backup_id, settings, store)
    return BackupResult(
        backup_id=backup_id,
        path=str(backup_path(settings.backup_dir, backup_id)),
        files=len(manifest.files),
        bytes=manifest.total_bytes,
        uploaded=report.uploaded if report else 0,
        skipped_remote=report.skipped if report else 0,
        remote=manifest.remote,
        seconds=round(time.monotonic() - started, 3),
        already_complete=already,
        evaluation=manifest.evaluation,
    )
