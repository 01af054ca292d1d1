"""The local record of the last champion: which checkpoint passed the gate, and its sha256.

Written atomically by the promotion gate (``tracking.apply_gate``) when it moves the ``champion`` alias, to
``<state_dir>/champion.json``; read by the serving app when the registry is unreachable, so its fallback serves
only a checkpoint that passed the gate. The checkpoint is stored relative to the state folder, so the record
stays right after a restore into another folder.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from include.ops.settings import Settings
from model.fsio import atomic_write_json, read_json

RECORD_FILE = "champion.json"


@dataclass(frozen=True)
class ChampionRecord:
    """The last version that passed the gate: its registry version, checkpoint (relative) and sha256."""

    version: str
    checkpoint: (
        str  # relative to the state folder, e.g. "checkpoints/task_001_task_1.pt" (absolute if outside)
    )
    sha256: str
    task_id: str | None
    recorded_at: float
    history_seq: int | None = (
        None  # the alias-history entry that made it champion (include/ops/alias_history.py)
    )

    def checkpoint_path(self, settings: Settings) -> Path:
        """Absolute path of the recorded checkpoint under ``settings.state_dir``."""
        return settings.state_dir / self.checkpoint


def record_path(settings: Settings) -> Path:
    """Where the record lives: ``<state_dir>/champion.json``."""
    return settings.state_dir / RECORD_FILE


def write_champion_record(
    settings: Settings,
    version: str,
    checkpoint_path: str | Path,
    sha256: str,
    task_id: str | None = None,
    history_seq: int | None = None,
) -> ChampionRecord:
    """Record ``version`` as the last champion (atomic replace); ValueError for a malformed sha256."""
    path = Path(checkpoint_path).resolve()
    try:
        rel = path.relative_to(settings.state_dir.resolve())
    except ValueError:  # a checkpoint outside the state folder keeps its absolute path
        rel = path
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"champion sha256 must be 64 lowercase hex digits, got {sha256!r}")
    record = ChampionRecord(str(version), rel.as_posix(), sha256, task_id, time.time(), history_seq)
    atomic_write_json(record_path(settings), asdict(record))
    return record


def read_champion_record(settings: Settings) -> ChampionRecord | None:
    """The record, or None when no champion was ever recorded; ValueError naming the file if it is garbled."""
    path = record_path(settings)
    data: Any = read_json(path, None)
    if data is None:
        return None
    try:
        record = ChampionRecord(
            version=str(data["version"]),
            checkpoint=str(data["checkpoint"]),
            sha256=str(data["sha256"]),
            task_id=data.get("task_id"),
            recorded_at=float(data.get("recorded_at", 0.0)),
            history_seq=None if data.get("history_seq") is None else int(data["history_seq"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path} is not a champion record ({exc!r}); restore it or re-run the gate") from exc
    if ".." in Path(record.checkpoint).parts:
        raise ValueError(f"{path}: checkpoint {record.checkpoint!r} must not leave the state folder")
    return record
