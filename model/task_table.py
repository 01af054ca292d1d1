"""The one reader of a task file: bytes in, header and typed columns out.

Training (``model.data.load_task_csv``), validation (its pre-checks hand GX a DataFrame built from this table),
the leakage check, data-quality analysis, backup evaluation and drills all read task files through
:func:`read_task_table`, so the same bytes give the same table everywhere. What it accepts:

- **Encoding**: UTF-8. A leading UTF-8 byte-order mark is stripped (it is not part of the first column's
  name). Other non-UTF-8 bytes and NUL bytes are refused (check ``encoding``, offset and line named).
- **Line ends**: LF or CRLF, mixed or not. A carriage return that does not end a line is refused
  (``csv_structure``): old Mac line ends are not read.
- **Blank lines** (empty or whitespace only), a trailing one included, are skipped.
- **Quoting** (RFC 4180): any field may be quoted; the quotes are not part of the value, so ``"3"`` is the
  number 3 and ``"train"`` is ``train``. An unterminated or misplaced quote is refused (``csv_structure``).
- **Shape**: every row has as many fields as the header (``csv_structure`` naming the line); header names are
  kept as written (not trimmed), none may be empty or given twice.
- **Values**: the column ``split`` is text; every other column is numeric. A numeric cell is an integer when it
  is an optional sign and ASCII digits, optionally surrounded by spaces or tabs, within int64 (numpy's
  ``loadtxt`` rule, used for every such cell). A column whose cells are all integers is ``int64``; otherwise
  ``float64`` when every non-blank cell is a number (blanks become NaN), else the cells as text (blanks
  become None), and the first offending cell is remembered in ``TaskTable.not_integer``. Validation hands such
  columns to Great Expectations, whose type, null and range expectations name them; training refuses them
  naming the column, line and value (:meth:`TaskTable.task_arrays`).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PIXEL_MAX = 16  # the digits images are integer intensities 0..16
SPLITS = ("train", "test")
TEXT_COLUMNS = ("split",)
_PLAIN_INT = re.compile(r"[ \t]*[+-]?[0-9]+[ \t]*")
_INT64 = (-(2**63), 2**63 - 1)


class TaskFileError(ValueError):
    """A task file is not a readable table or not in the task format; ``check`` names the failed check."""

    def __init__(self, check: str, detail: str, observed: dict | None = None) -> None:
        super().__init__(detail)
        self.check, self.detail, self.observed = check, detail, observed or {}


def feature_columns(n: int) -> list[str]:
    """Names of the ``n`` pixel columns in file order."""
    return [f"f{i}" for i in range(n)]


@dataclass(frozen=True)
class TaskTable:
    """A task file as read: header names, one numpy array per column, the file line of each row.

    Numeric columns are int64 (every cell an integer), float64 or object (text); ``not_integer`` maps each
    numeric column that is not int64 to ``(line, cell)`` of its first cell that is not an integer.
    """

    header: list[str]
    columns: list[np.ndarray]
    line_numbers: np.ndarray
    not_integer: dict[str, tuple[int, str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.line_numbers)

    def column(self, name: str) -> np.ndarray:
        """The values of column ``name``; KeyError naming it if the header has no such column."""
        try:
            return self.columns[self.header.index(name)]
        except ValueError:
            raise KeyError(f"no column {name!r} in the task file header") from None

    def task_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(pixels int64 (N, F), labels int64 (N,), split str (N,))`` of a file in the task format.

        Raises TaskFileError naming what is wrong: the header (f0..fN-1,label,split), a non-integer value
        (column, line, value), a pixel outside [0, PIXEL_MAX], a negative label, an unknown split value, or
        a file without both train and test rows.
        """
        n_feat = len(self.header) - 2
        if n_feat < 1 or self.header != [*feature_columns(n_feat), "label", "split"]:
            raise TaskFileError("header", "header must be f0..fN-1,label,split")
        for name in self.header[:-1]:
            if name in self.not_integer:
                line, cell = self.not_integer[name]
                raise TaskFileError(
                    "values", f"non-integer value {cell!r} in column {name} at line {line}", {"line": line}
                )
        pixels = np.column_stack(self.columns[:n_feat]) if len(self) else np.empty((0, n_feat), np.int64)
        labels, split = self.columns[n_feat], self.columns[n_feat + 1]
        if pixels.size and (pixels.min() < 0 or pixels.max() > PIXEL_MAX):
            raise TaskFileError("values", f"pixel values must lie in [0, {PIXEL_MAX}]")
        if labels.size and labels.min() < 0:
            raise TaskFileError("values", "negative label")
        bad = sorted(set(split.tolist()) - set(SPLITS), key=str)
        if bad:
            raise TaskFileError("values", f"unknown split value {bad[0]!r}")
        is_train = split == "train"
        if not is_train.any() or is_train.all():
            raise TaskFileError("values", "needs both train and test rows")
        return pixels, labels, split.astype(str)


