"""Create a backup in three steps: snapshot live state locally, upload to S3, commit (manifest last).

``snapshot_backup`` copies the learner state, the MLflow store (online SQLite backup / pg_dump) and artifacts,
the task data and the redacted configuration into ``<backup_dir>/<id>/``, hashing every byte while copying,
and records the champion's per-task test accuracies. Its would-be manifest waits in ``.pending-manifest.json``.
``upload_backup`` sends files S3 lacks; ``commit_backup`` writes the manifest to S3, then locally. A failure
anywhere leaves no manifest: the backup is incomplete and the previous one stays the latest complete backup.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from include.ops.backup import mlflow_store
from include.ops.backup.config import capture_config, write_config_json
from include.ops.backup.evaluate import task_accuracies
from include.ops.backup.layout import (
    MANIFEST_NAME,
    BackupError,
    FileEntry,
    Manifest,
    ProgressFn,
    ProgressLog,
    backup_path,
    copy_hashed,
    new_backup_id,
    read_manifest,
    sha256_file,
    sync_files,
)
from include.ops.backup.s3 import S3Store
from include.ops.lock import assert_not_locked
from include.ops.settings import PROJECT_ROOT, Settings, get_settings
from model.fsio import atomic_write_bytes

log = logging.getLogger(__name__)

PENDING_NAME = ".pending-manifest.json"
CONFIG_PATH = "config/config.json"
PACKAGES = (
    "apache-airflow",
    "apache-airflow-providers-amazon",
    "mlflow",
    "torch",
    "numpy",
    "scikit-learn",
    "boto3",
    "prometheus-client",
)
COPY_THREADS = 2  # hashing is CPU-bound; two workers overlap it with I/O without crowding a small host
SNAPSHOT_ATTEMPTS = 3  # a training run that writes during the copy makes us start over, at most this often


@dataclass
class BackupResult:
    """Outcome of :func:`create_backup`."""

    backup_id: str
    path: str
    files: int
    bytes: int
    uploaded: int = 0
    skipped_remote: int = 0
    remote: dict[str, str] | None = None
    seconds: float = 0.0
    already_complete: bool = False
    evaluation: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for XCom and the CLI."""
        return asdict(self)


@dataclass
class UploadReport:
    """What :func:`upload_backup` sent to S3 and what it found already there."""

    uploaded: int
    skipped: int
    bytes_uploaded: int
    remote: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for XCom."""
        return asdict(self)


def task_manifest_path(settings: Settings) -> Path:
    """The task stream training reads: the validated store's manifest once validation ran, else the raw one."""
    validated = settings.validated_dir / "manifest.json"
    return validated if validated.exists() else settings.manifest_path


def code_version() -> dict[str, Any]:
    """Git revision of the project read from ``.git`` (no git process), or env ``CT_CODE_VERSION``."""
    out: dict[str, Any] = {"project_version": _pyproject_version()}
    if os.environ.get("CT_CODE_VERSION"):
        out["git_rev"] = os.environ["CT_CODE_VERSION"]
        return out
    git = PROJECT_ROOT / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = head[5:]
            out["git_ref"] = ref
            ref_file = git / ref
            if ref_file.exists():
                out["git_rev"] = ref_file.read_text().strip()
            elif (git / "packed-refs").exists():
                for line in (git / "packed-refs").read_text().splitlines():
                    if line.endswith(" " + ref):
                        out["git_rev"] = line.split()[0]
        else:
            out["git_rev"] = head
    except OSError:
        out["git_rev"] = None
    return out


def _pyproject_version() -> str | None:
    try:
        import tomllib

        return tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"]
    except (OSError, KeyError, ValueError):
        return None


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a restore depends on, plus Python."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _walk_files(root: Path) -> list[tuple[str, Path]]:
    """``(relative posix path, path)`` of regular files under ``root``; temp and hidden files are skipped."""
    if not root.is_dir():
        return []
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith(".") or name.endswith(".tmp") or path.is_symlink() or not path.is_file():
                continue
            out.append((path.relative_to(root).as_posix(), path))
    return out


def _fingerprint(files: list[tuple[str, Path]]) -> list[tuple[str, int, int]]:
    out = []
    for rel, path in files:
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        out.append((rel, st.st_size, st.st_mtime_ns))
    return out


