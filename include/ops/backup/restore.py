"""Restore a backup: verify every checksum, stage next to the live folders, swap in by rename.

Nothing live is touched before the whole backup has been verified and staged (every byte re-hashed while
copying). The swap renames each live folder aside (``.<name>.pre-restore-<id>-<time>``, kept as the way
back) and the staged one into place; a failure part-way undoes the swaps already made. The MLflow SQLite
file is replaced with ``os.replace``; PostgreSQL is restored with ``pg_restore --single-transaction``.
Configuration is merged so that a live secret is never overwritten. A target other than the live one
(a DR drill's scratch folder) is restored the same way without the maintenance lock. Checking the result
against the backup is ``validate.py``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from include.ops.backup import mlflow_store
from include.ops.backup.catalog import (
    fetch_backup,
    fetch_dir,
    load_manifest,
    resolve_backup,
    verify_backup,
)
from include.ops.backup.config import restore_config
from include.ops.backup.layout import (
    BackupError,
    BackupIntegrityError,
    Manifest,
    ProgressFn,
    backup_path,
    copy_hashed,
    resolve_inside,
)
from include.ops.backup.s3 import S3Store
from include.ops.backup.snapshot import CONFIG_PATH
from include.ops.backup.staging import (
    UndoList,
    aside_path,
    diff_tree,
    prune_previous,
    stage_tree,
    staging_path,
    swap_dir,
)
from include.ops.backup.target import MARKER_NAME, RestoreTarget
from include.ops.lock import maintenance_lock
from include.ops.settings import Settings, get_settings
from model.fsio import atomic_write_bytes

log = logging.getLogger(__name__)


@dataclass
class RestoreResult:
    """What a restore did (or, with ``dry_run``, would do)."""

    backup_id: str
    source: str
    dry_run: bool
    target: dict[str, Any]
    backup_root: str
    files: int
    bytes: int
    seconds: float
    changes: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    previous: dict[str, str] = field(default_factory=dict)  # pre-restore copies of the live folders
    config: dict[str, Any] = field(default_factory=dict)
    mlflow: dict[str, Any] = field(default_factory=dict)
    # newer backups ``latest`` passed over (incomplete), each with why
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for XCom, reports and the CLI."""
        return asdict(self)


def verified_copy(
    backup_id: str, source: str, settings: Settings, store: S3Store | None, progress: ProgressFn | None = None
) -> tuple[Path, Manifest]:
    """Local folder holding backup ``backup_id`` with every checksum verified (S3: downloaded first)."""
    if source == "s3":
        if store is None:
            raise BackupError("source 's3' needs an S3 store: configure the s3_backup connection")
        root = fetch_dir(settings, backup_id)
        manifest, problems = fetch_backup(backup_id, store, root, progress)
        if problems:
            raise BackupIntegrityError(
                f"backup {backup_id} (s3) failed verification, nothing restored", problems
            )
        return root, manifest
    try:
        verify_backup(backup_id, "local", settings, progress=progress)
    except BackupIntegrityError as exc:
        raise BackupIntegrityError(
            f"backup {backup_id} failed verification, nothing restored", exc.problems
        ) from None
    return backup_path(settings.backup_dir, backup_id), load_manifest(backup_id, settings, "local")


