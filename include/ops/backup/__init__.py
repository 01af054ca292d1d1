"""Checkpoint backup, verification, retention, restore and disaster-recovery drills (Airflow-free).

Public API, used by the backup/recovery DAGs, the maintenance DAGs and ``python -m include.ops.backup.cli``:

- ``create_backup`` (= ``snapshot_backup`` -> ``upload_backup`` -> ``commit_backup``), ``verify_backup``
- ``list_backups``, ``latest_complete_backup``, ``resolve_backup_id``, ``load_manifest``
- ``cleanup_checkpoints`` (keep-N, aliases and the latest backup protected), ``cleanup_backups`` (GFS),
  ``cleanup_logs``
- ``restore_backup``, ``validate_restore``, ``dr_drill``
- ``S3Store`` (any boto3 client; the Airflow ``s3_backup`` connection's is ``include.airflow_glue.s3``)
- ``plan_recovery`` & co. (``recovery.py``): the steps of the ``disaster_recovery`` DAG
"""

from include.ops.backup.catalog import (
    BackupInfo,
    VerifyReport,
    latest_complete_backup,
    list_backups,
    load_manifest,
    resolve_backup_id,
    verify_backup,
)
from include.ops.backup.cleanup import CleanupReport, cleanup_backups, cleanup_checkpoints, cleanup_logs
from include.ops.backup.create import BackupResult, commit_backup, create_backup, upload_backup
from include.ops.backup.drill import DrillFailed, DrillReport, dr_drill
from include.ops.backup.layout import (
    BACKUP_ID_PATTERN,
    BackupError,
    BackupIntegrityError,
    BackupNotFound,
    IncompleteBackup,
    InvalidBackupId,
    Manifest,
    UnsafePathError,
    validate_backup_id,
)
from include.ops.backup.restore import RestoreResult, restore_backup
from include.ops.backup.s3 import RemoteUnavailable, S3Store
from include.ops.backup.snapshot import allocate_backup_id, snapshot_backup
from include.ops.backup.target import RestoreTarget
from include.ops.backup.validate import (
    RestoreValidationError,
    ValidationReport,
    check_restored_health,
    validate_restore,
)

__all__ = [
    "BACKUP_ID_PATTERN",
    "BackupError",
    "BackupInfo",
    "BackupIntegrityError",
    "BackupNotFound",
    "BackupResult",
    "CleanupReport",
    "DrillFailed",
    "DrillReport",
    "IncompleteBackup",
    "InvalidBackupId",
    "Manifest",
    "RemoteUnavailable",
    "RestoreResult",
    "RestoreTarget",
    "RestoreValidationError",
    "S3Store",
    "UnsafePathError",
    "ValidationReport",
    "VerifyReport",
    "allocate_backup_id",
    "check_restored_health",
    "cleanup_backups",
    "cleanup_checkpoints",
    "cleanup_logs",
    "commit_backup",
    "create_backup",
    "dr_drill",
    "latest_complete_backup",
    "list_backups",
    "load_manifest",
    "resolve_backup_id",
    "restore_backup",
    "snapshot_backup",
    "upload_backup",
    "validate_backup_id",
    "validate_restore",
    "verify_backup",
]
