"""Maintenance lock: a lock file that disaster recovery holds while it replaces live state.

The lock must outlive one process (Airflow runs the acquire, restore and release steps as separate task
processes), so it is a lease: a JSON file (holder, host, pid, since, expires_at), written atomically, not
an ``flock`` that dies with its process. A lock past ``expires_at`` is stale: it no longer blocks anyone
and the next acquire takes it over (a crashed recovery cannot block training forever). Acquire and release
read, decide and write under :func:`model.fsio.file_lock` on a guard file beside the lock, so two
processes can never both take over a stale lock, nor a release remove a lock just re-taken by another.
Training and backups call :func:`assert_not_locked` / :func:`is_maintenance_locked`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from model.fsio import atomic_write_json, file_lock

log = logging.getLogger(__name__)

clock: Callable[[], float] = time.time  # unix seconds; tests replace it to age a lock without sleeping

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
        return clock() >= self.expires_at

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
        mtime = path.stat().st_mtime if path.exists() else clock()
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


def _guard(path: Path) -> contextlib.AbstractContextManager[None]:
    """Serialise the read-decide-write of acquire and release across processes (an ``flock``)."""
    return file_lock(path.with_name(f".{path.name}.guard"))


def acquire_maintenance_lock(
    holder: str, lock_file: Path | None = None, ttl_seconds: float = DEFAULT_TTL_SECONDS
) -> LockInfo:
    """Take the lock for ``holder`` (re-entrant for the same holder, takes over a stale lock); else raise."""
    if not holder:
        raise ValueError("maintenance lock holder must be a non-empty string")
    path = _resolve(lock_file)
    with _guard(path):
        current = read_lock(path)
        if current is not None and current.holder != holder and not current.expired:
            raise MaintenanceLocked(
                f"cannot take maintenance lock {path} for {holder!r}: it is {current.describe()}"
            )
        if current is not None and current.holder != holder:
            log.warning("taking over stale maintenance lock %s (%s)", path, current.describe())
        now = clock()
        since = current.since if current is not None and current.holder == holder else now
        info = LockInfo(holder, socket.gethostname(), os.getpid(), since, now + ttl_seconds)
        atomic_write_json(path, asdict(info))
    if current is None:
        log.info("maintenance lock %s acquired by %s", path, holder)
    return info


def release_maintenance_lock(holder: str, lock_file: Path | None = None, force: bool = False) -> bool:
    """Remove the lock if ``holder`` holds it (or ``force``); returns True if a lock was removed."""
    path = _resolve(lock_file)
    with _guard(path):
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
