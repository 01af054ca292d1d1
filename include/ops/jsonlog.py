"""Structured logs: one JSON object per line in ``<log_dir>/<component>.log``, shared by the app and training.

Each line holds ``ts`` (UTC ISO-8601), ``level``, ``logger``, ``component``, ``message`` plus any JSON-able
``extra=`` fields. Values under secret-looking keys and bearer tokens inside messages are redacted.
``JsonLogTail`` follows such a file from its current end (how `make demo` shows progress without task logs).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from include.ops.settings import get_settings

_HANDLER_ATTR = "_ct_jsonlog_path"
_SECRET_KEY = re.compile(
    r"(token|secret|password|passwd|authorization|api[_-]?key|credential)", re.IGNORECASE
)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_KV_SECRET = re.compile(r"((?:token|secret|password|api[_-]?key)\s*[=:]\s*)[^\s,;'\"]+", re.IGNORECASE)
REDACTED = "***"
# attributes every LogRecord has; anything else on a record came from ``extra=`` and is emitted as a field
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def redact(text: str) -> str:
    """Mask bearer tokens and ``token=...``/``password: ...`` values inside free text."""
    return _KV_SECRET.sub(rf"\1{REDACTED}", _BEARER.sub(rf"\1{REDACTED}", text))


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line tagged with the component that wrote it."""

    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a single-line JSON object (secrets redacted)."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "component": self.component,
            "message": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key in _STANDARD_ATTRS or key.startswith("_") or key in entry:
                continue
            entry[key] = REDACTED if _SECRET_KEY.search(key) else _jsonable(value)
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def log_file(component: str, log_dir: Path | None = None) -> Path:
    """``<log_dir>/<component>.log``, the file ``configure_json_logging(component)`` writes (``log_dir``:
    settings.log_dir by default)."""
    return (Path(log_dir) if log_dir is not None else get_settings().log_dir).resolve() / f"{component}.log"


def configure_json_logging(component: str, level: int = logging.INFO, log_dir: Path | None = None) -> Path:
    """Attach a JSON-lines file handler for ``component`` to the root logger (idempotent); return the file.

    ``log_dir`` defaults to ``settings.log_dir`` (env CT_LOG_DIR). The root logger is lowered to ``level``
    when it is stricter, so INFO records of library loggers reach the file.
    """
    if not component or not re.fullmatch(r"[A-Za-z0-9_.-]+", component):
        raise ValueError(
            f"component must be a non-empty name of letters, digits, '_', '.', '-': {component!r}"
        )
    path = log_file(component, log_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for handler in root.handlers:
        if getattr(handler, _HANDLER_ATTR, None) == str(path):
            return path
    # WatchedFileHandler reopens the file if log cleanup or rotation removed it under a running process
    handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8")
    handler.setLevel(level)
    handler.setFormatter(JsonFormatter(component))
    setattr(handler, _HANDLER_ATTR, str(path))
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)
    return path


def remove_json_logging(component: str | None = None) -> None:
    """Detach and close the handlers ``configure_json_logging`` added (all of them without ``component``)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        path = getattr(handler, _HANDLER_ATTR, None)
        if path is not None and (component is None or Path(path).name == f"{component}.log"):
            root.removeHandler(handler)
            handler.close()


class JsonLogTail:
    """Follow a JSON-lines log from its end at ``__enter__``: ``on_record(dict)`` for each line appended.

    A thread polls every ``interval_s``; ``__exit__`` stops it and reads what is left, so every line written
    inside the block is delivered once, in order, on the polling thread or (the last ones) the caller's.
    A line that is not a JSON object is skipped; a file truncated or replaced meanwhile is read from its start.
    """

    def __init__(
        self, path: Path, on_record: Callable[[dict[str, Any]], None], interval_s: float = 0.2
    ) -> None:
        self.path = Path(path)
        self.on_record = on_record
        self.interval_s = interval_s
        self._offset = 0
        self._partial = b""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> JsonLogTail:
        self._offset = self.path.stat().st_size if self.path.is_file() else 0
        self._thread = threading.Thread(target=self._run, name=f"tail-{self.path.name}", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.poll()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.poll()

    def poll(self) -> None:
        """Deliver the complete lines appended since the last poll."""
        try:
            with self.path.open("rb") as fh:
                if fh.seek(0, 2) < self._offset:  # truncated or replaced (log cleanup): start over
                    self._offset, self._partial = 0, b""
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                self.on_record(record)
