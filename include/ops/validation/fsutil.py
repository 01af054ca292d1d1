"""File primitives of the validation stores: checksums, atomic writes and copies, an inter-process lock."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from model import fsio

CHUNK = 1024 * 1024
FILE_MODE = 0o644  # mkstemp creates 0600; stored batches and reports must stay readable by other services


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, streamed."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically with the store's file mode."""
    fsio.atomic_write_bytes(path, data, FILE_MODE)


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def atomic_copy(src: Path, dst: Path, expected_sha256: str | None = None) -> str:
    """Copy ``src`` to ``dst`` atomically (temp + fsync + replace); return the sha256 of the bytes written.

    With ``expected_sha256`` the copy is verified before it becomes visible; a mismatch raises OSError
    naming both files and leaves ``dst`` untouched.
    """
    src, dst = Path(src), Path(dst)
    digest = hashlib.sha256()
    with fsio.atomic_writer(dst, FILE_MODE) as out, src.open("rb") as inp:
        for block in iter(lambda: inp.read(CHUNK), b""):
            digest.update(block)
            out.write(block)
        checksum = digest.hexdigest()
        if expected_sha256 is not None and checksum != expected_sha256:
            raise OSError(f"copy of {src} to {dst} has sha256 {checksum}, expected {expected_sha256}")
    return checksum


def safe_move(src: Path, dst: Path, expected_sha256: str) -> None:
    """Move ``src`` to ``dst`` without ever losing it: verified atomic copy first, unlink of ``src`` last."""
    atomic_copy(src, dst, expected_sha256=expected_sha256)
    Path(src).unlink()
    fsio.fsync_dir(Path(src).parent)


def read_json(path: Path, default: Any) -> Any:
    """Parsed JSON of ``path``, or ``default`` when it does not exist; ValueError naming the file if garbled."""
    try:
        raw = Path(path).read_text()
    except FileNotFoundError:
        return default
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ValueError(
            f"{path} is not valid JSON ({exc}); fix or restore it before validating more files"
        ) from exc


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (created if missing) for the ``with`` block."""
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
