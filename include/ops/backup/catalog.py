"""Which backups exist, which are complete, which is the latest complete one; and verifying them.

Only a backup with a valid manifest is complete. Verification re-reads every byte (downloading from S3 for
a remote backup) and compares sizes and sha256 with the manifest; it never trusts file dates or ETags.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from include.ops.backup.layout import (
    BACKUP_ID_RE,
    FILE_MODE,
    MANIFEST_NAME,
    BackupError,
    BackupIntegrityError,
    BackupNotFound,
    IncompleteBackup,
    Manifest,
    ProgressFn,
    ProgressLog,
    backup_path,
    backup_time,
    make_private_dir,
    read_manifest,
    resolve_inside,
    seal_modes,
    validate_backup_id,
)
from include.ops.backup.s3 import S3Store
from include.ops.settings import Settings, get_settings
from model.fsio import atomic_write_bytes, sha256_file

log = logging.getLogger(__name__)

Source = Literal["local", "s3"]
SOURCES = ("local", "s3")
LATEST = "latest"
FETCH_DIRNAME = ".fetch"  # verified local replicas of S3 backups, under backup_dir


@dataclass
class BackupInfo:
    """One backup as listed: complete only with a valid manifest."""

    backup_id: str
    source: str
    complete: bool
    created: datetime
    location: str
    files: int = 0
    bytes: int = 0
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (ISO time) for XCom and the CLI."""
        data = asdict(self)
        data["created"] = self.created.isoformat()
        return data


