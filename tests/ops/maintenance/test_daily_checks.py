"""Daily checks on a fresh install and on a broken backup: what is not deployed is skipped, not failed
(unless strict); an incomplete newest backup fails the backup check by name."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from include.ops.maintenance import daily
from include.ops.maintenance.report import FAIL, PASS, SKIPPED, WARN, overall_status
from include.ops.settings import get_settings


@pytest.fixture
def unhealthy_app() -> Iterator[str]:
    """An app that is running but reports itself unhealthy (HTTP 503)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            body = json.dumps({"status": "unhealthy", "errors": ["model not loaded"]}).encode()
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_app_not_running_is_skipped_and_fails_only_a_strict_run():
    from include.serving.server import free_port

    result = daily.check_app_health(f"http://127.0.0.1:{free_port()}", timeout=2)
    assert result.status == SKIPPED, result
    assert result.summary.startswith("skipped: not running") and "make serve" in result.summary
    assert overall_status([result]) == WARN  # a non-strict run does not fail
    assert overall_status([result], strict=True) == FAIL


def test_a_running_but_unhealthy_app_still_fails(unhealthy_app: str):
    result = daily.check_app_health(unhealthy_app, timeout=5)
    assert result.status == FAIL and "model not loaded" in result.summary


def test_no_backup_yet_is_skipped(ct_env: Path):
    result = daily.verify_backups(get_settings())
    assert result.status == SKIPPED and result.summary.startswith("skipped: no backup yet")
    assert overall_status([result]) == WARN and overall_status([result], strict=True) == FAIL


def _backup_id(hours_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours_ago)).strftime("%Y%m%dT%H%M%SZ")


def test_incomplete_newest_backup_fails_by_name(state):
    from include.ops.backup import create_backup

    complete = create_backup(settings=state, backup_id=_backup_id(5)).backup_id
    assert daily.verify_backups(state).status == PASS
    stale = state.backup_dir / _backup_id(3)  # interrupted 3 h ago: never got its manifest
    (stale / "state").mkdir(parents=True)

    result = daily.verify_backups(state)
    assert result.status == FAIL, result
    assert f"newest backup {stale.name} is incomplete" in result.summary
    assert f"restore latest would use {complete}" in result.summary
    assert [b["backup_id"] for b in result.details["newer_incomplete"]] == [stale.name]

    shutil.rmtree(stale)
    running = state.backup_dir / _backup_id(0)  # started just now: may still be running
    (running / "state").mkdir(parents=True)
    young = daily.verify_backups(state)
    assert young.status == WARN and "still running?" in young.summary and running.name in young.summary
    assert daily.verify_backups(state, incomplete_grace_hours=0).status == FAIL