def _data_files(task_manifest: Path) -> list[tuple[str, Path]]:
    """The task manifest and the CSV files it names (the data the champion is evaluated on)."""
    if not task_manifest.is_file():
        return []
    from model.data import load_manifest

    manifest = load_manifest(task_manifest)
    files = [("manifest.json", task_manifest)]
    for spec in manifest.tasks:
        path = task_manifest.parent / spec.file
        if path.is_file():
            files.append((Path(spec.file).as_posix(), path))
    return files


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
    before the manifest is written.
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

        def one(item: tuple[str, Path]) -> tuple[str, Path, int, str]:
            rel, src = item
            dst = self.root / prefix / rel
            size, digest = copy_hashed(src, dst, fsync=False, make_parents=False)
            return f"{prefix}/{rel}", dst, size, digest

        for folder in sorted({(self.root / prefix / rel).parent for rel, _ in files}):
            folder.mkdir(parents=True, exist_ok=True)

        with ThreadPoolExecutor(max_workers=COPY_THREADS) as pool:
            futures = [pool.submit(one, item) for item in files]
            for future in as_completed(futures):
                rel, dst, size, digest = future.result()
                self.entries.append(FileEntry(rel, size, digest))
                self.written.append(dst)
                tracker.advance(size)

    def add_existing(self, rel: str) -> None:
        """Record a file already written into the backup folder (hashing it)."""
        path = self.root / rel
        size, digest = sha256_file(path)
        self.entries.append(FileEntry(rel, size, digest))
        self.written.append(path)

    def add_bytes(self, rel: str, data: bytes) -> None:
        """Write ``data`` into the backup folder and record it."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.entries.append(FileEntry(rel, len(data), hashlib.sha256(data).hexdigest()))
        self.written.append(path)

    def flush(self) -> None:
        """Every file and folder written so far reaches the disk (one syncfs, else fsync each)."""
        sync_files(self.root, self.written)


def _references(
    entries: list[FileEntry], aliases: dict[str, dict[str, Any]], state_dir: Path
) -> dict[str, Any]:
    """Checkpoints of the backup a restore serves or resumes from: aliased ones and the newest one."""
    ckpts = {e.path: e for e in entries if e.path.startswith("state/checkpoints/") and e.path.endswith(".pt")}
    roles: dict[str, list[str]] = {}
    for alias, info in aliases.items():
        match = _match_checkpoint(ckpts, info.get("checkpoint_path"), info.get("checkpoint_sha256"))
        if match:
            roles.setdefault(match, []).append(alias)
    latest = None
    state_file = state_dir / "learner_state.json"
    if state_file.is_file():
        try:
            latest_path = json.loads(state_file.read_text()).get("latest_checkpoint")
            latest = _match_checkpoint(ckpts, latest_path, None)
        except (ValueError, OSError):
            latest = None
    if latest is None and ckpts:
        latest = max(ckpts, key=lambda p: Path(p).name)
    if latest:
        roles.setdefault(latest, []).append("latest")
    return {
        "checkpoints": [
            {"path": path, "sha256": ckpts[path].sha256, "roles": sorted(r)}
            for path, r in sorted(roles.items())
        ]
    }


def _match_checkpoint(ckpts: dict[str, FileEntry], path: str | None, sha256: str | None) -> str | None:
    """Backup path of the checkpoint a tag/state points to: by sha256 first, else by file name."""
    if sha256:
        for rel, entry in ckpts.items():
            if entry.sha256 == sha256:
                return rel
    if path:
        name = Path(path).name
        for rel in ckpts:
            if Path(rel).name == name:
                return rel
    return None


def _unmatched(entries: list[FileEntry], registry: dict[str, Any]) -> list[str]:
    """Checkpoints that no MLflow run claims (``ct.checkpoint_sha256``): state ahead of MLflow, e.g. mid-training."""
    if not registry.get("run_ids"):
        return []
    claimed = set(registry.get("checkpoint_runs", {}))
    out = [e.path for e in entries if e.path.startswith("state/checkpoints/") and e.path.endswith(".pt")]
    out = [p for p in out if next(e for e in entries if e.path == p).sha256 not in claimed]
    if out:
        log.warning("checkpoints without an MLflow run in this backup (training in flight?): %s", out)
    return out


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
    if not data_present:
        return {
            "checkpoint": chosen["path"],
            "sha256": chosen["sha256"],
            "source": source,
            "note": "no task data",
        }
    from model.checkpoint import CheckpointError

    try:
        accuracies = task_accuracies(root / chosen["path"], root / "data" / "manifest.json")
    except CheckpointError as exc:
        # never let a backup whose champion cannot be loaded become the latest complete one
        raise BackupError(
            f"backup {root.name}: the {source} checkpoint does not verify or load: {exc}"
        ) from exc
    return {
        "checkpoint": chosen["path"],
        "sha256": chosen["sha256"],
        "source": source,
        "data_manifest": "data/manifest.json",
        "accuracies": accuracies,
    }


def _lap(timings: dict[str, float], key: str, since: float) -> float:
    """Record the seconds since ``since`` under ``key``; return now."""
    now = time.monotonic()
    timings[key] = round(now - since, 4)
    return now


def snapshot_backup(
    settings: Settings | None = None, backup_id: str | None = None, progress: ProgressFn | None = None
) -> Manifest:
    """Copy live state into ``<backup_dir>/<id>/`` (no manifest yet); return the manifest to commit.

    Idempotent per id: a complete backup is returned as is, a partial one is started over. Refused while
    the maintenance lock is held.
    """
    settings = settings or get_settings()
    assert_not_locked("backup", settings.lock_file)
    settings.backup_dir.mkdir(parents=True, exist_ok=True)
    backup_id = backup_id or allocate_backup_id(settings.backup_dir)
    root = backup_path(settings.backup_dir, backup_id)
    if (root / MANIFEST_NAME).exists():
        log.info("backup %s is already complete", backup_id)
        return read_manifest(root)
    uri = settings.mlflow_tracking_uri
    kind = mlflow_store.backend_kind(uri)
    artifacts = mlflow_store.artifacts_dir(settings)
    task_manifest = task_manifest_path(settings)
    started = time.monotonic()
    created_at = datetime.now(UTC).isoformat()
    log.info("backup %s of %s into %s", backup_id, settings.state_dir, root)

    for attempt in range(1, SNAPSHOT_ATTEMPTS + 1):
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        copier = _Copier(root, progress)
        timings: dict[str, float] = {}
        tick = time.monotonic()
        state_files = _walk_files(settings.state_dir)
        before = _fingerprint(state_files)
        scrubbed: dict[str, int] = {}
        if kind == "sqlite" and mlflow_store.sqlite_path(uri).is_file():
            scrubbed = mlflow_store.dump_sqlite(
                mlflow_store.sqlite_path(uri), root / mlflow_store.SQLITE_DUMP
            )
            registry = mlflow_store.registry_from_sqlite(root / mlflow_store.SQLITE_DUMP, settings)
            copier.add_existing(mlflow_store.SQLITE_DUMP)
        elif kind == "postgresql":
            registry = mlflow_store.registry_snapshot(settings)
            mlflow_store.dump_postgres(uri, root / mlflow_store.PG_DUMP)
            copier.add_existing(mlflow_store.PG_DUMP)
        else:
            registry = {"backend": kind, "aliases": {}, "run_ids": [], "checkpoint_runs": {}, "versions": {}}
            registry["note"] = (
                "no MLflow store backed up (no SQLite file, or a backend this tool cannot dump)"
            )
        tick = _lap(timings, "mlflow_store", tick)
        copier.copy_many("backup state", "state", state_files)
        tick = _lap(timings, "state", tick)
        if _fingerprint(_walk_files(settings.state_dir)) == before:
            break
        log.warning("live state changed during backup %s (training running?): attempt %d", backup_id, attempt)
    else:
        raise BackupError(f"backup {backup_id}: live state kept changing over {SNAPSHOT_ATTEMPTS} attempts")

    tick = time.monotonic()
    copier.copy_many("backup mlflow artifacts", mlflow_store.ARTIFACTS, _walk_files(artifacts))
    tick = _lap(timings, "artifacts", tick)
    data_files = _data_files(task_manifest)
    copier.copy_many("backup task data", "data", data_files)
    captured = capture_config(settings)
    copier.add_bytes(CONFIG_PATH, write_config_json(captured))
    tick = _lap(timings, "data_config", tick)
    copier.flush()
    tick = _lap(timings, "sync", tick)
    timings["copy_total"] = round(sum(timings.values()), 4)

    references = _references(copier.entries, registry["aliases"], settings.state_dir)
    evaluation = _evaluation(root, references, bool(data_files))
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
            "checkpoints_without_run": _unmatched(copier.entries, registry),
        },
        references=references,
        evaluation=evaluation,
        config={
            "path": CONFIG_PATH,
            "secrets_removed": sorted(
                set(captured["environment"]["secrets"]) | set(captured["env_file"]["secrets"])
            ),
        },
    )
    atomic_write_bytes(root / PENDING_NAME, manifest.to_json())
    log.info(
        "backup %s: %d files, %.1f MB staged in %.1fs",
        backup_id, len(manifest.files), manifest.total_bytes / 1e6, time.monotonic() - started,
    )  # fmt: skip
    return manifest


def _pending(settings: Settings, backup_id: str) -> tuple[Path, Manifest]:
    root = backup_path(settings.backup_dir, backup_id)
    pending = root / PENDING_NAME
    if not pending.is_file():
        raise BackupError(
            f"backup {backup_id} has no staged snapshot at {pending}: run the snapshot step first"
        )
    return root, Manifest.from_json(pending.read_bytes(), where=str(pending))


def upload_backup(
    backup_id: str, store: S3Store, settings: Settings | None = None, progress: ProgressFn | None = None
) -> UploadReport:
    """Upload the staged files S3 does not hold yet (content-addressed); RemoteUnavailable if S3 fails."""
    settings = settings or get_settings()
    root = backup_path(settings.backup_dir, backup_id)
    if (root / MANIFEST_NAME).exists():
        manifest = read_manifest(root)
    else:
        root, manifest = _pending(settings, backup_id)
    store.check_bucket()
    store.mark_started(backup_id)
    existing = store.existing_objects()
    todo = []
    skipped = 0
    for entry in manifest.files:
        if entry.sha256 in existing and existing[entry.sha256]["size"] == entry.size:
            skipped += 1
        elif entry.sha256 not in {e.sha256 for e in todo}:
            todo.append(entry)
    tracker = ProgressLog("upload to s3", len(todo), sum(e.size for e in todo), progress)
    for entry in todo:
        path = root / entry.path
        size, digest = sha256_file(path)
        if (size, digest) != (entry.size, entry.sha256):
            raise BackupError(f"backup {backup_id}: {entry.path} changed on disk before upload")
        store.upload(path, entry.sha256, entry.size)
        tracker.advance(entry.size)
    log.info("backup %s: uploaded %d objects, %d already in S3", backup_id, len(todo), skipped)
    return UploadReport(len(todo), skipped, sum(e.size for e in todo), store.describe())


def commit_backup(backup_id: str, settings: Settings | None = None, store: S3Store | None = None) -> Manifest:
    """Write the manifest (to S3 first when ``store``, then locally): from now on the backup is complete."""
    settings = settings or get_settings()
    root = backup_path(settings.backup_dir, backup_id)
    if (root / MANIFEST_NAME).exists():
        manifest = read_manifest(root)
        if store is not None:
            store.put_manifest(manifest)
        return manifest
    root, manifest = _pending(settings, backup_id)
    manifest.completed_at = datetime.now(UTC).isoformat()
    if store is not None:
        existing = store.existing_objects()
        missing = [e.path for e in manifest.files if e.sha256 not in existing]
        if missing:
            raise BackupError(
                f"backup {backup_id}: S3 lacks {len(missing)} objects (e.g. {missing[0]}); upload first"
            )
        manifest.remote = store.describe()
        store.put_manifest(manifest)
    atomic_write_bytes(root / MANIFEST_NAME, manifest.to_json())
    (root / PENDING_NAME).unlink(missing_ok=True)
    log.info(
        "backup %s committed (%d files, %.1f MB)", backup_id, len(manifest.files), manifest.total_bytes / 1e6
    )
    return manifest


def create_backup(
    settings: Settings | None = None,
    backup_id: str | None = None,
    store: S3Store | None = None,
    progress: ProgressFn | None = None,
) -> BackupResult:
    """Snapshot, upload (when ``store``) and commit one backup; raises and leaves no manifest on any failure."""
    settings = settings or get_settings()
    started = time.monotonic()
    backup_id = backup_id or allocate_backup_id(settings.backup_dir)
    already = (backup_path(settings.backup_dir, backup_id) / MANIFEST_NAME).exists()
    manifest = snapshot_backup(settings, backup_id, progress)
    report = upload_backup(backup_id, store, settings, progress) if store is not None else None
    manifest = commit_backup(backup_id, settings, store)
    return BackupResult(
        backup_id=backup_id,
        path=str(backup_path(settings.backup_dir, backup_id)),
        files=len(manifest.files),
        bytes=manifest.total_bytes,
        uploaded=report.uploaded if report else 0,
        skipped_remote=report.skipped if report else 0,
        remote=manifest.remote,
        seconds=round(time.monotonic() - started, 3),
        already_complete=already,
        evaluation=manifest.evaluation,
    )
