"""Maintenance lock: a lock file that disaster recovery holds while it replaces live state.

The lock must outlive one process (Airflow runs the acquire, restore and release steps as separate task
processes), so it is a file created atomically (``os.link`` of a fully written temp file, which fails if
the lock exists) holding JSON: holder, host, pid, since, expires_at. A lock past ``expires_at`` is stale:
it no longer blocks anyone and the next acquire takes it over (a crashed recovery cannot block training
forever). Training and backups call :func:`assert_not_locked` / :func:`is_maintenance_locked`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 6 * 3600  # longer than any restore of this system; a forgotten lock expires by itself


class MaintenanceLocked(RuntimeError):
    """The maintenance lock is held by someone else; the message names the holder and the lock file."""


@dataclass(frozen=True)
class LockInfo:
    """Contents of the lock file."""

    holder: str
    host: str
    pid: int
    since: float  # unix seconds
    expires_at: float  # unix seconds

    @property
    def expired(self) -> bool:
        """True once the lock is past its expiry and no longer blocks anyone."""
        return time.time() >= self.expires_at

    def describe(self) -> str:
        """One line for error messages and logs."""
        since = datetime.fromtimestamp(self.since, UTC).isoformat(timespec="seconds")
        until = datetime.fromtimestamp(self.expires_at, UTC).isoformat(timespec="seconds")
        return f"held by {self.holder!r} (host {self.host}, pid {self.pid}) since {since}, expires {until}"


def _default_lock_file() -> Path:
    from include.ops.settings import get_settings

    return get_settings().lock_file


def _resolve(lock_file: Path | None) -> Path:
    return Path(lock_file) if lock_file is not None else _default_lock_file()


def read_lock(lock_file: Path | None = None) -> LockInfo | None:
    """Return the lock's contents, or None when there is no lock file; an unreadable file counts as held."""
    path = _resolve(lock_file)
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)
        return LockInfo(
            holder=str(data["holder"]),
            host=str(data["host"]),
            pid=int(data["pid"]),
            since=float(data["since"]),
            expires_at=float(data["expires_at"]),
        )
    except (ValueError, KeyError, TypeError):
        # fail safe: a garbled lock blocks until an operator removes it (`make unlock`) or it ages out
        mtime = path.stat().st_mtime if path.exists() else time.time()
        return LockInfo("<unreadable lock file>", "?", -1, mtime, mtime + DEFAULT_TTL_SECONDS)


def is_maintenance_locked(lock_file: Path | None = None) -> bool:
    """True while a non-expired maintenance lock exists (disaster recovery is replacing live state)."""
    info = read_lock(lock_file)
    if info is None:
        return False
    if info.expired:
        log.warning("maintenance lock %s is stale (%s): ignoring it", _resolve(lock_file), info.describe())
        return False
    return True


def assert_not_locked(what: str, lock_file: Path | None = None) -> None:
    """Raise MaintenanceLocked naming ``what`` and the holder when the maintenance lock is held."""
    info = read_lock(lock_file)
    if info is not None and not info.expired:
        raise MaintenanceLocked(
            f"{what} refused: maintenance lock {_resolve(lock_file)} is {info.describe()}; "
            "disaster recovery is running, retry after it finishes"
        )


def _write_new(path: Path, info: LockInfo) -> bool:
    """Create ``path`` holding ``info`` atomically; False if it already exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(info), f)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # atomic create-if-absent with the full contents already in place
        except FileExistsError:
            return False
        return True
    finally:
        Path(tmp).unlink(missing_ok=True)


def acquire_maintenance_lock(
    holder: str, lock_file: Path | None = None, ttl_seconds: float = DEFAULT_TTL_SECONDS
) -> LockInfo:
    """Take the lock for ``holder`` (re-entrant for the same holder, takes over a stale lock); else raise."""
    if not holder:
        raise ValueError("maintenance lock holder must be a non-empty string")
    path = _resolve(lock_file)
    now = time.time()
    info = LockInfo(holder, socket.gethostname(), os.getpid(), now, now + ttl_seconds)
    for _ in range(3):
        if _write_new(path, info):
            log.info("maintenance lock %s acquired by %s", path, holder)
            return info
        current = read_lock(path)
        if current is None:
            continue  # released between our attempt and the read: try again
        if current.holder == holder or current.expired:
            if current.expired and current.holder != holder:
                log.warning("taking over stale maintenance lock %s (%s)", path, current.describe())
            since = current.since if current.holder == holder else now
            refreshed = LockInfo(holder, info.host, info.pid, since, info.expires_at)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump(asdict(refreshed), f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            return refreshed
        raise MaintenanceLocked(
            f"cannot take maintenance lock {path} for {holder!r}: it is {current.describe()}"
        )
    raise MaintenanceLocked(f"cannot take maintenance lock {path} for {holder!r}: it keeps changing hands")


def release_maintenance_lock(holder: str, lock_file: Path | None = None, force: bool = False) -> bool:
    """Remove the lock if ``holder`` holds it (or ``force``); returns True if a lock was removed."""
    path = _resolve(lock_file)
    current = read_lock(path)
    if current is None:
        return False
    if current.holder != holder and not force:
        raise MaintenanceLocked(
            f"{holder!r} cannot release maintenance lock {path}: it is {current.describe()}"
        )
    path.unlink(missing_ok=True)
    log.info("maintenance lock %s released (was %s)", path, current.describe())
    return True


@contextlib.contextmanager
def maintenance_lock(
    holder: str, lock_file: Path | None = None, ttl_seconds: float = DEFAULT_TTL_SECONDS
) -> Iterator[LockInfo]:
    """Hold the maintenance lock for the ``with`` block; raise MaintenanceLocked if someone else holds it.

    Re-entrant: when ``holder`` already holds the lock (a DAG that took it in an earlier task), the block
    runs under it and leaves it held on exit.
    """
    current = read_lock(lock_file)
    nested = current is not None and current.holder == holder and not current.expired
    info = acquire_maintenance_lock(holder, lock_file, ttl_seconds)
    try:
        yield info
    finally:
        if not nested:
            release_maintenance_lock(holder, lock_file)
