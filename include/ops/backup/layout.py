"""Backup layout: ids, the manifest (the commit marker), safe paths inside a backup, hashing copies.

A backup is a folder ``<backup_dir>/<id>/`` (id ``YYYYMMDDTHHMMSSZ``, UTC, optional ``-N`` suffix) holding
``state/`` (the learner state folder: checkpoints, sidecars, learner_state.json), ``mlflow/`` (backend store
dump and artifacts), ``config/`` (effective configuration, secrets removed) and ``data/`` (the task stream the
champion was evaluated on). ``manifest.json`` is written last; a folder without it is incomplete and never
restored, counted or trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from model.fsio import CHUNK, fsync_dir

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
BACKUP_ID_PATTERN = r"^\d{8}T\d{6}Z(-\d{1,3})?$"
BACKUP_ID_RE = re.compile(BACKUP_ID_PATTERN)
ID_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
ROOTS = ("state", "mlflow", "config", "data")  # the only top-level folders a manifest may name
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
DIR_MODE = 0o700  # every folder of a backup (and the backup root it creates)
FILE_MODE = 0o600  # every file of a backup; the source's own mode is recorded in the manifest

# progress(stage, done, total, done_bytes): long operations report through it and log every few seconds
ProgressFn = Callable[[str, int, int, int], None]


class BackupError(RuntimeError):
    """Base class of every backup/restore failure; messages name the backup and the file concerned."""


class InvalidBackupId(BackupError, ValueError):
    """A backup id that does not match ``YYYYMMDDTHHMMSSZ[-N]``."""


class UnsafePathError(BackupError, ValueError):
    """A path in a manifest (or a backup folder) that would escape its root."""


class BackupNotFound(BackupError):
    """No (complete) backup with that id, or no complete backup at all."""


class IncompleteBackup(BackupError):
    """The backup has no valid manifest: it was interrupted and is never restored."""


class BackupIntegrityError(BackupError):
    """Files of a backup are missing or do not match their recorded size/sha256."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message + ": " + "; ".join(problems))
        self.problems = problems


def new_backup_id(now: datetime | None = None) -> str:
    """A backup id for ``now`` (UTC): ``YYYYMMDDTHHMMSSZ``."""
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).strftime(ID_TIME_FORMAT)


def validate_backup_id(backup_id: Any) -> str:
    """Return ``backup_id`` if it is a well-formed id; InvalidBackupId naming it otherwise."""
    if not isinstance(backup_id, str) or not BACKUP_ID_RE.fullmatch(backup_id):
        raise InvalidBackupId(
            f"invalid backup id {backup_id!r}: expected YYYYMMDDTHHMMSSZ[-N], e.g. 20261128T214500Z"
        )
    try:
        backup_time(backup_id)
    except ValueError as exc:
        raise InvalidBackupId(f"invalid backup id {backup_id!r}: {exc}") from None
    return backup_id


def backup_time(backup_id: str) -> datetime:
    """The UTC creation time encoded in a backup id."""
    return datetime.strptime(backup_id.split("-")[0], ID_TIME_FORMAT).replace(tzinfo=UTC)


def safe_relpath(path: Any, where: str = "manifest") -> str:
    """Validate a manifest path: relative POSIX, no ``..``/empty parts, under one of ``ROOTS``; return it."""
    if not isinstance(path, str) or not path or "\\" in path or "\x00" in path:
        raise UnsafePathError(f"{where}: invalid path {path!r}")
    pure = PurePosixPath(path)
    if pure.is_absolute() or any(part in ("", ".", "..") for part in path.split("/")):
        raise UnsafePathError(f"{where}: path {path!r} escapes the backup root")
    if pure.parts[0] not in ROOTS or len(pure.parts) < 2:
        raise UnsafePathError(f"{where}: path {path!r} is not under one of {ROOTS}")
    return path


def resolve_inside(root: Path, relpath: str, where: str = "manifest") -> Path:
    """``root/relpath`` after checking that it (and any symlink on the way) stays inside ``root``."""
    safe_relpath(relpath, where)
    root_resolved = Path(root).resolve()
    target = (root_resolved / relpath).resolve()
    if target != root_resolved and root_resolved not in target.parents:
        raise UnsafePathError(f"{where}: path {relpath!r} resolves to {target}, outside {root_resolved}")
    return root_resolved / relpath