def restore_backup(
    backup_id: str | None = None,
    source: str = "local",
    settings: Settings | None = None,
    store: S3Store | None = None,
    target: RestoreTarget | None = None,
    dry_run: bool = False,
    holder: str | None = None,
    progress: ProgressFn | None = None,
) -> RestoreResult:
    """Restore backup ``backup_id`` (None/``latest``: latest complete) from ``source`` into ``target`` (live).

    With ``latest``, newer incomplete backups passed over are named in ``RestoreResult.skipped`` (and logged).

    Order: validate the id -> take the maintenance lock (live target, not for a dry run; re-entrant for
    ``holder``) -> verify every checksum -> stage -> (``dry_run``: report the changes and stop) -> swap
    folders, MLflow store, configuration. Raises BackupIntegrityError naming bad files before anything live
    is touched.
    """
    settings = settings or get_settings()
    target = target or RestoreTarget.live_target(settings)
    backup_id, skipped = resolve_backup(backup_id, settings, source, store)
    started = time.monotonic()
    # a dry run only reads live state: it needs no lock (and must not block on a recovery in progress)
    needs_lock = target.live and not dry_run
    lock = maintenance_lock(holder or f"restore:{backup_id}", settings.lock_file) if needs_lock else None
    with lock or contextlib.nullcontext():
        root, manifest = verified_copy(backup_id, source, settings, store, progress)
        result = RestoreResult(
            backup_id=backup_id,
            source=source,
            dry_run=dry_run,
            target=target.to_dict(),
            backup_root=str(root),
            files=len(manifest.files),
            bytes=manifest.total_bytes,
            seconds=0.0,
            skipped=skipped,
        )
        staged = _Staged.plan(root, manifest, target)
        try:
            staged.stage(result, progress)
            if dry_run:
                staged.report_changes(result)
            else:
                before = aliases_before(settings) if target.live else {}
                staged.swap_in(result)
                if target.live:
                    result.mlflow["alias_history"] = record_restore_moves(settings, backup_id, before)
            result.mlflow["backend"] = manifest.mlflow.get("backend")
        finally:
            staged.clean()
    result.seconds = round(time.monotonic() - started, 3)
    log.info(
        "%s backup %s (%s) into %s in %.1fs",
        "dry run of restore of" if dry_run else "restored", backup_id, source, target.state_dir, result.seconds,
    )  # fmt: skip
    return result


def aliases_before(settings: Settings) -> dict[str, str | None]:
    """Where ``champion`` and ``challenger`` point in the live registry before a restore (None: unset/no store)."""
    from include.ops import alias_history, tracking

    try:
        client = tracking.mlflow_client(settings, read_only=True)
    except FileNotFoundError:  # disaster recovery: no live store at all
        return {}
    return {
        alias: alias_history.current_alias(client, settings.registered_model, alias)
        for alias in ("champion", "challenger")
    }


def record_restore_moves(settings: Settings, backup_id: str, before: dict[str, str | None]) -> int:
    """Append a ``restore`` entry to the restored registry's alias history; the number of entries (0 on error)."""
    from include.ops import alias_history, tracking

    tracking.forget_store_connections(settings.mlflow_tracking_uri)  # read the restored file, not the old one
    try:
        return len(alias_history.record_restore(settings, backup_id, before))
    except Exception as exc:  # the restore itself succeeded: say so, never undo it for a history entry
        log.warning("restored %s, but the alias history entry could not be written: %s", backup_id, exc)
        return 0


