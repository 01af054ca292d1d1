"""Calls into other parts of the project that maintenance relies on, looked up when a check runs.

Backups (``include.ops.backup``: verify, cleanup, DR drill) and performance sweeps (``include.ops.perf``)
are owned elsewhere; when a module or function is missing the check reports ``not_available`` with the
import error, never a pass.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable
from typing import Any

from include.ops.settings import Settings

log = logging.getLogger(__name__)
_missing: dict[str, str] = {}


def find(module: str, *names: str) -> Callable[..., Any] | None:
    """The first of ``names`` defined in ``module``, or None (the reason is kept for ``missing``)."""
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        _missing[module] = f"{module} cannot be imported ({exc})"
        return None
    for name in names:
        fn = getattr(mod, name, None)
        if callable(fn):
            return fn
    _missing[module] = f"{module} has none of {', '.join(names)}"
    return None


def missing(module: str | None = None) -> str:
    """Why the last lookup in ``module`` (or any) failed."""
    if module is not None:
        return _missing.get(module, f"{module} not looked up")
    return "; ".join(_missing.values()) or "unknown"


def backup_status(paths: Settings) -> dict[str, Any] | None:
    """Verify the newest complete local backup byte by byte; None when the backup catalog is not available.

    Returns ``{"backup_id", "created_at", "ok", "files", "bytes", "problems", "incomplete": [...]}``
    (``backup_id`` None when there is no complete backup).
    """
    latest = find("include.ops.backup.catalog", "latest_complete_backup")
    verify = find("include.ops.backup.catalog", "verify_backup")
    listing = find("include.ops.backup.catalog", "list_backups")
    if latest is None or verify is None or listing is None:
        return None
    backups = listing(paths)
    incomplete = [b.backup_id for b in backups if not b.complete]
    info = latest(paths)
    if info is None:
        return {"backup_id": None, "backups": len(backups), "incomplete": incomplete, "ok": False}
    report = verify(info.backup_id, settings=paths, raise_on_error=False)
    return {
        "backup_id": info.backup_id,
        "created_at": info.created.timestamp(),
        "ok": bool(report.ok),
        "files": report.files,
        "bytes": report.bytes,
        "verify_seconds": report.seconds,
        "problems": list(report.problems),
        "backups": len(backups),
        "incomplete": incomplete,
    }


def cleanup_checkpoints(paths: Settings, keep: int) -> dict[str, Any] | None:
    """Backup module: keep the ``keep`` newest checkpoints (aliased/backed-up ones stay); None if unavailable."""
    fn = find("include.ops.backup.cleanup", "cleanup_checkpoints")
    return None if fn is None else jsonable(fn(keep, settings=paths))


def cleanup_logs(paths: Settings, days: int) -> dict[str, Any] | None:
    """Backup module: delete logs older than ``days`` under ``log_dir``; None if unavailable."""
    fn = find("include.ops.backup.cleanup", "cleanup_logs")
    return None if fn is None else jsonable(fn(days, settings=paths))


def dr_drill(paths: Settings) -> dict[str, Any] | None:
    """Backup module: restore the latest backup into scratch and validate it; the drill report, None if unavailable.

    A failed drill (``DrillFailed``) is returned as its report with ``ok`` False, not raised.
    """
    fn = find("include.ops.backup.drill", "dr_drill")
    if fn is None:
        return None
    try:
        return jsonable(fn(settings=paths))
    except Exception as exc:
        report = getattr(exc, "report", None)
        if report is None:
            raise
        return jsonable(report)


def jsonable(value: Any) -> Any:
    """A report object as plain JSON-able data (``to_dict``, dataclass, or ``str`` as a last resort)."""
    import dataclasses

    if hasattr(value, "to_dict"):
        value = value.to_dict()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.loads(json.dumps(value, default=str))
