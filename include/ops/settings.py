"""Project paths and endpoints resolved once from the environment (embedded defaults under ``var/``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _path(env: str, default: Path) -> Path:
    value = os.environ.get(env)
    return Path(value).expanduser().resolve() if value else default


@dataclass(frozen=True)
class Settings:
    """Every location the pipeline reads or writes; override any of them with its env var."""

    var_dir: Path
    data_dir: Path  # source task stream (CSV files + manifest) made by `model.data`
    landing_dir: Path  # new task batches arrive here
    validated_dir: Path  # batches that passed validation
    quarantine_dir: Path  # rejected batches, original bytes + report
    state_dir: Path  # checkpoints and learner state
    backup_dir: Path
    log_dir: Path  # JSON-lines logs of the app and training
    reports_dir: Path  # maintenance and data-quality reports
    mlflow_tracking_uri: str
    mlflow_experiment: str
    registered_model: str
    lock_file: Path  # maintenance lock held by disaster recovery

    @property
    def checkpoint_dir(self) -> Path:
        """Folder that holds the task checkpoints and their ``.sha256`` sidecars."""
        return self.state_dir / "checkpoints"

    @property
    def manifest_path(self) -> Path:
        """Task manifest of the current task stream."""
        return self.data_dir / "manifest.json"


def get_settings() -> Settings:
    """Resolve settings from the environment; call again after changing env vars."""
    var = _path("CT_VAR_DIR", PROJECT_ROOT / "var")
    mlflow_db = var / "mlflow" / "mlflow.db"
    return Settings(
        var_dir=var,
        data_dir=_path("CT_DATA_DIR", var / "data" / "split_digits"),
        landing_dir=_path("CT_LANDING_DIR", var / "landing"),
        validated_dir=_path("CT_VALIDATED_DIR", var / "validated"),
        quarantine_dir=_path("CT_QUARANTINE_DIR", var / "quarantine"),
        state_dir=_path("CT_STATE_DIR", var / "state"),
        backup_dir=_path("CT_BACKUP_DIR", var / "backups"),
        log_dir=_path("CT_LOG_DIR", var / "logs"),
        reports_dir=_path("CT_REPORTS_DIR", var / "reports"),
        mlflow_tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{mlflow_db}"),
        mlflow_experiment=os.environ.get("CT_MLFLOW_EXPERIMENT", "continual-tiny-transformer"),
        registered_model=os.environ.get("CT_REGISTERED_MODEL", "continual-tiny-transformer"),
        lock_file=_path("CT_LOCK_FILE", var / "maintenance.lock"),
    )
