"""The one schema of a landing ``manifest.json``: the trust boundary between whoever lands data and training.

    {"name": "split_digits", "num_classes": 10,
     "tasks": [{"task_id": "task_0", "classes": [0, 1], "file": "task_0.csv"}, ...]}

- ``name``: 1-128 printable characters; ``num_classes``: an integer >= 1, at most the stream's class capacity;
- ``tasks``: at least one, each with exactly ``task_id`` (``model.config.TASK_ID_PATTERN``, the DAG param's
  pattern), ``classes`` (a non-empty list of distinct integers in ``[0, num_classes)``) and ``file`` (a plain
  file name passing the landing file-name pre-check: no ``/``, no ``..``, not absolute, ``*.csv``);
- no task id or file twice; no class in two tasks (one head: every stream here is class-incremental).

Checked at landing (``include.ops.validation.zone.landing_manifest``) and again in the pipeline's precheck
stage. A manifest that fails is refused as a whole (:class:`ManifestRefused`, every problem named by where it
is, e.g. ``tasks[2].file``): it is a setup input, so the run fails naming the manifest and no batch is judged;
the batches stay in the landing zone with their bytes, the validated store and its manifest are untouched.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from include.ops.validation.prechecks import PrecheckFailure, check_file_name
from model.config import TASK_ID_PATTERN

if TYPE_CHECKING:
    from model.data import TaskManifest

MAX_MANIFEST_BYTES = 1024 * 1024  # a manifest of thousands of tasks is a few hundred KiB
ClassId = Annotated[StrictInt, Field(ge=0)]


class ManifestRefused(ValueError):
    """A landing manifest failed the schema; the message names the manifest and every problem by location."""


class TaskEntry(BaseModel):
    """One task of the landing manifest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_id: Annotated[StrictStr, Field(pattern=TASK_ID_PATTERN)]
    classes: Annotated[list[ClassId], Field(min_length=1)]
    file: StrictStr

    @field_validator("file")
    @classmethod
    def _plain_task_file(cls, value: str) -> str:
        """The landing file-name pre-check, the one definition of a task file name."""
        try:
            return check_file_name(value)
        except PrecheckFailure as failure:
            raise ValueError(failure.detail) from None

    @field_validator("classes")
    @classmethod
    def _distinct(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"classes {value} repeat a class")
        return value


class LandingManifest(BaseModel):
    """A landing manifest; validate with ``context={"class_capacity": n}`` to hold it to the stream's capacity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[StrictStr, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
    num_classes: Annotated[StrictInt, Field(ge=1)]
    tasks: Annotated[list[TaskEntry], Field(min_length=1)]

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> LandingManifest:
        """Unique ids and files, disjoint classes, classes inside ``num_classes`` and the class capacity."""
        problems = []
        for key in ("task_id", "file"):
            values = [getattr(t, key) for t in self.tasks]
            twice = sorted({v for v in values if values.count(v) > 1})
            if twice:
                problems.append(f"{key} {twice} appear(s) in more than one task")
        owner: dict[int, str] = {}
        for i, task in enumerate(self.tasks):
            shared = [c for c in task.classes if c in owner]
            if shared:
                problems.append(
                    f"tasks[{i}] ({task.task_id}) classes {shared} already belong to {owner[shared[0]]} "
                    "(one head: a class belongs to one task)"
                )
            owner.update({c: task.task_id for c in task.classes})
            outside = [c for c in task.classes if c >= self.num_classes]
            if outside:
                problems.append(
                    f"tasks[{i}] ({task.task_id}) classes {outside} are outside [0, num_classes={self.num_classes})"
                )
        capacity = (info.context or {}).get("class_capacity")
        if capacity is not None:
            over = sorted(c for c in owner if c >= capacity)
            if self.num_classes > capacity or over:
                problems.append(
                    f"over the class capacity {capacity} of the stream (the model's head): manifest declares "
                    f"num_classes {self.num_classes}, classes outside [0, {capacity}): {over} "
                    "(capacity is CT_CLASS_CAPACITY, recorded in the learner state for the stream)"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def to_task_manifest(self) -> TaskManifest:
        """The model's ``TaskManifest`` of these entries (what the validator writes to the store)."""
        from model.data import TaskManifest, TaskSpec

        specs = [TaskSpec(t.task_id, list(t.classes), t.file) for t in self.tasks]
        return TaskManifest(name=self.name, num_classes=self.num_classes, tasks=specs)


def _where(loc: tuple[Any, ...]) -> str:
    """``("tasks", 2, "file")`` -> ``tasks[2].file``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "manifest"


def describe_errors(error: ValidationError) -> str:
    """Every schema problem as ``where: what (got value)``, joined by ``; ``."""
    parts = []
    for err in error.errors(include_url=False):
        where, msg = _where(err["loc"]), err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        shown = "" if err["type"] == "missing" or isinstance(value, dict | list) else f" (got {value!r:.80})"
        parts.append(f"{where}: {msg}{shown}")
    return "; ".join(parts)


def parse_manifest(raw: Any, where: str, class_capacity: int | None = None) -> LandingManifest:
    """Validate a parsed manifest; ManifestRefused naming ``where`` and each problem."""
    try:
        return LandingManifest.model_validate(raw, context={"class_capacity": class_capacity})
    except ValidationError as exc:
        raise ManifestRefused(f"landing manifest {where} refused: {describe_errors(exc)}") from None


def load_landing_manifest(path: Path, class_capacity: int | None = None) -> TaskManifest:
    """Read and validate a landing manifest file (against ``class_capacity`` when given); ManifestRefused if bad."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ManifestRefused(f"landing manifest {path} cannot be read: {exc}") from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestRefused(f"landing manifest {path} refused: over {MAX_MANIFEST_BYTES} bytes")
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ManifestRefused(f"landing manifest {path} refused: not UTF-8 JSON ({exc})") from None
    return parse_manifest(raw, str(path), class_capacity).to_task_manifest()