def backup_path(backup_dir: Path, backup_id: str) -> Path:
    """Folder of backup ``backup_id`` under ``backup_dir``, checked to stay inside it."""
    validate_backup_id(backup_id)
    root = Path(backup_dir).resolve()
    target = (root / backup_id).resolve()
    if target.parent != root:
        raise UnsafePathError(f"backup {backup_id!r} resolves to {target}, outside {root}")
    return root / backup_id


@dataclass(frozen=True)
class FileEntry:
    """One file of a backup: path relative to the backup folder, size in bytes, hex sha256, source mode.

    ``mode`` holds the permission bits the live file had at backup time (a restore applies them); None for
    files the backup generated itself, and in backups made before modes were recorded.
    """

    path: str
    size: int
    sha256: str
    mode: int | None = None


@dataclass
class Manifest:
    """Everything known about a backup; ``checksum`` covers the rest of the JSON so edits are detected."""

    backup_id: str
    created_at: str  # ISO-8601 UTC, when the backup started reading live state
    completed_at: str  # ISO-8601 UTC, when the manifest was written
    files: list[FileEntry]
    code_version: dict[str, Any] = field(default_factory=dict)  # git rev/dirty, project version
    packages: dict[str, str] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)  # host, settings paths, MLflow backend kind
    mlflow: dict[str, Any] = field(default_factory=dict)  # backend, run ids, registered versions, aliases
    references: dict[str, Any] = field(default_factory=dict)  # checkpoints a restore serves/resumes from
    evaluation: dict[str, Any] = field(default_factory=dict)  # champion checkpoint + per-task test accuracies
    config: dict[str, Any] = field(default_factory=dict)  # secret names (never values), redaction rule
    remote: dict[str, Any] | None = None  # bucket/prefix when also uploaded to S3
    format: int = FORMAT_VERSION

    @property
    def total_bytes(self) -> int:
        """Sum of the sizes of every file in the backup."""
        return sum(f.size for f in self.files)

    @property
    def created(self) -> datetime:
        """``created_at`` as an aware datetime."""
        return datetime.fromisoformat(self.created_at)

    def entry(self, path: str) -> FileEntry:
        """The file entry for ``path``; KeyError if the backup has no such file."""
        for item in self.files:
            if item.path == path:
                return item
        raise KeyError(f"backup {self.backup_id} has no file {path!r}")

    def body(self) -> dict[str, Any]:
        """The manifest as a JSON-ready dict without its checksum."""
        data = asdict(self)
        data["files"] = [{k: v for k, v in asdict(f).items() if v is not None} for f in self.files]
        return data

    def to_json(self) -> bytes:
        """Serialised manifest including the checksum of its body."""
        body = self.body()
        body["checksum"] = _body_checksum(body)
        return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes | str, where: str) -> Manifest:
        """Parse and validate a manifest (checksum, id, every path, sizes, hashes); IncompleteBackup if bad."""
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            checksum = data.pop("checksum", None)
            if checksum != _body_checksum(data):
                raise ValueError("manifest checksum mismatch (edited or corrupted)")
            if data.get("format") != FORMAT_VERSION:
                raise ValueError(f"unsupported manifest format {data.get('format')!r}")
            files = []
            seen = set()
            for item in data["files"]:
                mode = item.get("mode")
                entry = FileEntry(
                    safe_relpath(item["path"], where),
                    int(item["size"]),
                    str(item["sha256"]),
                    None if mode is None else int(mode),
                )
                bad_mode = entry.mode is not None and not 0 <= entry.mode <= 0o7777
                if entry.size < 0 or not SHA256_RE.fullmatch(entry.sha256) or entry.path in seen or bad_mode:
                    raise ValueError(f"bad file entry {item!r}")
                seen.add(entry.path)
                files.append(entry)
            data["files"] = files
            manifest = cls(**data)
            validate_backup_id(manifest.backup_id)
            manifest.created  # noqa: B018 - parses created_at
        except UnsafePathError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise IncompleteBackup(f"{where}: invalid manifest ({exc})") from exc
        return manifest


