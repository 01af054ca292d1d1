"""Reachability probes shared by the serving app and the maintenance checks (stdlib HTTP, short timeouts)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit


@dataclass
class HttpResult:
    """One HTTP exchange: status (None without a response), parsed JSON body, latency, error."""

    url: str
    status: int | None
    body: Any
    latency_ms: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True for a 2xx response."""
        return self.status is not None and 200 <= self.status < 300


def http_request(
    url: str,
    method: str = "GET",
    payload: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> HttpResult:
    """Send one HTTP request (JSON body when ``payload`` is given); never raises for network errors."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"url must be http(s): {url!r}")
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))  # noqa: S310
    if data is not None:
        req.add_header("Content-Type", "application/json")
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (scheme checked above)
            raw, status = resp.read(), resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    except (OSError, ValueError) as exc:
        return HttpResult(
            url, None, None, (time.perf_counter() - start) * 1000, f"{type(exc).__name__}: {exc}"
        )
    latency = (time.perf_counter() - start) * 1000
    try:
        body: Any = json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = raw[:2000].decode("utf-8", "replace")
    return HttpResult(url, status, body, latency)


def safe_url(url: str) -> str:
    """``url`` without user info, query or fragment, for logs and reports."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def mlflow_reachable(tracking_uri: str, timeout: float = 3.0) -> tuple[bool, str]:
    """Whether the MLflow store answers, without creating anything: (reachable, reason).

    SQLite and file stores must already exist (opening a missing SQLite URI would create an empty store);
    HTTP servers must answer ``GET /health``; other backends (PostgreSQL...) are assumed reachable here
    and fail later with their own error.
    """
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri.removeprefix("sqlite:///"))
        return (
            (True, f"sqlite store {path}")
            if path.is_file()
            else (False, f"sqlite store {path} does not exist")
        )
    if tracking_uri.startswith(("http://", "https://")):
        result = http_request(tracking_uri.rstrip("/") + "/health", timeout=timeout)
        where = safe_url(tracking_uri)
        if result.ok:
            return True, f"server {where} answered in {result.latency_ms:.0f} ms"
        return False, f"server {where} unreachable: {result.error or result.status}"
    if tracking_uri.startswith("file:") or "://" not in tracking_uri:
        path = Path(tracking_uri.removeprefix("file://").removeprefix("file:"))
        return (True, f"file store {path}") if path.exists() else (False, f"file store {path} does not exist")
    return True, f"backend {tracking_uri.split(':', 1)[0]} (not probed)"