def decode_task_bytes(data: bytes) -> str:
    """Strict UTF-8 text of a task file, a leading BOM stripped; TaskFileError for bad bytes or no content."""
    if not data:
        raise TaskFileError("empty_file", "empty file (no bytes)", {"size_bytes": 0})
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        text = data[skip:].decode("utf-8", errors="strict") if skip else data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        start = exc.start + skip
        line = data.count(b"\n", 0, start) + 1
        raise TaskFileError(
            "encoding",
            f"not UTF-8: byte 0x{data[start]:02x} at offset {start} (line {line}): {exc.reason}",
            {"offset": start, "line": line},
        ) from None
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise TaskFileError(
            "encoding", f"NUL byte at offset {nul} (line {line}): binary data, not CSV", {"line": line}
        )
    if not text or text.isspace():
        raise TaskFileError("empty_file", "file holds only whitespace", {"size_bytes": len(data)})
    return text


def _structure_error(line: int, fields: int, width: int) -> TaskFileError:
    return TaskFileError(
        "csv_structure",
        f"line {line} has {fields} fields, the header has {width} (truncated or garbled CSV)",
        {"line": line, "fields": fields, "header_fields": width},
    )


def _check_header(header: list[str]) -> None:
    if len(header) < 2 or any(not col.strip() for col in header):
        raise TaskFileError(
            "csv_structure", f"line 1 is not a CSV header (fields {header[:5]}...)", {"line": 1}
        )
    seen: set[str] = set()
    for col in header:
        if col in seen:
            raise TaskFileError("csv_structure", f"line 1 names column {col!r} twice", {"line": 1})
        seen.add(col)


def _plain_rows(text: str) -> tuple[list[str], list[str], list[int]]:
    """(header, body lines, their line numbers) of unquoted text: fields counted by separators."""
    lines = text.split("\n")
    header = lines[0].split(",")
    _check_header(header)
    width = len(header)
    body, numbers = [], []
    for number, line in enumerate(lines[1:], start=2):
        commas = line.count(",")
        if commas != width - 1:
            if not line.strip():
                continue
            raise _structure_error(number, commas + 1, width)
        body.append(line)
        numbers.append(number)
    return header, body, numbers


