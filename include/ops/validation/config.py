"""Validation's constants and its view of the one ``Settings``: the GX project, data docs, the size limit.

The environment is read by :class:`include.ops.settings.Settings` (``CT_GX_PROJECT_DIR``,
``CT_GX_DATA_DOCS_DIR``, ``CT_GX_DATA_DOCS``, ``CT_VALIDATION_MAX_BYTES``); the defaults of those that
are unset live here. The class-balance bounds (``CT_VALIDATION_MIN_CLASSES_PER_TASK``,
``CT_VALIDATION_MAX_CLASS_SHARE``) are settings the suite reads as parameters; the other data thresholds
(duplicate rows, row counts) are part of the committed suite ``great_expectations/expectations/task_batch.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from include.ops.settings import PROJECT_ROOT, Settings, get_settings

GX_PROJECT_DIR = PROJECT_ROOT / "great_expectations"
SUITE_NAME = "task_batch"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # a 100k-row batch is ~15 MiB; anything far bigger is not a task batch
MANIFEST_NAME = "manifest.json"
FILE_MODE = 0o644  # mkstemp creates 0600; stored batches and reports must stay readable by other services


@dataclass(frozen=True)
class ValidationConfig:
    """Where the committed suite lives, where data docs go, whether to build them, and the size limit."""

    gx_project_dir: Path  # committed GX project; read, never written, at run time
    data_docs_dir: Path  # generated data docs (git-ignored), one site per validated file
    build_data_docs: bool
    max_bytes: int  # files above this size are rejected before they are read
    min_classes_per_task: int  # a batch must hold at least this many distinct labels (suite parameter)
    max_class_share: float  # the most frequent class's share of a batch, at most (suite parameter)

    @property
    def suite_path(self) -> Path:
        """The committed expectation suite of a task batch."""
        return self.gx_project_dir / "expectations" / f"{SUITE_NAME}.json"


def get_validation_config(settings: Settings | None = None) -> ValidationConfig:
    """The validation config of ``settings`` (resolved from the environment when not given)."""
    settings = settings or get_settings()
    gx_dir = Path(settings.gx_project_dir or GX_PROJECT_DIR).expanduser().resolve()
    docs = settings.gx_data_docs_dir
    return ValidationConfig(
        gx_project_dir=gx_dir,
        data_docs_dir=Path(docs).expanduser().resolve() if docs else gx_dir / "uncommitted" / "data_docs",
        build_data_docs=settings.gx_data_docs,
        max_bytes=settings.validation_max_bytes or DEFAULT_MAX_BYTES,
        min_classes_per_task=settings.validation_min_classes_per_task,
        max_class_share=settings.validation_max_class_share,
    )
