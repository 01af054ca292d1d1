"""Where a restore writes (the live locations, or a drill's scratch folder) and the marker it leaves there."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.ops.backup import mlflow_store
from include.ops.backup.config import env_file_path
from include.ops.settings import Settings

MARKER_NAME = ".restored_from.json"  # written into the restored state folder (hidden: never backed up)


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


def restored_marker(state_dir: Path) -> dict[str, Any] | None:
    """The ``.restored_from.json`` a restore left in ``state_dir``, or None."""
    path = state_dir / MARKER_NAME
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