def _quoted_rows(text: str) -> tuple[list[str], list[list[str]], list[int]]:
    """(header, rows, their line numbers) of text with quotes, through the csv module in strict mode."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, [])
        _check_header(header)
        width = len(header)
        rows, numbers = [], []
        for row in reader:
            if len(row) != width:
                if len(row) <= 1 and not "".join(row).strip():
                    continue
                raise _structure_error(reader.line_num, len(row), width)
            rows.append(row)
            numbers.append(reader.line_num)
    except csv.Error as exc:
        raise TaskFileError(
            "csv_structure", f"unparseable CSV at line {reader.line_num}: {exc}", {"line": reader.line_num}
        ) from None
    return header, rows, numbers


def _loadtxt(lines: list[str], dtype: type, usecols: list[int] | None = None) -> np.ndarray | None:
    """numpy's C parser on ``lines`` (one row each); None when a value does not parse or rows go missing."""
    width = 1 if usecols is None else len(usecols)
    if not lines:
        return np.empty((0, width) if usecols is not None else 0, dtype)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = np.loadtxt(
                lines, dtype=dtype, delimiter=",", usecols=usecols, comments=None, ndmin=2 if usecols else 1
            )
    except ValueError:
        return None
    expected = (len(lines), width) if usecols is not None else (len(lines),)
    return values if values.shape == expected else None


def _numeric_column(cells: list[str], numbers: list[int]) -> tuple[np.ndarray, tuple[int, str] | None]:
    """One numeric column: int64, else float64 (blank = NaN), else text; with its first non-integer cell."""
    ints = _loadtxt(cells, np.int64)
    if ints is not None:
        return ints, None
    first = next(
        (
            i
            for i, c in enumerate(cells)
            if not (_PLAIN_INT.fullmatch(c) and _INT64[0] <= int(c) <= _INT64[1])
        ),
        0,
    )
    bad = (numbers[first], cells[first])
    blank = np.array([not c.strip() for c in cells], dtype=bool)
    floats = _loadtxt([c for c, b in zip(cells, blank, strict=True) if not b], np.float64)
    if floats is not None:
        column = np.full(len(cells), np.nan)
        column[~blank] = floats
        return column, bad
    return np.array([None if b else c for c, b in zip(cells, blank, strict=True)], dtype=object), bad


def _text_column(cells: list[str]) -> np.ndarray:
    return np.array([c if c.strip() else None for c in cells], dtype=object)


def parse_task_text(text: str) -> TaskTable:
    """The table of decoded task-file text (see the module docstring for what is accepted)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        cr = text.find("\r")
        if cr >= 0:
            line = text.count("\n", 0, cr) + 1
            raise TaskFileError(
                "csv_structure",
                f"line {line} holds a carriage return that does not end the line (LF or CRLF line ends only)",
                {"line": line},
            )
    rows: list[list[str]] | None = None
    if '"' in text:
        header, rows, numbers = _quoted_rows(text)
        width = len(header)
        body: list[str] | None = [",".join(r) for r in rows]
        if any(line.count(",") != width - 1 or "\n" in line for line in body):
            body = None  # a quoted cell holds a separator or a line end: go column by column
    else:
        header, body, numbers = _plain_rows(text)
    width = len(header)
    numeric = [j for j, name in enumerate(header) if name not in TEXT_COLUMNS]
    columns: list[np.ndarray] = [np.empty(0)] * width
    not_integer: dict[str, tuple[int, str]] = {}
    block = _loadtxt(body, np.int64, numeric) if body is not None and numeric else None
    if block is not None:
        for k, j in enumerate(numeric):
            columns[j] = block[:, k]
    else:
        if rows is None:
            rows = [line.split(",") for line in body or []]
        for j in numeric:
            columns[j], bad = _numeric_column([r[j] for r in rows], numbers)
            if bad is not None:
                not_integer[header[j]] = bad
    for j, name in enumerate(header):
        if name in TEXT_COLUMNS:
            if rows is None and j == width - 1:
                cells = [line[line.rfind(",") + 1 :] for line in body or []]
            else:
                rows = rows if rows is not None else [line.split(",") for line in body or []]
                cells = [r[j] for r in rows]
            columns[j] = _text_column(cells)
    return TaskTable(header, columns, np.asarray(numbers, dtype=np.int64), not_integer)


def read_task_table(source: bytes | str | Path) -> TaskTable:
    """Read a task file (its bytes, or a path to it) into a :class:`TaskTable`; TaskFileError if unreadable."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    return parse_task_text(decode_task_bytes(data))