@dataclass
class _Staged:
    """One restore's staging: the backup's copy of each live location, beside it, until swapped in."""

    root: Path
    manifest: Manifest
    target: RestoreTarget
    state: Path
    artifacts: Path
    live_db: Path | None
    db: Path | None
    has_pg: bool
    captured: dict[str, Any] | None = None

    @classmethod
    def plan(cls, root: Path, manifest: Manifest, target: RestoreTarget) -> _Staged:
        """Where each part is staged; BackupError when the backup's MLflow store does not fit the target's."""
        backup_id = manifest.backup_id
        names = {e.path for e in manifest.files}
        has_sqlite = mlflow_store.SQLITE_DUMP in names
        if has_sqlite and mlflow_store.backend_kind(target.mlflow_tracking_uri) != "sqlite":
            raise BackupError(
                f"backup {backup_id} holds a SQLite MLflow store but the target store is not SQLite"
            )
        live_db = mlflow_store.sqlite_path(target.mlflow_tracking_uri) if has_sqlite else None
        return cls(
            root=root,
            manifest=manifest,
            target=target,
            state=staging_path(target.state_dir, backup_id),
            artifacts=staging_path(target.artifacts_dir, backup_id),
            live_db=live_db,
            db=staging_path(live_db, backup_id) if live_db else None,
            has_pg=mlflow_store.PG_DUMP in names,
        )

    def stage(self, result: RestoreResult, progress: ProgressFn | None) -> None:
        """Copy state, artifacts and the MLflow store next to the live ones, re-hashing every byte."""
        backup_id = self.manifest.backup_id
        stage_tree(self.root, self.manifest, "state", self.state, progress)
        marker = {
            "backup_id": backup_id,
            "backup_root": str(self.root),
            "restored_at": datetime.now(UTC).isoformat(),
        }
        atomic_write_bytes(self.state / MARKER_NAME, json.dumps(marker, indent=2).encode())
        stage_tree(self.root, self.manifest, mlflow_store.ARTIFACTS, self.artifacts, progress)
        if self.db is not None and self.live_db is not None:
            self.db.parent.mkdir(parents=True, exist_ok=True)
            dump_entry = self.manifest.entry(mlflow_store.SQLITE_DUMP)
            copy_hashed(resolve_inside(self.root, mlflow_store.SQLITE_DUMP), self.db, mode=dump_entry.mode)
            mlflow_store.sqlite_integrity(self.db)
            if self.target.live and not result.dry_run:
                result.mlflow["kept_live_secret_rows"] = mlflow_store.carry_live_secrets(
                    self.db, self.live_db
                )
        if self.has_pg:
            dump = resolve_inside(self.root, mlflow_store.PG_DUMP)
            result.mlflow["pg_dump_entries"] = mlflow_store.check_postgres_dump(dump)
        if any(e.path == CONFIG_PATH for e in self.manifest.files):
            self.captured = json.loads(resolve_inside(self.root, CONFIG_PATH).read_bytes())

    def report_changes(self, result: RestoreResult) -> None:
        """Dry run: what the swap would change, nothing live touched."""
        result.changes = {
            "state": diff_tree(self.state, self.target.state_dir),
            "mlflow_artifacts": diff_tree(self.artifacts, self.target.artifacts_dir),
        }
        if self.captured is not None:
            result.config = restore_config(self.captured, self.target.env_file, dry_run=True).to_dict()

    def swap_in(self, result: RestoreResult) -> None:
        """Swap the staged folders and MLflow store in (undone on any failure), then merge the configuration."""
        backup_id, target = self.manifest.backup_id, self.target
        result.changes = {"state": diff_tree(self.state, target.state_dir)}
        undo: UndoList = []
        try:
            result.previous["state_dir"] = swap_dir(self.state, target.state_dir, backup_id, undo) or ""
            result.previous["artifacts_dir"] = (
                swap_dir(self.artifacts, target.artifacts_dir, backup_id, undo) or ""
            )
            self._swap_mlflow_store(result, undo)
        except BaseException:
            log.error("restore of %s failed part-way: undoing %d swaps", backup_id, len(undo))
            for action in reversed(undo):
                try:
                    action()
                except OSError as exc:  # keep undoing the rest; the operator gets every failure in the log
                    log.error("undo step failed: %s", exc)
            raise
        for key, live in (("state_dir", target.state_dir), ("artifacts_dir", target.artifacts_dir)):
            prune_previous(live, result.previous.get(key) or None)
        if self.live_db is not None:
            prune_previous(self.live_db, result.previous.get("mlflow_db") or None)
        if self.captured is not None:
            result.config = restore_config(self.captured, target.env_file).to_dict()

    def _swap_mlflow_store(self, result: RestoreResult, undo: UndoList) -> None:
        if self.db is not None and self.live_db is not None:
            live_db = self.live_db
            previous = aside_path(live_db, self.manifest.backup_id) if live_db.exists() else None
            mlflow_store.install_sqlite(self.db, live_db, previous)
            result.previous["mlflow_db"] = str(previous or "")
            if previous is not None:
                undo.append(lambda: os.replace(previous, live_db))
            result.mlflow["restored"] = "sqlite"
        elif self.has_pg:
            if mlflow_store.backend_kind(self.target.mlflow_tracking_uri) != "postgresql":
                raise BackupError(
                    f"backup {self.manifest.backup_id} holds a PostgreSQL dump; target store is not PostgreSQL"
                )
            mlflow_store.restore_postgres(
                resolve_inside(self.root, mlflow_store.PG_DUMP), self.target.mlflow_tracking_uri
            )
            result.mlflow["restored"] = "postgresql"

    def clean(self) -> None:
        """Remove whatever staging is left (after a swap: nothing; after a dry run or failure: everything)."""
        for leftover in (self.state, self.artifacts):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
        if self.db is not None:
            self.db.unlink(missing_ok=True)