@dataclass
class VerifyReport:
    """Result of re-reading a backup: ``ok`` when every file matches its recorded size and sha256."""

    backup_id: str
    source: str
    ok: bool
    files: int
    bytes: int
    seconds: float
    path: str  # local folder that was verified (for S3: the downloaded replica, if kept)
    problems: list[str] = field(default_factory=list)
    extra_files: list[str] = field(default_factory=list)  # present but not in the manifest: never restored
    skipped: list[dict[str, Any]] = field(default_factory=list)  # newer backups ``latest`` passed over

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for XCom and the CLI."""
        return asdict(self)


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"backup source must be one of {SOURCES}, got {source!r}")


def _need_store(store: S3Store | None) -> S3Store:
    if store is None:
        raise BackupError("source 's3' needs an S3 store: configure the s3_backup connection")
    return store


def list_backups(
    settings: Settings | None = None, source: str = "local", store: S3Store | None = None
) -> list[BackupInfo]:
    """Every backup (complete or not), oldest first; folders not named like a backup id are ignored."""
    _check_source(source)
    settings = settings or get_settings()
    out: list[BackupInfo] = []
    if source == "local":
        if not settings.backup_dir.is_dir():
            return []
        for folder in sorted(settings.backup_dir.iterdir()):
            if not folder.is_dir() or folder.is_symlink() or not BACKUP_ID_RE.fullmatch(folder.name):
                continue
            info = BackupInfo(folder.name, "local", False, backup_time(folder.name), str(folder))
            try:
                manifest = read_manifest(folder)
                if manifest.backup_id != folder.name:
                    raise IncompleteBackup(f"manifest of {folder} names backup {manifest.backup_id!r}")
                info.complete, info.files, info.bytes = True, len(manifest.files), manifest.total_bytes
            except BackupError as exc:
                info.problem = str(exc)
            out.append(info)
        return out
    store = _need_store(store)
    for remote in store.list_backups():
        location = f"s3://{store.bucket}/{store.manifest_key(remote.backup_id).rsplit('/', 1)[0]}"
        info = BackupInfo(remote.backup_id, "s3", remote.complete, backup_time(remote.backup_id), location)
        if not remote.complete:
            info.problem = "no manifest in S3 (upload interrupted or in progress)"
        out.append(info)
    return out


def _skip(info: BackupInfo, reason: str) -> dict[str, Any]:
    """What ``latest`` says about a newer backup it did not use: id, why, and its age."""
    age_h = (datetime.now(UTC) - info.created).total_seconds() / 3600
    return {"backup_id": info.backup_id, "reason": reason, "age_hours": round(age_h, 2)}


def latest_with_skipped(
    settings: Settings | None = None, source: str = "local", store: S3Store | None = None
) -> tuple[BackupInfo | None, list[dict[str, Any]]]:
    """The newest complete backup (or None) and every newer backup it passed over, newest first, with why."""
    settings = settings or get_settings()
    skipped: list[dict[str, Any]] = []
    for info in reversed(list_backups(settings, source, store)):
        if not info.complete:
            skipped.append(_skip(info, info.problem or "incomplete: no valid manifest"))
            continue
        if source == "s3":
            try:
                manifest = _need_store(store).get_manifest(info.backup_id)
            except BackupError as exc:
                skipped.append(_skip(info, f"manifest unreadable: {exc}"))
                continue
            info.files, info.bytes = len(manifest.files), manifest.total_bytes
        return info, skipped
    return None, skipped


def describe_skipped(skipped: list[dict[str, Any]]) -> list[str]:
    """One line per backup ``latest`` passed over: ``skipped newer backup <id> (<age> h old): <why>``."""
    return [
        f"skipped newer backup {s['backup_id']} ({s['age_hours']:g} h old): {s['reason']}" for s in skipped
    ]


def latest_complete_backup(
    settings: Settings | None = None, source: str = "local", store: S3Store | None = None
) -> BackupInfo | None:
    """The newest backup whose manifest exists and is valid, or None (newer ones passed over are logged)."""
    info, skipped = latest_with_skipped(settings, source, store)
    for line in describe_skipped(skipped):
        log.warning("%s backups: %s", source, line)
    return info


def resolve_backup(
    requested: str | None,
    settings: Settings | None = None,
    source: str = "local",
    store: S3Store | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """The backup id to use and, for ``latest``/None, the newer backups passed over (id, reason, age).

    ``latest`` is the newest complete backup; every newer incomplete one is named and logged, never
    silently skipped. Any other value must be a well-formed id (nothing is skipped then).
    """
    _check_source(source)
    if requested in (None, "", LATEST):
        latest, skipped = latest_with_skipped(settings, source, store)
        lines = describe_skipped(skipped)
        for line in lines:
            log.warning("latest %s backup: %s", source, line)
        if latest is None:
            why = f" ({'; '.join(lines)})" if lines else ""
            raise BackupNotFound(f"no complete {source} backup to use{why}")
        return latest.backup_id, skipped
    return validate_backup_id(requested), []


def resolve_backup_id(
    requested: str | None,
    settings: Settings | None = None,
    source: str = "local",
    store: S3Store | None = None,
) -> str:
    """``latest``/None -> the latest complete backup's id; anything else must be a well-formed id."""
    return resolve_backup(requested, settings, source, store)[0]


def load_manifest(
    backup_id: str, settings: Settings | None = None, source: str = "local", store: S3Store | None = None
) -> Manifest:
    """The validated manifest of a complete backup; IncompleteBackup/BackupNotFound otherwise."""
    settings = settings or get_settings()
    _check_source(source)
    if source == "s3":
        return _need_store(store).get_manifest(validate_backup_id(backup_id))
    root = backup_path(settings.backup_dir, backup_id)
    if not root.is_dir():
        raise BackupNotFound(f"no backup {backup_id} in {settings.backup_dir}")
    manifest = read_manifest(root)
    if manifest.backup_id != backup_id:
        raise IncompleteBackup(f"manifest of {root} names backup {manifest.backup_id!r}")
    return manifest


def _verify_local(root: Path, manifest: Manifest, progress: ProgressFn | None) -> tuple[list[str], list[str]]:
    problems = []
    tracker = ProgressLog(f"verify {manifest.backup_id}", len(manifest.files), manifest.total_bytes, progress)
    listed = set()
    for entry in manifest.files:
        path = resolve_inside(root, entry.path, where=f"backup {manifest.backup_id}")
        listed.add(entry.path)
        if not path.is_file():
            problems.append(f"{entry.path}: missing")
            tracker.advance(0)
            continue
        size, digest = path.stat().st_size, sha256_file(path)
        if size != entry.size:
            problems.append(f"{entry.path}: size {size} != recorded {entry.size}")
        elif digest != entry.sha256:
            problems.append(f"{entry.path}: sha256 {digest} != recorded {entry.sha256}")
        tracker.advance(size)
    extra = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and rel not in listed and rel != MANIFEST_NAME and not path.name.startswith("."):
            extra.append(rel)
    return problems, extra


