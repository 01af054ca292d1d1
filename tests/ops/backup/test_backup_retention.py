"""Retention rules on their own: grandfather-father-son selection, log age, dry runs that remove nothing."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from include.ops.backup.catalog import BackupInfo
from include.ops.backup.cleanup import cleanup_backups, cleanup_logs, gfs_keep
from include.ops.backup.layout import FileEntry, Manifest, new_backup_id
from model.fsio import atomic_write_bytes


def _info(when: datetime, complete: bool = True) -> BackupInfo:
    return BackupInfo(new_backup_id(when), "local", complete, when, "x")


def test_gfs_keeps_newest_per_day_week_month():
    now = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)
    backups = [_info(now - timedelta(hours=6 * i)) for i in range(4 * 400)]  # 4 a day for 400 days
    keep = gfs_keep(backups, daily=7, weekly=4, monthly=12)
    daily = [b for b, why in keep.items() if "daily" in why]
    weekly = [b for b, why in keep.items() if "weekly" in why]
    monthly = [b for b, why in keep.items() if "monthly" in why]
    assert len(daily) == 7 and len(weekly) == 4 and len(monthly) == 12
    assert keep[backups[0].backup_id][0] == "latest complete"
    newest_per_day: dict[str, str] = {}
    for b in backups:  # newest first
        newest_per_day.setdefault(b.backup_id[:8], b.backup_id)
    assert sorted(daily) == sorted(list(newest_per_day.values())[:7])
    months = sorted({b[:6] for b in monthly})
    assert len(months) == 12 and months[-1] == "202611"
    assert len(keep) < 7 + 4 + 12 + 1  # periods overlap: the newest backup serves day, week and month


def test_gfs_never_drops_the_latest_complete_and_ignores_incomplete():
    now = datetime(2026, 11, 28, tzinfo=UTC)
    backups = [_info(now - timedelta(days=1)), _info(now, complete=False)]
    keep = gfs_keep(backups, daily=0, weekly=0, monthly=0)
    assert keep == {backups[0].backup_id: ["latest complete"]}
    with pytest.raises(ValueError, match="daily"):
        gfs_keep(backups, daily=-1)


def _fake_backup(root: Path, when: datetime) -> str:
    backup_id = new_backup_id(when)
    folder = root / backup_id
    (folder / "state").mkdir(parents=True)
    (folder / "state" / "x").write_bytes(b"x")
    entry = FileEntry("state/x", 1, "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881")
    manifest = Manifest(backup_id, when.isoformat(), when.isoformat(), [entry])
    atomic_write_bytes(folder / "manifest.json", manifest.to_json())
    return backup_id


def test_local_gfs_cleanup_dry_run_then_real(ct_env: Path):
    from include.ops.settings import get_settings

    settings = get_settings()
    now = datetime.now(UTC)
    ids = [_fake_backup(settings.backup_dir, now - timedelta(days=d)) for d in range(0, 60, 3)]
    dry = cleanup_backups(daily=2, weekly=1, monthly=1, settings=settings, dry_run=True)
    assert dry.removed and all((settings.backup_dir / b).is_dir() for b in ids)
    real = cleanup_backups(daily=2, weekly=1, monthly=1, settings=settings)
    assert sorted(real.removed) == sorted(dry.removed)
    left = sorted(p.name for p in settings.backup_dir.iterdir())
    assert left == sorted(real.kept) and ids[0] in left
    assert len(left) <= 4


def test_log_cleanup_removes_only_old_logs(ct_env: Path):
    from include.ops.settings import get_settings

    settings = get_settings()
    logs = settings.log_dir
    (logs / "archive").mkdir(parents=True)
    old = [logs / "training.log.3", logs / "archive" / "app.log"]
    new = [logs / "training.log", logs / "app.jsonl"]
    other = logs / "README.txt"
    for path in [*old, *new, other]:
        path.write_text("{}\n")
    month_ago = time.time() - 31 * 86400
    for path in [*old, other]:
        os.utime(path, (month_ago, month_ago))
    dry = cleanup_logs(30, settings, dry_run=True)
    assert sorted(dry.removed) == ["archive/app.log", "training.log.3"] and all(p.exists() for p in old)
    cleanup_logs(30, settings)
    assert not any(p.exists() for p in old) and all(p.exists() for p in new) and other.exists()
