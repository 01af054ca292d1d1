"""Folder moves of a restore: stage a backup tree beside a live folder, diff it, swap it in by rename.

A staged folder is ``.<name>.restore-<id>`` next to the live one; the swap renames the live folder aside
(``.<name>.pre-restore-<id>-<time>``, kept as the way back) and the staged one into place, and registers how
to undo both renames.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from include.ops.backup.layout import (
    BackupIntegrityError,
    Manifest,
    ProgressFn,
    ProgressLog,
    copy_hashed,
    resolve_inside,
    sync_files,
)
from model.fsio import fsync_dir, sha256_file

UndoList = list[Callable[[], None]]


def staging_path(live: Path, backup_id: str) -> Path:
    """Where the backup's copy of ``live`` is staged before the swap."""
    return live.parent / f".{live.name}.restore-{backup_id}"


def aside_path(live: Path, backup_id: str) -> Path:
    """Where the swap keeps the previous ``live`` (unique per restore)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return live.parent / f".{live.name}.pre-restore-{backup_id}-{stamp}"


def stage_tree(
    root: Path, manifest: Manifest, prefix: str, dest: Path, progress: ProgressFn | None
) -> list[str]:
    """Copy the manifest's files under ``prefix/`` into ``dest``, re-hashing each; return their relative paths.

    Each file gets the mode recorded for it at backup time (the live file's mode), not the backup copy's 0600.
    """
    entries = [e for e in manifest.files if e.path.startswith(prefix + "/")]
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    tracker = ProgressLog(f"stage {prefix}", len(entries), sum(e.size for e in entries), progress)
    written = []
    for entry in entries:
        rel = entry.path[len(prefix) + 1 :]
        src = resolve_inside(root, entry.path, where=f"backup {manifest.backup_id}")
        dst = dest / rel
        size, digest = copy_hashed(src, dst, fsync=False, mode=entry.mode)
        if (size, digest) != (entry.size, entry.sha256):
            raise BackupIntegrityError(
                f"backup {manifest.backup_id} changed while restoring, nothing restored",
                [f"{entry.path}: sha256 {digest} != recorded {entry.sha256}"],
            )
        written.append(dst)
        tracker.advance(size)
    sync_files(dest, written)  # durable before the swap makes it live
    return [p.relative_to(dest).as_posix() for p in written]


def diff_tree(staged: Path, live: Path) -> dict[str, list[str]]:
    """Files a swap would add, change or remove in ``live``."""

    def listing(folder: Path) -> dict[str, Path]:
        if not folder.is_dir():
            return {}
        files = (p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        return {p.relative_to(folder).as_posix(): p for p in files}

    new, old = listing(staged), listing(live)
    changed = [r for r in sorted(set(new) & set(old)) if sha256_file(new[r]) != sha256_file(old[r])]
    return {"added": sorted(set(new) - set(old)), "changed": changed, "removed": sorted(set(old) - set(new))}


def swap_dir(staged: Path, live: Path, backup_id: str, undo: UndoList) -> str | None:
    """Rename ``live`` aside and ``staged`` into its place; register how to revert; return the aside path."""
    live.parent.mkdir(parents=True, exist_ok=True)
    aside = aside_path(live, backup_id) if live.exists() else None
    if aside is not None:
        os.rename(live, aside)
    try:
        os.rename(staged, live)
    except BaseException:
        if aside is not None:
            os.rename(aside, live)
        raise

    def revert() -> None:
        os.rename(live, staged)
        if aside is not None:
            os.rename(aside, live)

    undo.append(revert)
    fsync_dir(live.parent)
    return str(aside) if aside else None


def prune_previous(live: Path, keep: str | None) -> None:
    """Remove older pre-restore copies of ``live``, keeping the one just made."""
    for old in live.parent.glob(f".{live.name}.pre-restore-*"):
        if str(old) != keep:
            shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)
