"""File primitives for the whole project: atomic writes, checksums and inter-process locks.

Readers see the old file or the new one, never a torn one: temp file in the same folder, fsync,
``os.replace``, then fsync of the folder so the rename itself survives a crash. Locks are the pinned
``filelock`` package (``flock`` on POSIX), imported when a lock is first taken, so importing this module
costs only the standard library (it is imported from DAG-facing code).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

CHUNK = 1 << 20  # read size for hashing: large enough for throughput, small enough to bound memory


class LockTimeout(TimeoutError):
    """:func:`file_lock` could not take the lock within its ``timeout``; the message names the file."""


def fsync_dir(directory: Path) -> None:
    """Persist the entries (renames, new files) of ``directory``."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: Path, mode: int | None = None) -> Iterator[BinaryIO]:
    """A binary file that replaces ``path`` only when the block exits cleanly; on error ``path`` is untouched
    and the temp file removed. Parents are created; ``mode`` is set before the file appears."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path, mode) as f:
        f.write(data)


def atomic_write_text(path: Path, text: str, mode: int | None = None) -> None:
    """Replace ``path`` with UTF-8 ``text`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def atomic_write_json(path: Path, obj: Any, mode: int | None = None) -> None:
    """Replace ``path`` with ``obj`` as indented, key-sorted JSON plus a newline, atomically.

    Values JSON cannot encode (paths, datetimes) are written as ``str(value)``.
    """
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read once in chunks of at most :data:`CHUNK` bytes."""
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(min(CHUNK, os.fstat(f.fileno()).st_size + 1))  # small files in one read
        view = memoryview(buf)
        while n := f.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


@contextlib.contextmanager
def file_lock(path: Path, timeout: float = -1) -> Iterator[None]:
    """Hold an exclusive inter-process lock on ``path`` (parents created) for the ``with`` block.

    ``timeout`` in seconds: negative waits forever, ``0`` tries once; when it runs out
    :class:`LockTimeout` is raised. Each call takes its own lock, so two ``with`` blocks on one path
    exclude each other even in the same process and thread (the lock is not re-entrant). The lock file
    stays after release (removing it would race with a waiter that already opened it).
    """
    import filelock

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(path, timeout=timeout, thread_local=False)
    try:
        lock.acquire()
    except filelock.Timeout as exc:
        raise LockTimeout(f"could not lock {path} within {timeout} s: another process holds it") from exc
    try:
        yield
    finally:
        lock.release()


def atomic_copy(src: Path, dst: Path, expected_sha256: str | None = None, mode: int | None = None) -> str:
    """Copy ``src`` to ``dst`` atomically (see :func:`atomic_writer`); return the sha256 of the bytes written.

    With ``expected_sha256`` the copy is verified before it becomes visible; a mismatch raises OSError
    naming both files and leaves ``dst`` untouched.
    """
    src, dst = Path(src), Path(dst)
    digest = hashlib.sha256()
    with atomic_writer(dst, mode) as out, src.open("rb") as inp:
        for block in iter(lambda: inp.read(CHUNK), b""):
            digest.update(block)
            out.write(block)
        checksum = digest.hexdigest()
        if expected_sha256 is not None and checksum != expected_sha256:
            raise OSError(f"copy of {src} to {dst} has sha256 {checksum}, expected {expected_sha256}")
    return checksum


def safe_move(src: Path, dst: Path, expected_sha256: str, mode: int | None = None) -> None:
    """Move ``src`` to ``dst`` without ever losing it: verified atomic copy first, unlink of ``src`` last."""
    atomic_copy(src, dst, expected_sha256=expected_sha256, mode=mode)
    Path(src).unlink()
    fsync_dir(Path(src).parent)


def read_json(path: Path, default: Any) -> Any:
    """Parsed JSON of ``path``, or ``default`` when it does not exist; ValueError naming the file if garbled."""
    try:
        raw = Path(path).read_text()
    except FileNotFoundError:
        return default
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); fix or restore it before using it") from exc
