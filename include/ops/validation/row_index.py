"""The row index of a validated store: a hash per validated image, so a batch repeating another task's images
(relabelled or not) is refused.

``validated_dir/row_index.npz`` holds, per validated file (``names``, ``sha256``, ``task_ids``), the
8-byte blake2b digest of every row's pixels (``hashes``, sliced by ``offsets``). Pixels are hashed as the
canonical reader returns them (int64), packed as int8 when every value fits (always for a validated file:
the suite bounds pixels to 0..PIXEL_MAX), so equal images give equal digests whatever their text spelling
(``3`` and ``03``). Exact matches only; near duplicates are the distribution check's business. With 64-bit
digests a false match needs ~4e9 rows for even odds, and only a share above
``CT_VALIDATION_MAX_DUPLICATE_SHARE`` refuses a batch.

The store's ``index.json`` is the truth; this file is derived from it. Every load reconciles: a file of
``index.json`` missing here (a kill between publishing and indexing, an older store, a deleted or garbled
index) is hashed from the store, entries of files no longer validated are dropped. So the index needs no
repair and is rebuilt when missing. It is written atomically under the store lock, after the publish.
Each stream has its own validated store, hence its own index: the same images regrouped into another
stream's folder are not refused. CPU time on 100k rows x 64 pixels: hashing 0.06 s, matching them against
400k indexed rows 0.07 s (one sort of the indexed digests, one binary search).
"""

from __future__ import annotations

import hashlib
import io
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from include.ops.validation.config import FILE_MODE
from include.ops.validation.prechecks import PrecheckFailure
from include.ops.validation.store import LOCK_NAME, read_index
from model.fsio import atomic_write_bytes, file_lock

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

ROW_INDEX_NAME = "row_index.npz"
ROW_INDEX_VERSION = 1
CHECK = "duplicate_rows"
DIGEST_BYTES = 8
SAMPLE_ROWS = 10


# --- the reader seam: the one place validation gets pixels (switch to model.data's canonical reader here) ---


def frame_pixels(frame: pd.DataFrame) -> np.ndarray:
    """The (rows, features) int64 pixels of a batch frame (feature columns ``f<n>`` in file order)."""
    from include.ops.validation.leakage import feature_columns_of

    return frame[feature_columns_of(frame)].to_numpy(np.int64)


def read_pixels(path: Path) -> np.ndarray:
    """The int64 pixels of a validated task file, by the one reader (ValueError naming the file when unreadable)."""
    from model.task_table import TaskFileError, read_task_table

    try:
        return read_task_table(path).task_arrays()[0]
    except (OSError, TaskFileError) as exc:
        raise ValueError(f"cannot read the pixels of validated file {path}: {exc}") from exc


# --- hashing and the index ---