def fetch_backup(
    backup_id: str,
    store: S3Store,
    dest: Path,
    progress: ProgressFn | None = None,
) -> tuple[Manifest, list[str]]:
    """Download a complete S3 backup into ``dest`` (hashing every object); the manifest is written last.

    Returns the manifest and the problems found (missing objects, size/sha256 mismatches).
    """
    manifest = store.get_manifest(backup_id)
    if dest.exists():
        shutil.rmtree(dest)
    make_private_dir(dest)
    problems = []
    tracker = ProgressLog(f"download {backup_id}", len(manifest.files), manifest.total_bytes, progress)
    for entry in manifest.files:
        path = resolve_inside(dest, entry.path, where=f"S3 backup {backup_id}")
        try:
            size, digest = store.download(entry.sha256, path)
        except BackupError as exc:
            if "NoSuchKey" in str(exc) or "404" in str(exc):
                problems.append(f"{entry.path}: object missing in S3")
                tracker.advance(0)
                continue
            raise
        if size != entry.size:
            problems.append(f"{entry.path}: size {size} != recorded {entry.size}")
        elif digest != entry.sha256:
            problems.append(f"{entry.path}: sha256 {digest} != recorded {entry.sha256}")
        tracker.advance(size)
    seal_modes(dest)
    if not problems:
        atomic_write_bytes(dest / MANIFEST_NAME, manifest.to_json(), mode=FILE_MODE)
    return manifest, problems


def verify_backup(
    backup_id: str | None = None,
    source: str = "local",
    settings: Settings | None = None,
    store: S3Store | None = None,
    progress: ProgressFn | None = None,
    raise_on_error: bool = True,
    keep_download: bool = False,
) -> VerifyReport:
    """Re-read every file of a complete backup and check size + sha256 (downloading it when ``source='s3'``).

    ``backup_id`` None/``latest`` means the latest complete backup. Raises BackupIntegrityError naming the
    bad files (unless ``raise_on_error`` is False), IncompleteBackup for a backup without a manifest.
    With ``keep_download`` an S3 backup's verified replica stays in ``<backup_dir>/.fetch/<id>``.
    """
    settings = settings or get_settings()
    backup_id, skipped = resolve_backup(backup_id, settings, source, store)
    started = time.monotonic()
    if source == "local":
        root = backup_path(settings.backup_dir, backup_id)
        manifest = load_manifest(backup_id, settings, "local")
        problems, extra = _verify_local(root, manifest, progress)
    else:
        root = fetch_dir(settings, backup_id)
        manifest, problems = fetch_backup(backup_id, _need_store(store), root, progress)
        extra = []
        if not keep_download:
            shutil.rmtree(root, ignore_errors=True)
    report = VerifyReport(
        backup_id=backup_id,
        source=source,
        ok=not problems,
        files=len(manifest.files),
        bytes=manifest.total_bytes,
        seconds=round(time.monotonic() - started, 3),
        path=str(root),
        problems=problems,
        extra_files=extra,
        skipped=skipped,
    )
    if problems:
        log.error("backup %s (%s) failed verification: %s", backup_id, source, problems)
        if raise_on_error:
            raise BackupIntegrityError(f"backup {backup_id} ({source}) failed verification", problems)
    else:
        log.info(
            "backup %s (%s): %d files, %.1f MB verified", backup_id, source, report.files, report.bytes / 1e6
        )
    return report


def fetch_dir(settings: Settings, backup_id: str) -> Path:
    """Where a verified replica of an S3 backup is downloaded: ``<backup_dir>/.fetch/<id>``."""
    return backup_path(settings.backup_dir / FETCH_DIRNAME, backup_id)
