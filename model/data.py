"""Task streams on disk: one CSV per task (``f0..fN-1``, ``label``, ``split``) plus a JSON manifest.

``write_split_digits`` builds Split-Digits from scikit-learn's bundled 8x8 digits (offline); any other
stream written in the same format is read by the same code.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from model.fsio import atomic_write_bytes
from model.task_table import (  # noqa: F401  (re-exported: the task-file reader lives there)
    PIXEL_MAX,
    SPLITS,
    TaskFileError,
    TaskTable,
    feature_columns,
    read_task_table,
)

SPLIT_DIGITS_CLASSES: tuple[tuple[int, int], ...] = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))
MANIFEST_NAME = "manifest.json"


@dataclass
class TaskSpec:
    """One task of a stream: its id, the classes it brings and its CSV file (relative to the manifest)."""

    task_id: str
    classes: list[int]
    file: str


def confined_path(root: Path, file: str) -> Path:
    """``root / file`` with symlinks resolved; ValueError naming the file when it lies outside ``root``."""
    root = Path(root).resolve()
    path = (root / file).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"task file {file!r} resolves to {path}, outside {root}: refused")
    return path


@dataclass
class TaskManifest:
    """The ordered list of tasks of a stream and the total number of classes.

    ``data_roots``: folders besides the manifest's own where task files may lie (absolute paths); only the
    resolver's effective manifest (``include/ops/task_manifest.py``) has them, landing manifests may not.
    """

    name: str
    num_classes: int
    tasks: list[TaskSpec]
    data_roots: list[str] = field(default_factory=list)

    def task_path(self, task_id: str, base: Path) -> Path:
        """The task's file resolved against ``base`` (the manifest's folder), confined to it or a data root.

        ValueError naming the file when it resolves (symlinks included) outside every allowed folder.
        """
        file = self.task(task_id).file
        path = (Path(base) / file).resolve()
        allowed = [Path(base).resolve(), *(Path(r).resolve() for r in self.data_roots)]
        if not any(path.is_relative_to(root) for root in allowed):
            raise ValueError(
                f"task file {file!r} of task {task_id!r} resolves to {path}, outside {[str(r) for r in allowed]}: "
                "refused (training reads only files inside the validated store)"
            )
        return path

    def task(self, task_id: str) -> TaskSpec:
        """Return the spec of ``task_id``; KeyError naming the id if the manifest has no such task."""
        for spec in self.tasks:
            if spec.task_id == task_id:
                return spec
        raise KeyError(f"task {task_id!r} is not in manifest {self.name!r}")

    def index(self, task_id: str) -> int:
        """Return the position of ``task_id`` in the stream; KeyError if absent."""
        return self.tasks.index(self.task(task_id))

    def to_dict(self) -> dict:
        """Return the manifest as the JSON object ``load_manifest`` reads (``data_roots`` only when set)."""
        out = asdict(self)
        if not self.data_roots:
            del out["data_roots"]
        return out


@dataclass
class TaskData:
    """Tensors of one task: ``x`` float32 in [0, 1] of shape (N, F), ``y`` int64 labels."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def subsample_train(self, max_samples: int | None, seed: int) -> TaskData:
        """Return a copy with at most ``max_samples`` training rows, drawn without replacement by ``seed``."""
        if max_samples is None or max_samples >= len(self.y_train):
            return self
        gen = torch.Generator().manual_seed(seed)
        keep = torch.randperm(len(self.y_train), generator=gen)[:max_samples].sort().values
        return TaskData(self.x_train[keep], self.y_train[keep], self.x_test, self.y_test)


def _write_if_changed(path: Path, data: bytes) -> None:
    """Write atomically unless the file already holds exactly ``data`` (keeps mtimes stable on re-runs)."""
    if path.exists() and path.read_bytes() == data:
        return
    atomic_write_bytes(path, data)