def row_hashes(pixels: np.ndarray) -> np.ndarray:
    """uint64 blake2b digest of each row of ``pixels`` (equal rows, equal digests)."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 2:
        raise ValueError(f"pixels must be (rows, features), got shape {pixels.shape}")
    fits = pixels.size == 0 or (pixels.min() >= -128 and pixels.max() <= 127)
    packed = np.ascontiguousarray(pixels, dtype=np.int8 if fits else "<i8")
    width = packed.shape[1] * packed.itemsize
    view = memoryview(packed.tobytes())
    blake = hashlib.blake2b
    digests = b"".join(
        blake(view[i : i + width], digest_size=DIGEST_BYTES).digest() for i in range(0, len(view), width or 1)
    )
    return np.frombuffer(digests, dtype="<u8")[: len(packed)].copy()


@dataclass(frozen=True)
class FileRows:
    """The row digests of one validated file."""

    sha256: str
    task_id: str
    hashes: np.ndarray


@dataclass
class RowIndex:
    """Row digests per validated file of one store; ``changed`` when reconciling altered what is on disk."""

    files: dict[str, FileRows] = field(default_factory=dict)
    changed: bool = False

    def duplicates(self, hashes: np.ndarray, name: str, task_id: str | None) -> dict[str, Any]:
        """Rows of a batch equal to rows of OTHER tasks' files: counts per task, share, sample CSV lines.

        A row repeating images of several tasks counts once, for one of them.
        """
        others = [
            (other, rows)
            for other, rows in sorted(self.files.items())
            if other != name and (task_id is None or rows.task_id != task_id)
        ]
        hit = np.zeros(len(hashes), dtype=bool)
        by_task: dict[str, dict[str, Any]] = {}
        if others and len(hashes):
            pooled = np.concatenate([rows.hashes for _, rows in others])
            owner = np.repeat(np.arange(len(others)), [len(rows.hashes) for _, rows in others])
            order = np.argsort(pooled, kind="stable")
            ordered = pooled[order]
            pos = np.minimum(np.searchsorted(ordered, hashes), max(len(ordered) - 1, 0))
            hit = ordered[pos] == hashes if len(ordered) else hit
            counts = np.bincount(owner[order[pos[hit]]], minlength=len(others))
            for k in np.flatnonzero(counts):
                other, rows = others[k]
                by_task[rows.task_id] = {"file": other, "rows": int(counts[k])}
        total = int(hit.sum())
        return {
            "rows": len(hashes),
            "duplicate_rows": total,
            "share": round(total / len(hashes), 6) if len(hashes) else 0.0,
            "by_task": by_task,
            "sample_lines": [int(i) + 2 for i in np.flatnonzero(hit)[:SAMPLE_ROWS]],
            "indexed_files": len(self.files),
        }


def _read_file(path: Path) -> dict[str, FileRows]:
    with np.load(path, allow_pickle=False) as data:
        if int(data["version"]) != ROW_INDEX_VERSION:
            raise ValueError(f"version {int(data['version'])}, expected {ROW_INDEX_VERSION}")
        names, shas, tasks = data["names"], data["sha256"], data["task_ids"]
        offsets, hashes = data["offsets"], data["hashes"]
    return {
        str(n): FileRows(str(s), str(t), hashes[offsets[i] : offsets[i + 1]])
        for i, (n, s, t) in enumerate(zip(names, shas, tasks, strict=True))
    }


def load(validated_dir: Path, known: dict[str, np.ndarray] | None = None) -> RowIndex:
    """The row index of ``validated_dir`` reconciled with its ``index.json`` (files hashed as needed).

    ``known`` gives digests already computed for some file names (the batch just published). A missing or
    unreadable index file is rebuilt from the store's files; nothing is written here (see :func:`record`).
    """
    validated_dir = Path(validated_dir)
    path = validated_dir / ROW_INDEX_NAME
    stored: dict[str, FileRows] = {}
    if path.is_file():
        try:
            stored = _read_file(path)
        except (OSError, ValueError, KeyError, IndexError, zipfile.BadZipFile) as exc:
            log.warning("row index %s is unreadable (%s): rebuilding it from the validated store", path, exc)
    index = RowIndex(changed=not path.is_file())
    for name, entry in read_index(validated_dir).get("files", {}).items():
        sha, task_id = str(entry.get("sha256")), str(entry.get("task_id"))
        have = stored.pop(name, None)
        if have is not None and have.sha256 == sha:
            index.files[name] = have
            continue
        index.changed = True
        if known is not None and name in known:
            index.files[name] = FileRows(sha, task_id, known[name])
            continue
        file = validated_dir / name
        if not file.is_file():
            log.warning("validated file %s is listed in index.json but missing: not indexed", file)
            continue
        try:
            index.files[name] = FileRows(sha, task_id, row_hashes(read_pixels(file)))
        except ValueError as exc:
            log.warning("%s: not indexed", exc)
    index.changed = index.changed or bool(stored)  # entries of files no longer validated are dropped
    return index


def save(validated_dir: Path, index: RowIndex) -> Path:
    """Write ``index`` to ``validated_dir/row_index.npz`` atomically; return the path."""
    names = sorted(index.files)
    rows = [index.files[n] for n in names]
    lengths = [len(r.hashes) for r in rows]
    buf = io.BytesIO()
    np.savez(
        buf,
        version=np.array(ROW_INDEX_VERSION),
        names=np.array(names, dtype=str),
        sha256=np.array([r.sha256 for r in rows], dtype=str),
        task_ids=np.array([r.task_id for r in rows], dtype=str),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        hashes=np.concatenate([r.hashes for r in rows]) if rows else np.zeros(0, dtype="<u8"),
    )
    path = Path(validated_dir) / ROW_INDEX_NAME
    atomic_write_bytes(path, buf.getvalue(), FILE_MODE)
    return path


def record(validated_dir: Path, name: str, hashes: np.ndarray) -> Path:
    """After ``name`` was published: under the store lock, reconcile, add its digests, write the index."""
    with file_lock(Path(validated_dir) / LOCK_NAME):
        index = load(validated_dir, known={name: hashes})
        return save(validated_dir, index)


def check_duplicates(
    hashes: np.ndarray, index: RowIndex, name: str, task_id: str | None, max_share: float
) -> dict[str, Any]:
    """The duplicate report of a batch; PrecheckFailure ``duplicate_rows`` naming the tasks over the share."""
    report = {**index.duplicates(hashes, name, task_id), "max_share": max_share}
    if report["duplicate_rows"] and report["share"] > max_share:
        tasks = ", ".join(f"{t} ({v['file']}: {v['rows']} rows)" for t, v in report["by_task"].items())
        raise PrecheckFailure(
            CHECK,
            f"{report['duplicate_rows']} of {report['rows']} rows ({report['share']:.1%}) repeat the images of "
            f"validated task {tasks}, over the limit of {max_share:.1%} (CT_VALIDATION_MAX_DUPLICATE_SHARE); "
            "a batch must bring new images, whatever their labels",
            report,
        )
    return report
