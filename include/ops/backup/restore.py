"""Restore a backup: verify every checksum, stage next to the live folders, swap in by rename, validate.

Nothing live is touched before the whole backup has been verified and staged (every byte re-hashed while
copying). The swap renames each live folder aside (``.<name>.pre-restore-<id>-<time>``, kept as the way
back) and the staged one into place; a failure part-way undoes the swaps already made. The MLflow SQLite
file is replaced with ``os.replace``; PostgreSQL is restored with ``pg_restore --single-transaction``.
Configuration is merged so that a live secret is never overwritten. A target other than the live one
(a DR drill's scratch folder) is restored the same way without the maintenance lock.
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
    resolve_backup_id,
    verify_backup,
)
from include.ops.backup.config import env_file_path, restore_config
from include.ops.backup.create import CONFIG_PATH
from include.ops.backup.evaluate import compare_accuracies, health_check, task_accuracies
from include.ops.backup.layout import (
    BackupError,
    BackupIntegrityError,
    Manifest,
    ProgressFn,
    ProgressLog,
    backup_path,
    copy_hashed,
    read_manifest,
    resolve_inside,
    sha256_file,
    sync_files,
)
from include.ops.backup.s3 import S3Store
from include.ops.lock import maintenance_lock
from include.ops.settings import Settings, get_settings
from model.fsio import atomic_write_bytes, fsync_dir

log = logging.getLogger(__name__)

MARKER_NAME = ".restored_from.json"  # written into the restored state folder (hidden: never backed up)


class RestoreValidationError(BackupError):
    """The restored system does not match the backup (files, aliases or accuracies); lists every difference."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message + ": " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class RestoreTarget:
    """Where a restore writes: the live locations, or a scratch folder for a drill."""

    state_dir: Path
    mlflow_tracking_uri: str
    artifacts_dir: Path
    env_file: Path
    live: bool

    @classmethod
    def live_target(cls, settings: Settings) -> RestoreTarget:
        """The live locations from settings (the maintenance lock applies)."""
        return cls(
            state_dir=settings.state_dir,
            mlflow_tracking_uri=settings.mlflow_tracking_uri,
            artifacts_dir=mlflow_store.artifacts_dir(settings),
            env_file=env_file_path(),
            live=True,
        )

    @classmethod
    def scratch(cls, root: Path) -> RestoreTarget:
        """A throwaway target under ``root`` (SQLite MLflow store, local artifacts, env file)."""
        root = Path(root).resolve()
        return cls(
            state_dir=root / "state",
            mlflow_tracking_uri=f"sqlite:///{root / 'mlflow' / 'mlflow.db'}",
            artifacts_dir=root / "mlflow" / "artifacts",
            env_file=root / "config.env",
            live=False,
        )

    def to_dict(self) -> dict[str, Any]:
        """Paths as strings, tracking URI without password."""
        return {
            "state_dir": str(self.state_dir),
            "mlflow_tracking_uri": mlflow_store.redact_uri(self.mlflow_tracking_uri),
            "artifacts_dir": str(self.artifacts_dir),
            "env_file": str(self.env_file),
            "live": self.live,
        }


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

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for XCom, reports and the CLI."""
        return asdict(self)


@dataclass
class ValidationReport:
    """Restored state compared with the backup: byte-identical files, same aliases, same accuracies."""

    backup_id: str
    ok: bool
    checked_files: int
    champion: str | None
    recorded: dict[str, float]
    measured: dict[str, float]
    problems: list[str] = field(default_factory=list)
    health: dict[str, Any] = field(default_factory=dict)

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


def _staging_path(live: Path, backup_id: str) -> Path:
    return live.parent / f".{live.name}.restore-{backup_id}"


def _aside_path(live: Path, backup_id: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return live.parent / f".{live.name}.pre-restore-{backup_id}-{stamp}"


def _stage_tree(
    root: Path, manifest: Manifest, prefix: str, dest: Path, progress: ProgressFn | None
) -> list[str]:
    """Copy the manifest's files under ``prefix/`` into ``dest``, re-hashing each; return their relative paths."""
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
        size, digest = copy_hashed(src, dst, fsync=False)
        if (size, digest) != (entry.size, entry.sha256):
            raise BackupIntegrityError(
                f"backup {manifest.backup_id} changed while restoring, nothing restored",
                [f"{entry.path}: sha256 {digest} != recorded {entry.sha256}"],
            )
        written.append(dst)
        tracker.advance(size)
    sync_files(dest, written)  # durable before the swap makes it live
    return [p.relative_to(dest).as_posix() for p in written]


