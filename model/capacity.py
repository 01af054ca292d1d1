"""A stream's capacity: the classes of the model's one head and its parameter budget, fixed once per stream;
and its method (strategy, scenario), fixed at its first learned task (``read_stream_method``).

Recorded under ``"capacity"`` in the learner state (``state_dir/learner_state.json``) when the first manifest
of the stream is validated (``include/ops/task_manifest.py`` ``record_stream_capacity``); the learner writes it
there again after every checkpoint. A state whose learner_state.json predates the record takes it from its
newest verified checkpoint (``model_config``; an old checkpoint has no budget: ``None``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from model.fsio import atomic_write_json, file_lock, read_json

STATE_FILENAME = "learner_state.json"
CAPACITY_KEY = "capacity"
METHOD_KEYS = ("strategy", "scenario")  # TrainConfig fields a stream keeps from its first task on
LOCK_NAME = ".capacity.lock"


@dataclass(frozen=True)
class StreamCapacity:
    """Classes the head holds (labels ``0..num_classes-1``) and the most parameters the model may have."""

    num_classes: int
    param_budget: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as stored in the learner state."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Any, where: Path) -> StreamCapacity:
        """Parse the stored form; ValueError naming ``where`` when it is not one."""
        try:
            budget = raw.get("param_budget")
            capacity = cls(int(raw["num_classes"]), None if budget is None else int(budget))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: malformed {CAPACITY_KEY!r} record {raw!r} ({exc})") from exc
        if capacity.num_classes < 1 or (capacity.param_budget is not None and capacity.param_budget < 1):
            raise ValueError(f"{where}: capacity {raw!r} must be positive")
        return capacity


def _newest_checkpoint_section(state_dir: Path, section: str) -> tuple[dict[str, Any], Path] | None:
    """``section`` (e.g. ``model_config``) of the newest checkpoint in ``state_dir`` that loads, and its path."""
    checkpoint_dir = Path(state_dir) / "checkpoints"  # model.learner.CHECKPOINT_DIRNAME (imports torch)
    if not any(checkpoint_dir.glob("task_*.pt")):
        return None
    from model.checkpoint import CheckpointError, load_checkpoint  # torch: only for states without a record
    from model.learner import list_checkpoints

    for _, path in list_checkpoints(checkpoint_dir):
        try:
            return dict(load_checkpoint(path)[section]), path
        except (CheckpointError, KeyError):
            continue
    return None


def read_capacity(state_dir: Path) -> StreamCapacity | None:
    """The recorded capacity of the stream learned in ``state_dir``: the state file's, else its newest checkpoint's.

    None when neither exists (a new stream). ValueError naming the file when the record is garbled.
    """
    state_file = Path(state_dir) / STATE_FILENAME
    state = read_json(state_file, {})
    if isinstance(state, dict) and CAPACITY_KEY in state:
        return StreamCapacity.from_dict(state[CAPACITY_KEY], state_file)
    found = _newest_checkpoint_section(state_dir, "model_config")
    return None if found is None else StreamCapacity.from_dict({"param_budget": None, **found[0]}, found[1])


def read_stream_method(state_dir: Path) -> dict[str, str] | None:
    """The strategy and scenario the stream in ``state_dir`` was learned with since its first task.

    From the learner state, else the newest verified checkpoint's ``train_config``; None before its first task.
    """
    state = read_json(Path(state_dir) / STATE_FILENAME, {})
    if isinstance(state, dict) and all(isinstance(state.get(k), str) for k in METHOD_KEYS):
        return {k: state[k] for k in METHOD_KEYS}
    found = _newest_checkpoint_section(state_dir, "train_config")
    return None if found is None else {k: str(found[0][k]) for k in METHOD_KEYS if k in found[0]} or None


def record_capacity(state_dir: Path, capacity: StreamCapacity) -> StreamCapacity:
    """Record ``capacity`` for a new stream and return it; a stream with a capacity keeps it (returned)."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(state_dir / LOCK_NAME):
        existing = read_capacity(state_dir)
        if existing is not None:
            return existing
        state_file = state_dir / STATE_FILENAME
        state = read_json(state_file, {})
        state = state if isinstance(state, dict) else {}
        state[CAPACITY_KEY] = capacity.to_dict()
        state["capacity_recorded_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        atomic_write_json(state_file, state)
    return capacity