def _body_checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _libc_syncfs():
    """``syncfs(2)`` from libc when available (Linux), else None."""
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):
        return None


_SYNCFS = _libc_syncfs()


def sync_files(root: Path, files: list[Path]) -> None:
    """Make ``files`` (all under ``root``) and their folders durable before a commit marker is written.

    One ``syncfs(2)`` on the filesystem holding ``root`` writes out every file's data and every directory
    entry at once (Linux). Elsewhere, or if it fails, each file and each folder up to ``root`` is fsynced.
    """
    if _SYNCFS is not None:
        fd = os.open(root, os.O_RDONLY)
        try:
            if _SYNCFS(fd) == 0:
                return
        finally:
            os.close(fd)
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    dirs = {root}
    for path in files:
        parent = path.parent
        while parent not in dirs and root in parent.parents:
            dirs.add(parent)
            parent = parent.parent
    for directory in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        fsync_dir(directory)


def _buffer(fileobj) -> bytearray:
    """A read buffer sized for the file (small files in one read), at most ``CHUNK``."""
    return bytearray(min(CHUNK, os.fstat(fileobj.fileno()).st_size + 1))


def copy_hashed(
    src: Path, dst: Path, fsync: bool = True, make_parents: bool = True, mode: int | None = None
) -> tuple[int, str]:
    """Copy ``src`` to ``dst`` hashing the bytes on the way (one read); return ``(size, sha256)``.

    ``mode``: the permission bits ``dst`` gets (exactly, whatever the umask); None keeps the default.
    """
    digest = hashlib.sha256()
    size = 0
    if make_parents:
        dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb", buffering=0) as fin, open(dst, "wb", buffering=0) as fout:
        if mode is not None:
            os.fchmod(fout.fileno(), mode)
        buf = _buffer(fin)
        view = memoryview(buf)
        while n := fin.readinto(buf):
            digest.update(view[:n])
            fout.write(view[:n])
            size += n
        if fsync:
            os.fsync(fout.fileno())
    return size, digest.hexdigest()


def file_mode(path: Path) -> int:
    """The permission bits of ``path`` (what a manifest records)."""
    return stat.S_IMODE(path.stat().st_mode)


def make_private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as ``DIR_MODE`` folders; an existing ``path`` is tightened too."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(path, DIR_MODE)
    return path


def seal_modes(root: Path) -> None:
    """Every folder under ``root`` (itself included) ``DIR_MODE``, every file ``FILE_MODE``; symlinks untouched."""
    os.chmod(root, DIR_MODE)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, DIR_MODE)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, FILE_MODE)


def read_manifest(folder: Path) -> Manifest:
    """Read ``folder/manifest.json``; IncompleteBackup if it is missing or invalid."""
    path = folder / MANIFEST_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise IncompleteBackup(f"backup {folder} has no {MANIFEST_NAME}: it is incomplete") from None
    return Manifest.from_json(raw, where=str(path))


class ProgressLog:
    """Logs progress of a long operation at most every ``every_s`` seconds and forwards to a callback."""

    def __init__(
        self, stage: str, total: int, total_bytes: int = 0, callback: ProgressFn | None = None
    ) -> None:
        self.stage, self.total, self.total_bytes, self.callback = stage, total, total_bytes, callback
        self.done = 0
        self.done_bytes = 0
        self._last = time.monotonic()
        self._start = self._last
        log.info("%s: %d files, %.1f MB", stage, total, total_bytes / 1e6)

    def advance(self, nbytes: int) -> None:
        """Record one more file of ``nbytes`` bytes."""
        self.done += 1
        self.done_bytes += nbytes
        now = time.monotonic()
        if self.callback is not None:
            self.callback(self.stage, self.done, self.total, self.done_bytes)
        if now - self._last >= 5.0 or self.done == self.total:
            self._last = now
            log.info(
                "%s: %d/%d files, %.1f MB in %.1fs",
                self.stage, self.done, self.total, self.done_bytes / 1e6, now - self._start,
            )  # fmt: skip