def _diff_tree(staged: Path, live: Path) -> dict[str, list[str]]:
    """Files a swap would add, change or remove in ``live``."""

    def listing(folder: Path) -> dict[str, Path]:
        if not folder.is_dir():
            return {}
        files = (p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        return {p.relative_to(folder).as_posix(): p for p in files}

    new, old = listing(staged), listing(live)
    changed = [r for r in sorted(set(new) & set(old)) if sha256_file(new[r]) != sha256_file(old[r])]
    return {
        "added": sorted(set(new) - set(old)),
        "changed": changed,
        "removed": sorted(set(old) - set(new)),
    }


def _swap_dir(staged: Path, live: Path, backup_id: str, undo: list) -> str | None:
    """Rename ``live`` aside and ``staged`` into its place; register how to revert; return the aside path."""
    live.parent.mkdir(parents=True, exist_ok=True)
    aside = _aside_path(live, backup_id) if live.exists() else None
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


def _prune_previous(live: Path, keep: str | None) -> None:
    """Remove older pre-restore copies of ``live``, keeping the one just made."""
    for old in live.parent.glob(f".{live.name}.pre-restore-*"):
        if str(old) != keep:
            shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)


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

    Order: validate the id -> take the maintenance lock (live target, not for a dry run; re-entrant for ``holder``) -> verify
    every checksum -> stage -> (``dry_run``: report the changes and stop) -> swap folders, MLflow store,
    configuration. Raises BackupIntegrityError naming bad files before anything live is touched.
    """
    settings = settings or get_settings()
    target = target or RestoreTarget.live_target(settings)
    backup_id = resolve_backup_id(backup_id, settings, source, store)
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
        )
        _restore_verified(root, manifest, target, dry_run, result, progress)
    result.seconds = round(time.monotonic() - started, 3)
    log.info(
        "%s backup %s (%s) into %s in %.1fs",
        "dry run of restore of" if dry_run else "restored", backup_id, source, target.state_dir, result.seconds,
    )  # fmt: skip
    return result


def _restore_verified(
    root: Path,
    manifest: Manifest,
    target: RestoreTarget,
    dry_run: bool,
    result: RestoreResult,
    progress: ProgressFn | None,
) -> None:
    backup_id = manifest.backup_id
    kind = manifest.mlflow.get("backend")
    has_sqlite = any(e.path == mlflow_store.SQLITE_DUMP for e in manifest.files)
    has_pg = any(e.path == mlflow_store.PG_DUMP for e in manifest.files)
    staged_state = _staging_path(target.state_dir, backup_id)
    staged_artifacts = _staging_path(target.artifacts_dir, backup_id)
    live_db = mlflow_store.sqlite_path(target.mlflow_tracking_uri) if has_sqlite else None
    if has_sqlite and mlflow_store.backend_kind(target.mlflow_tracking_uri) != "sqlite":
        raise BackupError(
            f"backup {backup_id} holds a SQLite MLflow store but the target store is not SQLite"
        )
    staged_db = _staging_path(live_db, backup_id) if live_db else None
    try:
        _stage_tree(root, manifest, "state", staged_state, progress)
        marker = {
            "backup_id": backup_id,
            "backup_root": str(root),
            "restored_at": datetime.now(UTC).isoformat(),
        }
        atomic_write_bytes(staged_state / MARKER_NAME, json.dumps(marker, indent=2).encode())
        _stage_tree(root, manifest, mlflow_store.ARTIFACTS, staged_artifacts, progress)
        if staged_db is not None:
            staged_db.parent.mkdir(parents=True, exist_ok=True)
            copy_hashed(resolve_inside(root, mlflow_store.SQLITE_DUMP), staged_db)
            mlflow_store.sqlite_integrity(staged_db)
            if target.live and not dry_run:
                result.mlflow["kept_live_secret_rows"] = mlflow_store.carry_live_secrets(staged_db, live_db)
        if has_pg:
            result.mlflow["pg_dump_entries"] = mlflow_store.check_postgres_dump(
                resolve_inside(root, mlflow_store.PG_DUMP)
            )
        captured = (
            json.loads(resolve_inside(root, CONFIG_PATH).read_bytes())
            if _has(manifest, CONFIG_PATH)
            else None
        )

        if dry_run:
            result.changes = {
                "state": _diff_tree(staged_state, target.state_dir),
                "mlflow_artifacts": _diff_tree(staged_artifacts, target.artifacts_dir),
            }
            if captured is not None:
                result.config = restore_config(captured, target.env_file, dry_run=True).to_dict()
            result.mlflow["backend"] = kind
            return

        result.changes = {"state": _diff_tree(staged_state, target.state_dir)}
        undo: list = []
        try:
            result.previous["state_dir"] = _swap_dir(staged_state, target.state_dir, backup_id, undo) or ""
            result.previous["artifacts_dir"] = (
                _swap_dir(staged_artifacts, target.artifacts_dir, backup_id, undo) or ""
            )
            if staged_db is not None and live_db is not None:
                previous_db = _aside_path(live_db, backup_id) if live_db.exists() else None
                mlflow_store.install_sqlite(staged_db, live_db, previous_db)
                result.previous["mlflow_db"] = str(previous_db or "")
                if previous_db is not None:
                    undo.append(lambda: os.replace(previous_db, live_db))
                result.mlflow["restored"] = "sqlite"
            elif has_pg:
                if mlflow_store.backend_kind(target.mlflow_tracking_uri) != "postgresql":
                    raise BackupError(
                        f"backup {backup_id} holds a PostgreSQL dump; target store is not PostgreSQL"
                    )
                mlflow_store.restore_postgres(
                    resolve_inside(root, mlflow_store.PG_DUMP), target.mlflow_tracking_uri
                )
                result.mlflow["restored"] = "postgresql"
        except BaseException:
            log.error("restore of %s failed part-way: undoing %d swaps", backup_id, len(undo))
            for action in reversed(undo):
                try:
                    action()
                except OSError as exc:  # keep undoing the rest; the operator gets every failure in the log
                    log.error("undo step failed: %s", exc)
            raise
        for key, live in (("state_dir", target.state_dir), ("artifacts_dir", target.artifacts_dir)):
            _prune_previous(live, result.previous.get(key) or None)
        if live_db is not None:
            _prune_previous(live_db, result.previous.get("mlflow_db") or None)
        if captured is not None:
            result.config = restore_config(captured, target.env_file).to_dict()
        result.mlflow["backend"] = kind
    finally:
        for leftover in (staged_state, staged_artifacts):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
        if staged_db is not None:
            staged_db.unlink(missing_ok=True)


def _has(manifest: Manifest, path: str) -> bool:
    return any(e.path == path for e in manifest.files)


def restored_marker(state_dir: Path) -> dict[str, Any] | None:
    """The ``.restored_from.json`` a restore left in ``state_dir``, or None."""
    path = state_dir / MARKER_NAME
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def champion_checkpoint(target: RestoreTarget, manifest: Manifest) -> tuple[Path | None, list[str]]:
    """The champion checkpoint in the target (MLflow alias in the restored store, else the manifest's choice).

    Returns the path and the problems found (alias/sha disagreement with the backup).
    """
    problems = []
    recorded = manifest.mlflow.get("aliases", {})
    aliases: dict[str, dict[str, Any]] = {}
    if mlflow_store.backend_kind(target.mlflow_tracking_uri) == "sqlite":
        db = mlflow_store.sqlite_path(target.mlflow_tracking_uri)
        if db.is_file():
            aliases = mlflow_store.aliases_from_sqlite(db, manifest.mlflow.get("registered_model", ""))
        for alias in sorted(set(recorded) | set(aliases)):
            got, want = aliases.get(alias, {}), recorded.get(alias, {})
            if (got.get("version"), got.get("checkpoint_sha256")) != (
                want.get("version"),
                want.get("checkpoint_sha256"),
            ):
                problems.append(
                    f"alias {alias}: restored store has {got or None}, backup recorded {want or None}"
                )
    evaluation = manifest.evaluation
    rel = evaluation.get("checkpoint")
    champion = aliases.get("champion") or recorded.get("champion")
    if champion and champion.get("checkpoint_path"):
        path = target.state_dir / "checkpoints" / Path(champion["checkpoint_path"]).name
    elif rel:
        path = target.state_dir / rel.removeprefix("state/")
    else:
        return None, problems
    if champion and champion.get("checkpoint_sha256") and path.is_file():
        _, digest = sha256_file(path)
        if digest != champion["checkpoint_sha256"]:
            problems.append(
                f"champion {path.name}: sha256 {digest} != alias tag {champion['checkpoint_sha256']}"
            )
    return path, problems


def check_restored_health(
    backup_root: Path, target: RestoreTarget | None = None, settings: Settings | None = None
) -> dict[str, Any]:
    """Health check after a restore: the champion the restored store names loads and predicts; else raise."""
    settings = settings or get_settings()
    target = target or RestoreTarget.live_target(settings)
    manifest = read_manifest(Path(backup_root))
    champion, problems = champion_checkpoint(target, manifest)
    if champion is None or problems:
        raise RestoreValidationError(
            f"restored champion of backup {manifest.backup_id} is not usable",
            problems or ["no champion recorded"],
        )
    data = Path(backup_root) / "data" / "manifest.json"
    return health_check(champion, data if data.is_file() else None)


def validate_restore(
    backup_id: str | None = None,
    source: str = "local",
    settings: Settings | None = None,
    target: RestoreTarget | None = None,
    backup_root: Path | None = None,
    store: S3Store | None = None,
    tolerance: float = 1e-9,
    raise_on_error: bool = True,
) -> ValidationReport:
    """Check restored state against its backup (runbook step 3, ``make test-validation``).

    Every ``state/`` file of the backup must be byte-identical in the target, the MLflow aliases must match,
    the champion must load and predict (health check), and its per-task test accuracies on the backup's data
    must equal those recorded at backup time within ``tolerance``. ``backup_id`` None: the backup the target
    was restored from (its marker), else the latest complete one.
    """
    settings = settings or get_settings()
    target = target or RestoreTarget.live_target(settings)
    marker = restored_marker(target.state_dir)
    if backup_id in (None, "", "latest") and marker:
        backup_id = marker["backup_id"]
        backup_root = backup_root or Path(marker["backup_root"])
    backup_id = resolve_backup_id(backup_id, settings, source, store)
    if backup_root is None:
        backup_root = (
            backup_path(settings.backup_dir, backup_id)
            if source == "local"
            else fetch_dir(settings, backup_id)
        )
    manifest = read_manifest(backup_root)
    problems: list[str] = []
    checked = 0
    for entry in manifest.files:
        if not entry.path.startswith("state/"):
            continue
        path = target.state_dir / entry.path.removeprefix("state/")
        checked += 1
        if not path.is_file():
            problems.append(f"{entry.path}: missing in {target.state_dir}")
            continue
        size, digest = sha256_file(path)
        if (size, digest) != (entry.size, entry.sha256):
            problems.append(f"{entry.path}: restored copy differs (sha256 {digest} != {entry.sha256})")
    champion, alias_problems = champion_checkpoint(target, manifest)
    problems += alias_problems
    recorded = manifest.evaluation.get("accuracies", {})
    measured: dict[str, float] = {}
    health: dict[str, Any] = {}
    data_manifest = backup_root / "data" / "manifest.json"
    if champion is None:
        problems.append("backup names no champion checkpoint: nothing to serve")
    elif not champion.is_file():
        problems.append(f"champion checkpoint {champion} is missing")
    else:
        try:
            health = health_check(champion, data_manifest if data_manifest.is_file() else None)
        except Exception as exc:  # any failure to load/predict is the finding, reported with the file
            problems.append(f"health check of {champion.name} failed: {exc}")
        if recorded and data_manifest.is_file() and health:
            measured = task_accuracies(champion, data_manifest)
            problems += compare_accuracies(recorded, measured, tolerance)
    report = ValidationReport(
        backup_id=backup_id,
        ok=not problems,
        checked_files=checked,
        champion=str(champion) if champion else None,
        recorded=recorded,
        measured=measured,
        problems=problems,
        health=health,
    )
    if problems:
        log.error("validation of restore %s failed: %s", backup_id, problems)
        if raise_on_error:
            raise RestoreValidationError(f"restored state does not match backup {backup_id}", problems)
    else:
        log.info(
            "validation of restore %s passed: %d files identical, accuracies %s", backup_id, checked, measured
        )
    return report
