"""Train/test leakage between a batch and the validated store: identical feature vectors across splits.

A train row whose features equal a test row (of this batch or of any validated task) inflates test accuracy;
so does a test row of this batch that a validated task already trains on. Rows are compared by a 64-bit hash
of their feature values (cast to float64, so ``3`` and ``3.0`` match).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

FEATURE_RE = re.compile(r"^f\d+$")
SAMPLE_ROWS = 10
_cache: dict[tuple[str, int, int], tuple[np.ndarray, np.ndarray]] = {}
_cache_lock = threading.Lock()


def feature_columns_of(frame: pd.DataFrame) -> list[str]:
    """The feature columns (``f<n>``) of ``frame`` in file order."""
    return [str(c) for c in frame.columns if FEATURE_RE.match(str(c))]


def row_keys(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """uint64 hash per row of the feature values in ``columns`` (non-numeric values hash as NaN)."""
    import numpy as np
    import pandas as pd

    block = frame[columns]
    if not all(pd.api.types.is_numeric_dtype(dtype) for dtype in block.dtypes):
        block = block.apply(pd.to_numeric, errors="coerce")
    values = block.to_numpy(dtype=np.float64)
    return pd.util.hash_pandas_object(pd.DataFrame(values), index=False).to_numpy()


def _split_keys(frame: pd.DataFrame, split_column: str) -> tuple[np.ndarray, np.ndarray]:
    keys = row_keys(frame, feature_columns_of(frame))
    split = frame[split_column].astype(str).to_numpy()
    return keys[split == "train"], keys[split == "test"]


def reference_files(reference_dir: str | Path | None, exclude_file: str | None) -> list[Path]:
    """Validated task files to compare against: every ``*.csv`` in ``reference_dir`` except ``exclude_file``."""
    if not reference_dir:
        return []
    folder = Path(reference_dir)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.csv") if p.name != exclude_file and not p.name.startswith("."))


def _reference_keys(path: Path, split_column: str) -> tuple[np.ndarray, np.ndarray]:
    """(train keys, test keys) of a validated file, cached by path, size and mtime (read by the one reader)."""
    from include.ops.validation.prechecks import read_task_frame

    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit
    frame = read_task_frame(path)
    keys = _split_keys(frame, split_column)
    with _cache_lock:
        _cache[key] = keys
    return keys


def leakage_report(
    frame: pd.DataFrame, references: list[Path], split_column: str = "split"
) -> dict[str, Any]:
    """Count leaked rows of ``frame`` against itself and ``references``; JSON-serialisable report.

    ``leaked_rows`` = train rows equal to a test row (batch or reference) + test rows equal to a reference
    train row. ``sample_lines`` are 1-based CSV line numbers (header = line 1) of the first leaked rows.
    """
    import numpy as np

    keys = row_keys(frame, feature_columns_of(frame))
    split = frame[split_column].astype(str).to_numpy()
    is_train, is_test = split == "train", split == "test"
    leaked = np.isin(keys, keys[is_test]) & is_train
    by_reference: dict[str, int] = {}
    within = int(leaked.sum())
    if within:
        by_reference["<this batch>"] = within
    for path in references:
        ref_train, ref_test = _reference_keys(path, split_column)
        hits = (np.isin(keys, ref_test) & is_train) | (np.isin(keys, ref_train) & is_test)
        count = int((hits & ~leaked).sum())
        if count:
            by_reference[path.name] = count
        leaked |= hits
    rows = np.flatnonzero(leaked)
    return {
        "leaked_rows": int(leaked.sum()),
        "leaked_train_rows": int((leaked & is_train).sum()),
        "leaked_test_rows": int((leaked & is_test).sum()),
        "by_reference": by_reference,
        "sample_lines": [int(i) + 2 for i in rows[:SAMPLE_ROWS]],
        "references": [p.name for p in references],
    }
