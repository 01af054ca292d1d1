"""Retention: keep-N checkpoints, grandfather-father-son backups (local and S3), logs older than N days.

Every function has a ``dry_run`` that lists what would go and removes nothing. Checkpoints an MLflow alias
points to, or that the latest complete backup names as champion/challenger/latest, are never removed; the
latest complete backup is never removed; an incomplete backup (no manifest) never counts as a backup and is
only removed once older than a grace period (it may be a backup in progress).
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from include.ops.backup import mlflow_store
from include.ops.backup.catalog import (
    FETCH_DIRNAME,
    BackupInfo,
    latest_complete_backup,
    list_backups,
    load_manifest,
)
from include.ops.backup.layout import MANIFEST_NAME, BackupError, backup_path
from include.ops.backup.s3 import S3Store
from include.ops.lock import assert_not_locked
from include.ops.settings import Settings, get_settings
from model.fsio import sha256_file

log = logging.getLogger(__name__)

CHECKPOINT_RE = re.compile(r"^task_(\d{3,})_(.+)\.pt$")
LOG_PATTERNS = ("*.log", "*.log.*", "*.jsonl", "*.jsonl.*")


@dataclass
class CleanupReport:
    """What a cleanup removed (or would remove) and why the rest stayed."""

    what: str
    dry_run: bool
    removed: list[str] = field(default_factory=list)
    kept: dict[str, list[str]] = field(default_factory=dict)  # item -> reasons
    bytes_freed: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for XCom and the CLI."""
        return asdict(self)


def _sidecar_sha(path: Path) -> str | None:
    try:
        text = path.with_name(path.name + ".sha256").read_text().split()
        return text[0] if text else None
    except OSError:
        return None


def list_checkpoint_files(checkpoint_dir: Path) -> list[tuple[int, Path]]:
    """``(task_index, path)`` of every ``task_NNN_<id>.pt`` in the folder, newest first."""
    found = []
    for path in Path(checkpoint_dir).glob("task_*.pt"):
        match = CHECKPOINT_RE.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found, key=lambda item: (item[0], item[1].stat().st_mtime), reverse=True)


def protected_checkpoints(settings: Settings) -> dict[str, list[str]]:
    """``{file name or sha256: [reasons]}`` of checkpoints that must stay; raises if MLflow cannot be read."""
    out: dict[str, list[str]] = {}
    try:
        aliases = mlflow_store.live_aliases(settings)
    except Exception as exc:  # without the aliases we cannot know what is safe: delete nothing
        raise BackupError(f"cannot read MLflow aliases ({exc}); refusing to delete checkpoints") from exc
    for alias, info in aliases.items():
        for key in (info.get("checkpoint_sha256"), Path(info.get("checkpoint_path") or "").name):
            if key:
                out.setdefault(key, []).append(f"mlflow alias {alias} (v{info.get('version')})")
    latest = latest_complete_backup(settings)
    if latest is not None:
        manifest = load_manifest(latest.backup_id, settings)
        for ref in manifest.references.get("checkpoints", []):
            reason = f"latest complete backup {latest.backup_id}: {', '.join(ref.get('roles', []))}"
            out.setdefault(ref["sha256"], []).append(reason)
            out.setdefault(Path(ref["path"]).name, []).append(reason)
    return out


def cleanup_checkpoints(
    keep: int = 10, settings: Settings | None = None, dry_run: bool = False
) -> CleanupReport:
    """Keep the ``keep`` newest checkpoints (runbook ``--keep=10``) plus every protected one; remove the rest."""
    if keep < 1:
        raise ValueError(
            f"keep must be >= 1 (the newest checkpoint is what training resumes from), got {keep}"
        )
    settings = settings or get_settings()
    if not dry_run:
        assert_not_locked("checkpoint cleanup", settings.lock_file)
    report = CleanupReport("checkpoints", dry_run)
    protected = protected_checkpoints(settings)
    for rank, (_, path) in enumerate(list_checkpoint_files(settings.checkpoint_dir)):
        reasons = []
        if rank < keep:
            reasons.append(f"newest {keep}")
        sha = _sidecar_sha(path) or sha256_file(path)
        reasons += protected.get(path.name, []) + protected.get(sha, [])
        if reasons:
            report.kept[path.name] = sorted(set(reasons))
            continue
        report.removed.append(path.name)
        report.bytes_freed += path.stat().st_size
        if not dry_run:
            path.unlink()
            path.with_name(path.name + ".sha256").unlink(missing_ok=True)
    log.info(
        "checkpoint cleanup%s: removed %s, kept %d",
        " (dry run)" if dry_run else "",
        report.removed,
        len(report.kept),
    )
    return report


