"""Step 1 of a backup: copy live state into ``<backup_dir>/<id>/``, hashing every byte while copying.

The learner state, the MLflow store (online SQLite backup / pg_dump) and artifacts, the task data training
uses and the redacted configuration are copied; the champion's per-task test accuracies are measured on the
backup's own copy. The would-be manifest waits in ``.pending-manifest.json`` until ``commit_backup``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from include.ops.backup import mlflow_store
from include.ops.backup.config import RULE, capture_config, left_out_names, write_config_json
from include.ops.backup.evaluate import task_accuracies
from include.ops.backup.layout import (
    DIR_MODE,
    FILE_MODE,
    MANIFEST_NAME,
    BackupError,
    FileEntry,
    Manifest,
    ProgressFn,
    ProgressLog,
    backup_path,
    copy_hashed,
    file_mode,
    make_private_dir,
    new_backup_id,
    read_manifest,
    seal_modes,
    sync_files,
)
from include.ops.backup.sources import (
    DATA_MANIFEST,
    checkpoint_references,
    code_version,
    fingerprint,
    package_versions,
    task_data,
    unclaimed_checkpoints,
    walk_files,
)
from include.ops.lock import assert_not_locked
from include.ops.settings import Settings, get_settings
from include.ops.task_manifest import resolve_task_manifest
from model.fsio import atomic_write_bytes, sha256_file

log = logging.getLogger(__name__)

PENDING_NAME = ".pending-manifest.json"
CONFIG_PATH = "config/config.json"
COPY_THREADS = 2  # hashing is CPU-bound; two workers overlap it with I/O without crowding a small host
SNAPSHOT_ATTEMPTS = 3  # a training run that writes during the copy makes us start over, at most this often


def allocate_backup_id(backup_dir: Path) -> str:
    """A new backup id (UTC now) not used yet in ``backup_dir`` (``-N`` suffix within the same second)."""
    base = new_backup_id()
    if not (backup_dir / base).exists():
        return base
    for n in range(1, 1000):
        candidate = f"{base}-{n}"
        if not (backup_dir / candidate).exists():
            return candidate
    raise BackupError(f"no free backup id for {base} in {backup_dir}")


class _Copier:
    """Copies files into the backup folder, hashing each on the same read, and collects manifest entries.

    Files are copied by ``COPY_THREADS`` workers (SHA-256 and file I/O release the GIL, so hashing one file
    overlaps copying another) without a per-file fsync; :meth:`flush` makes everything durable at once,
    before the manifest is written. Copies are ``FILE_MODE`` in ``DIR_MODE`` folders; each entry records
    the mode its source had, which a restore applies.
    """

    def __init__(self, root: Path, progress: ProgressFn | None) -> None:
        self.root = root
        self.entries: list[FileEntry] = []
        self.written: list[Path] = []
        self.progress = progress

    def copy_many(self, stage: str, prefix: str, files: list[tuple[str, Path]]) -> None:
        """Copy ``(relative path, source)`` pairs to ``<root>/<prefix>/<relative path>``."""
        total = sum(p.stat().st_size for _, p in files if p.exists())
        tracker = ProgressLog(stage, len(files), total, self.progress)

        def one(item: tuple[str, Path]) -> tuple[str, Path, int, str, int]:
            rel, src = item
            dst = self.root / prefix / rel
            mode = file_mode(src)
            size, digest = copy_hashed(src, dst, fsync=False, make_parents=False, mode=FILE_MODE)
            return f"{prefix}/{rel}", dst, size, digest, mode

        for folder in sorted({(self.root / prefix / rel).parent for rel, _ in files}):
            folder.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)

        with ThreadPoolExecutor(max_workers=COPY_THREADS) as pool:
            futures = [pool.submit(one, item) for item in files]
            for future in as_completed(futures):
                rel, dst, size, digest, mode = future.result()
                self.entries.append(FileEntry(rel, size, digest, mode))
                self.written.append(dst)
                tracker.advance(size)

    def add_existing(self, rel: str, mode: int | None = None) -> None:
        """Record a file already written into the backup folder (hashing it); ``mode``: its source's mode."""
        path = self.root / rel
        os.chmod(path, FILE_MODE)
        self.entries.append(FileEntry(rel, path.stat().st_size, sha256_file(path), mode))
        self.written.append(path)

    def add_bytes(self, rel: str, data: bytes) -> None:
        """Write ``data`` into the backup folder and record it."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            f.write(data)
        self.entries.append(FileEntry(rel, len(data), hashlib.sha256(data).hexdigest()))
        self.written.append(path)

    def flush(self) -> None:
        """Seal the modes (folders ``DIR_MODE``, files ``FILE_MODE``), then make everything durable."""
        seal_modes(self.root)
        sync_files(self.root, self.written)


def _lap(timings: dict[str, float], key: str, since: float) -> float:
    """Record the seconds since ``since`` under ``key``; return now."""
    now = time.monotonic()
    timings[key] = round(now - since, 4)
    return now


def _copy_mlflow_store(
    copier: _Copier, settings: Settings, kind: str
) -> tuple[dict[str, Any], dict[str, int]]:
    """Dump the MLflow backend store into the backup; return its registry snapshot and scrubbed secret rows."""
    uri = settings.mlflow_tracking_uri
    if kind == "sqlite" and mlflow_store.sqlite_path(uri).is_file():
        dump = copier.root / mlflow_store.SQLITE_DUMP
        live_db = mlflow_store.sqlite_path(uri)
        scrubbed = mlflow_store.dump_sqlite(live_db, dump)
        registry = mlflow_store.registry_from_sqlite(dump, settings)
        copier.add_existing(mlflow_store.SQLITE_DUMP, file_mode(live_db))
        return registry, scrubbed
    if kind == "postgresql":
        registry = mlflow_store.registry_snapshot(settings)
        mlflow_store.dump_postgres(uri, copier.root / mlflow_store.PG_DUMP)
        copier.add_existing(mlflow_store.PG_DUMP)
        return registry, {}
    registry = {"backend": kind, "aliases": {}, "run_ids": [], "checkpoint_runs": {}, "versions": {}}
    registry["note"] = "no MLflow store backed up (no SQLite file, or a backend this tool cannot dump)"
    return registry, {}


def _copy_consistent_state(
    root: Path, settings: Settings, kind: str, progress: ProgressFn | None, timings: dict[str, float]
) -> tuple[_Copier, dict[str, Any], dict[str, int]]:
    """MLflow store + learner state, copied again until the state did not change during the copy."""
    for attempt in range(1, SNAPSHOT_ATTEMPTS + 1):
        if root.exists():
            shutil.rmtree(root)
        make_private_dir(root)  # 0700 before the first byte lands: nobody else can read in during the copy
        copier = _Copier(root, progress)
        tick = time.monotonic()
        state_files = walk_files(settings.state_dir)
        before = fingerprint(state_files)
        registry, scrubbed = _copy_mlflow_store(copier, settings, kind)
        tick = _lap(timings, "mlflow_store", tick)
        copier.copy_many("backup state", "state", state_files)
        _lap(timings, "state", tick)
        if fingerprint(walk_files(settings.state_dir)) == before:
            return copier, registry, scrubbed
        log.warning("live state changed during backup %s (training running?): attempt %d", root.name, attempt)
    raise BackupError(f"backup {root.name}: live state kept changing over {SNAPSHOT_ATTEMPTS} attempts")


def _evaluation(root: Path, references: dict[str, Any], data_present: bool) -> dict[str, Any]:
    """Per-task test accuracies of the champion (else the newest checkpoint), read from the backup's own copy."""
    refs = references.get("checkpoints", [])
    chosen = next((r for r in refs if "champion" in r["roles"]), None)
    source = "mlflow alias champion"
    if chosen is None:
        chosen = next((r for r in refs if "latest" in r["roles"]), None)
        source = "newest checkpoint (no champion alias)"
    if chosen is None:
        return {"note": "no checkpoint to evaluate"}
    found = {"checkpoint": chosen["path"], "sha256": chosen["sha256"], "source": source}
    if not data_present:
        return {**found, "note": "no task data"}
    from model.checkpoint import CheckpointError

    try:
        accuracies = task_accuracies(root / chosen["path"], root / "data" / DATA_MANIFEST)
    except CheckpointError as exc:
        # never let a backup whose champion cannot be loaded become the latest complete one
        raise BackupError(
            f"backup {root.name}: the {source} checkpoint does not verify or load: {exc}"
        ) from exc
    return {**found, "data_manifest": f"data/{DATA_MANIFEST}", "accuracies": accuracies}


