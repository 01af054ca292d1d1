"""Validation settings resolved once from the environment: the GX project, limits, S3 landing, data docs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from include.ops.settings import PROJECT_ROOT

GX_PROJECT_DIR = PROJECT_ROOT / "great_expectations"
SUITE_NAME = "task_batch"
FEATURE_COUNT = 64  # the core task format: f0..f63 (8x8 digit images), then label, split
DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # a 100k-row batch is ~15 MiB; anything far bigger is not a task batch
MANIFEST_NAME = "manifest.json"


def _flag(env: str, default: bool) -> bool:
    value = os.environ.get(env)
    return default if value is None else value.strip().lower() not in ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class ValidationConfig:
    """Where the committed suite lives, where data docs go, size limit, and the optional S3 landing zone."""

    gx_project_dir: Path  # committed GX project; read, never written, at run time
    data_docs_dir: Path  # generated data docs (git-ignored), one site per validated file
    build_data_docs: bool
    max_bytes: int  # files above this size are rejected before they are read
    s3_conn_id: str  # Airflow connection that switches the landing zone to S3 when it exists
    s3_landing_uri: str  # s3://bucket/prefix/ watched for new batches
    s3_quarantine_uri: str  # s3://bucket/prefix/ that rejected objects are moved to

    @property
    def suite_path(self) -> Path:
        """The committed expectation suite of a task batch."""
        return self.gx_project_dir / "expectations" / f"{SUITE_NAME}.json"


def get_validation_config() -> ValidationConfig:
    """Resolve the validation settings from the environment; call again after changing env vars."""
    gx_dir = Path(os.environ.get("CT_GX_PROJECT_DIR") or GX_PROJECT_DIR).expanduser().resolve()
    docs = os.environ.get("CT_GX_DATA_DOCS_DIR")
    max_bytes = os.environ.get("CT_VALIDATION_MAX_BYTES", "")
    try:
        limit = int(max_bytes) if max_bytes.strip() else DEFAULT_MAX_BYTES
    except ValueError as exc:
        raise ValueError(
            f"CT_VALIDATION_MAX_BYTES must be an integer number of bytes, got {max_bytes!r}"
        ) from exc
    if limit <= 0:
        raise ValueError(f"CT_VALIDATION_MAX_BYTES must be > 0, got {limit}")
    landing_uri = os.environ.get("CT_LANDING_S3_URI", "s3://continual-transformer/landing/")
    return ValidationConfig(
        gx_project_dir=gx_dir,
        data_docs_dir=Path(docs).expanduser().resolve() if docs else gx_dir / "uncommitted" / "data_docs",
        build_data_docs=_flag("CT_GX_DATA_DOCS", True),
        max_bytes=limit,
        s3_conn_id=os.environ.get("CT_S3_CONN_ID", "s3"),
        s3_landing_uri=landing_uri,
        s3_quarantine_uri=os.environ.get("CT_QUARANTINE_S3_URI", "s3://continual-transformer/quarantine/"),
    )
