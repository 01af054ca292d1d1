"""The one task-manifest resolver (what training, backup evaluation and drills read) and the stream's capacity."""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from include.ops import tracking
from include.ops.settings import Settings
from model.fsio import atomic_write_text

if TYPE_CHECKING:
    from model.capacity import StreamCapacity
    from model.data import TaskManifest, TaskSpec

EFFECTIVE_MANIFEST = "effective_manifest.json"


def stream_capacity(settings: Settings) -> StreamCapacity:
    """The stream's class capacity and parameter budget: recorded in the learner state, else the settings'."""
    from model.capacity import StreamCapacity, read_capacity

    return read_capacity(settings.state_dir) or StreamCapacity(settings.class_capacity, settings.param_budget)


def record_stream_capacity(settings: Settings) -> StreamCapacity:
    """Record the settings' capacity for a new stream (a stream with one keeps it); return the stream's."""
    from model.capacity import StreamCapacity, record_capacity

    return record_capacity(settings.state_dir, StreamCapacity(settings.class_capacity, settings.param_budget))


def _confined(root: Path, task_id: str, file: str, manifest: Path) -> Path:
    """``root / file`` resolved (symlinks too); ValueError naming the file when it leaves ``root``."""
    from model.data import confined_path

    try:
        return confined_path(root, file)
    except ValueError as exc:
        raise ValueError(f"task {task_id!r} of {manifest}: {exc}") from None


def _learned_outside_store(
    settings: Settings, manifest: TaskManifest, learned: Collection[str]
) -> list[TaskSpec]:
    """Learned tasks the store's manifest does not list (learned from the raw stream before validation ran),
    from the raw stream's manifest with absolute files confined to ``settings.data_dir``; [] when none."""
    from model.data import load_manifest

    listed = {t.task_id for t in manifest.tasks}
    source = settings.source_manifest
    if not set(learned) - listed or not source.exists():
        return []
    out = []
    for spec in load_manifest(source).tasks:
        if spec.task_id in learned and spec.task_id not in listed:
            spec.file = str(_confined(settings.data_dir, spec.task_id, spec.file, source))
            out.append(spec)
    return out


def resolve_task_manifest(settings: Settings, learned: Collection[str] | None = None) -> Path:
    """The task manifest training reads: the validated store's once validation has run, else the raw stream.

    Every task file resolves inside the validated store (symlinks resolved); a file that does not is refused
    with a ValueError naming it. Tasks learned before validation was switched on keep their raw files for
    evaluation when the store has none (confined to ``settings.data_dir`` the same way), written as absolute
    paths into ``state_dir/effective_manifest.json`` with both folders as its ``data_roots``; a task not learned
    yet is only ever read from the validated store, so nothing trains on a batch that has not passed validation.
    ``learned`` (the task ids MLflow records as learned) is looked up when not given.
    """
    from model.data import load_manifest

    validated = settings.validated_dir / "manifest.json"
    if not validated.exists() and (settings.validated_dir / "index.json").exists():
        # validation has run (the store has an index) but holds no task now, e.g. every batch was retracted:
        # never fall back to the raw stream, which never passed the gate
        from include.ops.errors import Refusal

        raise Refusal(
            f"the validated store {settings.validated_dir} holds no validated task (retracted or not validated "
            "yet): land a batch and let data_validation pass it before training"
        )
    if not validated.exists():
        source = settings.source_manifest
        if source.exists():
            for spec in load_manifest(source).tasks:
                _confined(settings.data_dir, spec.task_id, spec.file, source)
        return source
    manifest = load_manifest(validated)
    if learned is None:
        learned = set(tracking.learned_task_ids(settings))
    fallback = False
    for spec in manifest.tasks:
        store_copy = _confined(settings.validated_dir, spec.task_id, spec.file, validated)
        path = store_copy
        if spec.task_id in learned and not store_copy.exists():
            raw_copy = _confined(settings.data_dir, spec.task_id, spec.file, validated)
            if raw_copy.exists():
                path, fallback = raw_copy, True
        spec.file = str(path)
    raw_learned = _learned_outside_store(settings, manifest, learned)
    if raw_learned:  # learned from the raw stream before validation was switched on: never validated
        fallback = True
        order = {t.task_id: i for i, t in enumerate(load_manifest(settings.source_manifest).tasks)}
        tasks = raw_learned + manifest.tasks
        manifest.tasks = sorted(tasks, key=lambda t: order.get(t.task_id, len(order) + tasks.index(t)))
    if not fallback:
        return validated
    manifest.data_roots = [str(settings.validated_dir.resolve()), str(settings.data_dir.resolve())]
    effective = settings.state_dir / EFFECTIVE_MANIFEST
    text = json.dumps(manifest.to_dict(), indent=2) + "\n"
    if not effective.exists() or effective.read_text(encoding="utf-8") != text:
        atomic_write_text(effective, text)
    return effective