def snapshot_backup(
    settings: Settings | None = None, backup_id: str | None = None, progress: ProgressFn | None = None
) -> Manifest:
    """Copy live state into ``<backup_dir>/<id>/`` (no manifest yet); return the manifest to commit.

    Idempotent per id: a complete backup is returned as is, a partial one is started over. Refused while
    the maintenance lock is held. The task data is that of ``resolve_task_manifest``: what training reads.
    """
    settings = settings or get_settings()
    assert_not_locked("backup", settings.lock_file)
    settings.backup_dir.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    backup_id = backup_id or allocate_backup_id(settings.backup_dir)
    root = backup_path(settings.backup_dir, backup_id)
    if (root / MANIFEST_NAME).exists():
        log.info("backup %s is already complete", backup_id)
        return read_manifest(root)
    uri = settings.mlflow_tracking_uri
    kind = mlflow_store.backend_kind(uri)
    artifacts = mlflow_store.artifacts_dir(settings)
    task_manifest = resolve_task_manifest(settings)  # before the state walk: it may refresh a state file
    started = time.monotonic()
    created_at = datetime.now(UTC).isoformat()
    log.info("backup %s of %s into %s", backup_id, settings.state_dir, root)

    timings: dict[str, float] = {}
    copier, registry, scrubbed = _copy_consistent_state(root, settings, kind, progress, timings)
    tick = time.monotonic()
    copier.copy_many("backup mlflow artifacts", mlflow_store.ARTIFACTS, walk_files(artifacts))
    tick = _lap(timings, "artifacts", tick)
    data = task_data(task_manifest)
    copier.copy_many("backup task data", "data", data.files)
    if data.manifest is not None:
        copier.add_bytes(f"data/{DATA_MANIFEST}", data.manifest)
    captured = capture_config(settings)
    copier.add_bytes(CONFIG_PATH, write_config_json(captured))
    tick = _lap(timings, "data_config", tick)
    copier.flush()
    tick = _lap(timings, "sync", tick)
    timings["copy_total"] = round(sum(timings.values()), 4)

    references = checkpoint_references(copier.entries, registry["aliases"], settings.state_dir)
    evaluation = _evaluation(root, references, data.manifest is not None)
    _lap(timings, "evaluation", tick)
    manifest = Manifest(
        backup_id=backup_id,
        created_at=created_at,
        completed_at="",
        files=sorted(copier.entries, key=lambda e: e.path),
        code_version=code_version(),
        packages=package_versions(),
        source={
            "host": socket.gethostname(),
            "state_dir": str(settings.state_dir),
            "mlflow_tracking_uri": mlflow_store.redact_uri(uri),
            "mlflow_artifacts_dir": str(artifacts),
            "task_manifest": str(task_manifest),
            "snapshot_seconds": round(time.monotonic() - started, 3),
            "timings": timings,  # seconds per phase; copy_total = every byte copied, hashed and fsynced
        },
        mlflow={
            **registry,
            "backend": kind,
            "artifacts": mlflow_store.ARTIFACTS,
            "scrubbed_secret_rows": scrubbed,
            "checkpoints_without_run": unclaimed_checkpoints(copier.entries, registry),
        },
        references=references,
        evaluation=evaluation,
        config={
            "path": CONFIG_PATH,
            "rule": RULE,
            "left_out": left_out_names(captured),  # names only: secrets and keys not on the allowlist
            "settings_left_out": captured["settings_left_out"],
            "modes": {"folders": oct(DIR_MODE), "files": oct(FILE_MODE)},
        },
    )
    atomic_write_bytes(root / PENDING_NAME, manifest.to_json(), mode=FILE_MODE)
    log.info(
        "backup %s: %d files, %.1f MB staged in %.1fs",
        backup_id, len(manifest.files), manifest.total_bytes / 1e6, time.monotonic() - started,
    )  # fmt: skip
    return manifest
