"""Check restored state against its backup (runbook step 3, ``make test-validation``).

Every ``state/`` file byte-identical, the MLflow aliases as recorded, the champion loads and predicts, and
its per-task test accuracies on the backup's task data equal those recorded at backup time.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from include.ops.backup import mlflow_store
from include.ops.backup.catalog import fetch_dir, resolve_backup_id
from include.ops.backup.evaluate import compare_accuracies, health_check, task_accuracies
from include.ops.backup.layout import BackupError, Manifest, backup_path, read_manifest
from include.ops.backup.s3 import S3Store
from include.ops.backup.sources import DATA_MANIFEST
from include.ops.backup.target import RestoreTarget, restored_marker
from include.ops.settings import Settings, get_settings
from model.fsio import sha256_file

log = logging.getLogger(__name__)


class RestoreValidationError(BackupError):
    """The restored system does not match the backup (files, aliases or accuracies); lists every difference."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message + ": " + "; ".join(problems))
        self.problems = problems


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


def _alias_problems(target: RestoreTarget, manifest: Manifest) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The aliases of the restored SQLite store and how they differ from those the backup recorded."""
    recorded = manifest.mlflow.get("aliases", {})
    aliases: dict[str, dict[str, Any]] = {}
    problems = []
    if mlflow_store.backend_kind(target.mlflow_tracking_uri) != "sqlite":
        return aliases, problems
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
    return aliases, problems


def champion_checkpoint(target: RestoreTarget, manifest: Manifest) -> tuple[Path | None, list[str]]:
    """The champion checkpoint in the target (MLflow alias in the restored store, else the manifest's choice).

    Returns the path and the problems found (alias/sha disagreement with the backup).
    """
    aliases, problems = _alias_problems(target, manifest)
    rel = manifest.evaluation.get("checkpoint")
    champion = aliases.get("champion") or manifest.mlflow.get("aliases", {}).get("champion")
    if champion and champion.get("checkpoint_path"):
        path = target.state_dir / "checkpoints" / Path(champion["checkpoint_path"]).name
    elif rel:
        path = target.state_dir / rel.removeprefix("state/")
    else:
        return None, problems
    if champion and champion.get("checkpoint_sha256") and path.is_file():
        digest = sha256_file(path)
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
    data = Path(backup_root) / "data" / DATA_MANIFEST
    return health_check(champion, data if data.is_file() else None)


def _state_problems(target: RestoreTarget, manifest: Manifest) -> tuple[int, list[str]]:
    """``(files compared, problems)``: every ``state/`` file of the backup must be byte-identical in the target."""
    problems, checked = [], 0
    for entry in manifest.files:
        if not entry.path.startswith("state/"):
            continue
        path = target.state_dir / entry.path.removeprefix("state/")
        checked += 1
        if not path.is_file():
            problems.append(f"{entry.path}: missing in {target.state_dir}")
            continue
        digest = sha256_file(path)
        if (path.stat().st_size, digest) != (entry.size, entry.sha256):
            problems.append(f"{entry.path}: restored copy differs (sha256 {digest} != {entry.sha256})")
    return checked, problems


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
        local = source == "local"
        backup_root = backup_path(settings.backup_dir, backup_id) if local else fetch_dir(settings, backup_id)
    manifest = read_manifest(backup_root)
    checked, problems = _state_problems(target, manifest)
    champion, alias_problems = champion_checkpoint(target, manifest)
    problems += alias_problems
    recorded = manifest.evaluation.get("accuracies", {})
    measured: dict[str, float] = {}
    health: dict[str, Any] = {}
    data_manifest = backup_root / "data" / DATA_MANIFEST
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