def _task_csv_bytes(x: np.ndarray, y: np.ndarray, split: np.ndarray) -> bytes:
    """Serialise rows to the task CSV format."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*feature_columns(x.shape[1]), "label", "split"])
    for row, label, part in zip(x, y, split, strict=True):
        writer.writerow([*(int(v) for v in row), int(label), part])
    return buf.getvalue().encode()


def write_split_digits(out_dir: Path, seed: int = 0) -> Path:
    """Write Split-Digits (5 tasks x 2 classes, stratified 80/20 split by ``seed``); return the manifest path.

    Idempotent: the same seed always produces the same bytes, and unchanged files are not rewritten.
    """
    return write_digit_stream(out_dir, SPLIT_DIGITS_CLASSES, seed=seed, name="split_digits")


def write_digit_stream(
    out_dir: Path, groups: Sequence[Sequence[int]], seed: int = 0, name: str = "digits"
) -> Path:
    """Write a stream of scikit-learn's digits with one task per class group (``task_0``..); return the manifest.

    Every image of a group's classes appears once, split 80/20 train/test stratified by ``seed``. Idempotent like
    ``write_split_digits`` (which is this with ``SPLIT_DIGITS_CLASSES``).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    flat = [int(c) for group in groups for c in group]
    bad = not flat or any(not g for g in groups) or len(set(flat)) != len(flat)
    if bad or not set(flat) <= set(range(10)):
        raise ValueError(f"class groups must be non-empty, disjoint digits 0..9, got {groups}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    digits = load_digits()
    x = digits.data.astype(np.int64)  # (1797, 64), integers 0..16
    y = digits.target.astype(np.int64)
    idx_train, _ = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=seed)
    split = np.full(len(y), "test", dtype=object)
    split[idx_train] = "train"

    specs = []
    for k, classes in enumerate(groups):
        task_id = f"task_{k}"
        # train rows first, then test rows, each in the original order: a stable, readable file
        rows = np.concatenate([np.flatnonzero(np.isin(y, classes) & (split == s)) for s in SPLITS])
        file = f"{task_id}.csv"
        _write_if_changed(out_dir / file, _task_csv_bytes(x[rows], y[rows], split[rows]))
        specs.append(TaskSpec(task_id=task_id, classes=[int(c) for c in classes], file=file))

    manifest = TaskManifest(name=name, num_classes=10, tasks=specs)
    manifest_path = out_dir / MANIFEST_NAME
    _write_if_changed(manifest_path, (json.dumps(manifest.to_dict(), indent=2) + "\n").encode())
    return manifest_path


def load_manifest(path: Path) -> TaskManifest:
    """Read and validate a task manifest; ValueError naming the file if it is malformed."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
        tasks = [
            TaskSpec(str(t["task_id"]), [int(c) for c in t["classes"]], str(t["file"])) for t in raw["tasks"]
        ]
        roots = raw.get("data_roots", [])
        roots = roots if isinstance(roots, list) else [roots]
        if not all(isinstance(r, str) and Path(r).is_absolute() for r in roots):
            raise ValueError(f"data_roots must be a list of absolute paths, got {roots!r}")
        manifest = TaskManifest(
            name=str(raw["name"]), num_classes=int(raw["num_classes"]), tasks=tasks, data_roots=roots
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"malformed task manifest {path}: {exc}") from exc
    ids = [t.task_id for t in tasks]
    if not tasks or len(set(ids)) != len(ids):
        raise ValueError(f"malformed task manifest {path}: task ids must be non-empty and unique, got {ids}")
    all_classes = [c for t in tasks for c in t.classes]
    if len(set(all_classes)) != len(all_classes):
        raise ValueError(f"malformed task manifest {path}: a class belongs to more than one task")
    if any(not 0 <= c < manifest.num_classes for c in all_classes) or any(not t.classes for t in tasks):
        raise ValueError(f"malformed task manifest {path}: classes must lie in [0, {manifest.num_classes})")
    return manifest


def load_task_csv(path: Path) -> TaskData:
    """Read one task CSV into tensors (pixels scaled to [0, 1]); ValueError naming the file if malformed.

    The bytes go through ``model.task_table.read_task_table``, the reader validation uses too (BOM, CRLF,
    quoting and blank lines are read the same way everywhere).
    """
    path = Path(path)
    try:
        pixels, labels, split = read_task_table(path).task_arrays()
    except TaskFileError as exc:
        raise ValueError(f"malformed task file {path}: {exc.detail}") from exc
    is_train = split == "train"
    x = torch.from_numpy(pixels.astype(np.float32) / PIXEL_MAX)
    y = torch.from_numpy(np.ascontiguousarray(labels))
    train, test = torch.from_numpy(is_train), torch.from_numpy(~is_train)
    return TaskData(x[train], y[train], x[test], y[test])
