"""Checks below the table level, run before Great Expectations: file name, size, bytes, CSV structure.

Bytes and structure are judged by the one task-file reader (``model.task_table``, which training uses too),
and the DataFrame handed to GX is built from its table, never by a second parser.

Each failure raises :class:`PrecheckFailure` naming the check (one of :data:`PRECHECKS`) and what was found
where, so a file that is not a readable table is rejected with a reason an operator can act on.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model.task_table import TaskFileError, TaskTable, decode_task_bytes, parse_task_text, read_task_table

if TYPE_CHECKING:
    import pandas as pd

    from model.data import TaskManifest, TaskSpec

PRECHECKS = (
    "file_type",
    "file_name",
    "manifest_match",
    "size_limit",
    "empty_file",
    "encoding",
    "csv_structure",
)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass
class PrecheckFailure(Exception):
    """A file failed a pre-GX check: ``check`` is the check's name, ``detail`` says what and where."""

    check: str
    detail: str
    observed: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(f"{self.check}: {self.detail}")

    def __str__(self) -> str:
        return f"{self.check}: {self.detail}"


def entry_kind(path: Path) -> str:
    """What a landing entry is, without following a link: ``file``, ``symlink``, ``directory`` or ``special``."""
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISREG(mode):
        return "file"
    return "directory" if stat.S_ISDIR(mode) else "special"


def file_type_failure(path: Path, kind: str) -> PrecheckFailure:
    """The ``file_type`` failure of a landing entry that is not a regular file (a link's target is named, not read)."""
    if kind == "symlink":
        target = os.readlink(path)
        detail = (
            f"{Path(path).name} is a symbolic link (to {target!r}), not a regular file: links are never followed "
            "(the target is left untouched); land the file itself"
        )
        return PrecheckFailure("file_type", detail, {"kind": kind, "link_target": target})
    what = {"directory": "a folder", "special": "a special file (FIFO, socket or device)"}.get(kind, kind)
    detail = f"{Path(path).name} is {what}, not a regular file: only task files are landed"
    return PrecheckFailure("file_type", detail, {"kind": kind})


def check_file_name(name: str) -> str:
    """Return ``name`` if it is a plain, safe file name ending in ``.csv``; else raise ``file_name``."""
    if not name or "\x00" in name:
        raise PrecheckFailure("file_name", f"empty or NUL-containing file name {name!r}")
    if "/" in name or "\\" in name or ".." in name:
        raise PrecheckFailure(
            "file_name", f"file name {name!r} contains a path (traversal or nested folder); plain names only"
        )
    if not _SAFE_NAME.match(name):
        raise PrecheckFailure(
            "file_name",
            f"file name {name!r} must match {_SAFE_NAME.pattern} (letters, digits, '.', '_', '-')",
        )
    if not name.endswith(".csv"):
        raise PrecheckFailure("file_name", f"file name {name!r} is not a .csv task batch")
    return name


def match_manifest(name: str, manifest: TaskManifest) -> TaskSpec:
    """The manifest task whose file is ``name``; raise ``manifest_match`` listing the expected names."""
    for spec in manifest.tasks:
        if spec.file == name:
            return spec
    expected = [spec.file for spec in manifest.tasks]
    raise PrecheckFailure(
        "manifest_match",
        f"{name!r} is not a task file of manifest {manifest.name!r} (expected one of {expected})",
    )


def check_size(size: int, max_bytes: int) -> None:
    """Raise ``size_limit`` when the file is larger than ``max_bytes``, ``empty_file`` when it has no bytes."""
    if size > max_bytes:
        raise PrecheckFailure(
            "size_limit",
            f"file is {size} bytes, over the limit of {max_bytes} (CT_VALIDATION_MAX_BYTES)",
            {"size_bytes": size, "max_bytes": max_bytes},
        )
    if size == 0:
        raise PrecheckFailure("empty_file", "file has no bytes", {"size_bytes": 0})


def _failure(exc: TaskFileError) -> PrecheckFailure:
    return PrecheckFailure(exc.check, exc.detail, exc.observed)


def decode_text(data: bytes) -> str:
    """Decode strict UTF-8 without NUL bytes (a leading BOM stripped); raise ``encoding`` naming offset and line."""
    try:
        return decode_task_bytes(data)
    except TaskFileError as exc:
        raise _failure(exc) from None


def check_csv_structure(text: str) -> list[str]:
    """Return the header after checking every line has as many fields as it; raise ``csv_structure``.

    The text goes through the one task-file reader (``model.task_table.parse_task_text``): LF or CRLF line
    ends, blank lines skipped, RFC 4180 quoting.
    """
    try:
        return parse_task_text(text).header
    except TaskFileError as exc:
        raise _failure(exc) from None


def read_table(data: bytes) -> TaskTable:
    """The task table of a file's bytes (the reader training uses); PrecheckFailure naming the check."""
    try:
        return parse_task_text(decode_task_bytes(data))
    except TaskFileError as exc:
        raise _failure(exc) from None


def table_frame(table: TaskTable) -> pd.DataFrame:
    """The DataFrame GX validates: the reader's columns as they are (int64, float64 or object text).

    Text columns are held as ``object``: GX 1.24's type checks do not recognise pandas 3's ``str`` dtype.
    """
    import pandas as pd

    frame = pd.DataFrame(dict(enumerate(table.columns)), copy=False)
    frame.columns = list(table.header)
    for col in frame.columns:
        if pd.api.types.is_string_dtype(frame[col].dtype) and frame[col].dtype != object:
            frame[col] = frame[col].astype(object)
    return frame


def read_task_frame(path: Path) -> pd.DataFrame:
    """The DataFrame of a task file on disk, read by the one reader; ValueError naming the file if unreadable."""
    try:
        return table_frame(read_task_table(path))
    except (OSError, TaskFileError) as exc:
        raise ValueError(f"cannot read task file {path}: {exc}") from exc


def read_batch(
    path: Path, name: str, manifest: TaskManifest, max_bytes: int
) -> tuple[TaskSpec, pd.DataFrame]:
    """Run every pre-check on the file at ``path`` landed as ``name``; return its task and its table."""
    check_file_name(name)
    spec = match_manifest(name, manifest)
    size = Path(path).stat().st_size
    check_size(size, max_bytes)
    with Path(path).open("rb") as f:
        data = f.read(max_bytes + 1)
    check_size(len(data), max_bytes)  # the file may have grown since stat
    return spec, table_frame(read_table(data))
