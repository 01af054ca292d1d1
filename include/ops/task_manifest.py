"""The one task-manifest resolver: the manifest training reads, and so what backup evaluation and drills read."""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path

from include.ops import tracking
from include.ops.settings import Settings
from model.fsio import atomic_write_text

EFFECTIVE_MANIFEST = "effective_manifest.json"


def resolve_task_manifest(settings: Settings, learned: Collection[str] | None = None) -> Path:
    """The task manifest training reads: the validated store's once validation has run, else the raw stream.

    With a validated store, tasks learned before validation was switched on keep their raw files for evaluation
    (written as absolute paths into ``state_dir/effective_manifest.json``); a task not learned yet is only ever
    read from the validated store, so nothing trains on a batch that has not passed validation.
    ``learned`` (the task ids MLflow records as learned) is looked up when not given.
    """
    validated = settings.validated_dir / "manifest.json"
    if not validated.exists():
        return settings.source_manifest
    raw = json.loads(validated.read_text(encoding="utf-8"))
    if learned is None:
        learned = set(tracking.learned_task_ids(settings))
    fallback = False
    for spec in raw["tasks"]:
        store_copy = settings.validated_dir / spec["file"]
        raw_copy = settings.data_dir / spec["file"]
        use_raw = spec["task_id"] in learned and not store_copy.exists() and raw_copy.exists()
        fallback = fallback or use_raw
        spec["file"] = str(raw_copy if use_raw else store_copy)
    if not fallback:
        return validated
    effective = settings.state_dir / EFFECTIVE_MANIFEST
    text = json.dumps(raw, indent=2) + "\n"
    if not effective.exists() or effective.read_text(encoding="utf-8") != text:
        atomic_write_text(effective, text)
    return effective