def gfs_keep(
    backups: list[BackupInfo], daily: int = 7, weekly: int = 4, monthly: int = 12
) -> dict[str, list[str]]:
    """Grandfather-father-son: ``{backup_id: reasons}`` to keep among complete backups (newest always kept).

    For each of day / ISO week / month, walking newest to oldest, the newest backup of each period is kept
    until that many periods are covered.
    """
    for name, value in (("daily", daily), ("weekly", weekly), ("monthly", monthly)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    complete = sorted((b for b in backups if b.complete), key=lambda b: b.backup_id, reverse=True)
    keep: dict[str, list[str]] = {}
    if complete:
        keep[complete[0].backup_id] = ["latest complete"]

    def period(kind: str, when: datetime) -> tuple:
        if kind == "daily":
            return (when.date(),)
        if kind == "weekly":
            return tuple(when.isocalendar())[:2]
        return (when.year, when.month)

    for kind, count in (("daily", daily), ("weekly", weekly), ("monthly", monthly)):
        seen: set[tuple] = set()
        for info in complete:
            if len(seen) >= count:
                break
            key = period(kind, info.created)
            if key not in seen:
                seen.add(key)
                keep.setdefault(info.backup_id, []).append(kind)
    return keep


def _age_s(path: Path) -> float:
    return time.time() - path.stat().st_mtime


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _remove_backup_folder(folder: Path) -> None:
    """Delete the manifest first: a crash mid-delete leaves an incomplete backup, never a damaged complete one."""
    (folder / MANIFEST_NAME).unlink(missing_ok=True)
    shutil.rmtree(folder)


def cleanup_backups(
    daily: int = 7,
    weekly: int = 4,
    monthly: int = 12,
    settings: Settings | None = None,
    source: str = "local",
    store: S3Store | None = None,
    dry_run: bool = False,
    incomplete_grace_hours: float = 24.0,
) -> CleanupReport:
    """Apply GFS retention to complete backups in ``source`` (local or s3); drop stale incomplete ones.

    S3: expired manifests go first, then content objects no remaining manifest references (and older than
    the grace period, so an upload in progress is safe). If any kept S3 manifest cannot be read, no object
    is deleted.
    """
    settings = settings or get_settings()
    if not dry_run:
        assert_not_locked("backup cleanup", settings.lock_file)
    report = CleanupReport(f"backups ({source})", dry_run)
    backups = list_backups(settings, source, store)
    keep = gfs_keep(backups, daily, weekly, monthly)
    grace_s = incomplete_grace_hours * 3600
    for info in backups:
        if info.backup_id in keep:
            report.kept[info.backup_id] = keep[info.backup_id]
            continue
        if not info.complete:
            stale = _incomplete_is_stale(info, settings, grace_s)
            if not stale:
                report.kept[info.backup_id] = [
                    f"incomplete, younger than {incomplete_grace_hours:g}h (in progress?)"
                ]
                continue
        report.removed.append(info.backup_id)
        if source == "local":
            folder = backup_path(settings.backup_dir, info.backup_id)
            report.bytes_freed += _tree_size(folder)
            if not dry_run:
                _remove_backup_folder(folder)
        else:
            report.bytes_freed += info.bytes
            if not dry_run:
                store.delete_backup(info.backup_id)
    if source == "local":
        _cleanup_fetched(settings, grace_s, dry_run, report)
    else:
        _gc_remote(
            settings,
            store,
            [b for b in backups if b.backup_id in keep and b.complete],
            grace_s,
            dry_run,
            report,
        )
    log.info(
        "backup cleanup (%s)%s: removed %s, kept %s",
        source,
        " (dry run)" if dry_run else "",
        report.removed,
        list(report.kept),
    )
    return report


def _incomplete_is_stale(info: BackupInfo, settings: Settings, grace_s: float) -> bool:
    if info.source == "local":
        return _age_s(backup_path(settings.backup_dir, info.backup_id)) >= grace_s
    return time.time() - info.created.timestamp() >= grace_s


def _cleanup_fetched(settings: Settings, grace_s: float, dry_run: bool, report: CleanupReport) -> None:
    """Downloaded S3 replicas are caches: drop them once older than the grace period."""
    folder = settings.backup_dir / FETCH_DIRNAME
    if not folder.is_dir():
        return
    for item in sorted(folder.iterdir()):
        if item.is_dir() and _age_s(item) >= grace_s:
            report.removed.append(f"{FETCH_DIRNAME}/{item.name}")
            if not dry_run:
                shutil.rmtree(item)


def _gc_remote(
    settings: Settings,
    store: S3Store | None,
    kept: list[BackupInfo],
    grace_s: float,
    dry_run: bool,
    report: CleanupReport,
) -> None:
    if store is None:
        raise BackupError("source 's3' needs an S3 store: configure the s3_backup connection")
    referenced: set[str] = set()
    for info in kept:
        try:
            referenced |= {e.sha256 for e in store.get_manifest(info.backup_id).files}
        except BackupError as exc:
            report.notes.append(f"no object deleted: kept backup {info.backup_id} is unreadable ({exc})")
            return
    doomed = store.gc_objects(referenced, grace_s, dry_run=dry_run)
    report.removed += [f"object {sha[:12]}" for sha in doomed]


def cleanup_logs(days: int = 30, settings: Settings | None = None, dry_run: bool = False) -> CleanupReport:
    """Remove log files (``*.log``, ``*.log.N``, ``*.jsonl``) older than ``days`` under ``log_dir`` (runbook: 30)."""
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    settings = settings or get_settings()
    report = CleanupReport("logs", dry_run)
    cutoff = time.time() - days * 86400
    root = settings.log_dir
    if not root.is_dir():
        report.notes.append(f"{root} does not exist")
        return report
    seen = set()
    for pattern in LOG_PATTERNS:
        for path in sorted(root.rglob(pattern)):
            if path in seen or not path.is_file() or path.is_symlink():
                continue
            seen.add(path)
            st = path.stat()
            rel = path.relative_to(root).as_posix()
            if st.st_mtime < cutoff:
                report.removed.append(rel)
                report.bytes_freed += st.st_size
                if not dry_run:
                    path.unlink()
            else:
                report.kept[rel] = [f"younger than {days} days"]
    log.info(
        "log cleanup%s: removed %d files (%.1f MB)",
        " (dry run)" if dry_run else "",
        len(report.removed),
        report.bytes_freed / 1e6,
    )
    return report
