"""Checks below the table level, run before Great Expectations: file name, size, bytes, CSV structure.

Each failure raises :class:`PrecheckFailure` naming the check (one of :data:`PRECHECKS`) and what was found
where, so a file that is not a readable table is rejected with a reason an operator can act on.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from model.data import TaskManifest, TaskSpec

PRECHECKS = ("file_name", "manifest_match", "size_limit", "empty_file", "encoding", "csv_structure")
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


def decode_text(data: bytes) -> str:
    """Decode strict UTF-8 without NUL bytes; raise ``encoding`` naming the byte offset and line."""
    try:
        text = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PrecheckFailure(
            "encoding",
            f"not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line}): {exc.reason}",
            {"offset": exc.start, "line": line},
        ) from None
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise PrecheckFailure(
            "encoding", f"NUL byte at offset {nul} (line {line}): binary data, not CSV", {"line": line}
        )
    if not text.strip():
        raise PrecheckFailure("empty_file", "file holds only whitespace", {"size_bytes": len(data)})
    return text


def _structure_error(line: int, fields: int, width: int) -> PrecheckFailure:
    return PrecheckFailure(
        "csv_structure",
        f"line {line} has {fields} fields, the header has {width} (truncated or garbled CSV)",
        {"line": line, "fields": fields, "header_fields": width},
    )


def _check_header(header: list[str]) -> None:
    if len(header) < 2 or any(not col.strip() for col in header):
        raise PrecheckFailure(
            "csv_structure", f"line 1 is not a CSV header (fields {header[:5]}...)", {"line": 1}
        )


def check_csv_structure(text: str) -> list[str]:
    """Return the header after checking every line has as many fields as it; raise ``csv_structure``.

    Unquoted text (the core format) is checked by counting separators per line; text with quotes goes
    through the csv module in strict mode. Blank lines are ignored, as the CSV reader does.
    """
    if '"' not in text:
        lines = text.split("\n")
        header = lines[0].rstrip("\r").split(",")
        _check_header(header)
        width = len(header)
        counts = [line.count(",") for line in lines]
        for number, (line, commas) in enumerate(zip(lines, counts, strict=True), start=1):
            if commas != width - 1 and line.strip():
                raise _structure_error(number, commas + 1, width)
        return header
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
        _check_header(header)
        width = len(header)
        for row in reader:
            if row and len(row) != width:
                raise _structure_error(reader.line_num, len(row), width)
    except csv.Error as exc:
        raise PrecheckFailure(
            "csv_structure", f"unparseable CSV at line {reader.line_num}: {exc}", {"line": reader.line_num}
        ) from None
    return header


def to_frame(data: bytes) -> pd.DataFrame:
    """Parse structurally sound UTF-8 CSV bytes into a DataFrame; dtypes are inferred (GX checks them).

    Text columns are held as ``object``: GX 1.24's type checks do not recognise pandas 3's ``str`` dtype.
    """
    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(data), encoding="utf-8", low_memory=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise PrecheckFailure("csv_structure", f"unparseable CSV: {exc}") from None
    for col in frame.columns:
        if pd.api.types.is_string_dtype(frame[col].dtype) and frame[col].dtype != object:
            frame[col] = frame[col].astype(object)
    return frame


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
    text = decode_text(data)
    check_csv_structure(text)
    return spec, to_frame(data)
