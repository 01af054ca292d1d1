"""continual_training carries a DeadlineAlert of the configured minutes; its callback posts to the webhook."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tests.dag_helpers import load_dag


def test_the_dag_carries_the_configured_deadline_and_it_serializes(monkeypatch: pytest.MonkeyPatch):
    from airflow.serialization.serialized_objects import DagSerialization

    monkeypatch.setenv("CT_TRAINING_DEADLINE_MINUTES", "7")
    dag = load_dag("continual_training")
    (alert,) = dag.deadline
    assert alert.interval == timedelta(minutes=7)
    assert type(alert.reference).__name__ == "DagRunQueuedAtDeadline"
    assert alert.callback.path == "include.airflow_glue.deadlines.notify_deadline_missed"
    assert alert.callback.kwargs == {"minutes": 7.0}
    text = json.dumps(DagSerialization.to_dict(dag), default=str)
    assert "include.airflow_glue.deadlines.notify_deadline_missed" in text  # what the scheduler stores


def test_zero_minutes_means_no_deadline(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CT_TRAINING_DEADLINE_MINUTES", "0")
    assert not load_dag("continual_training").deadline


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append({"path": self.path, "json": json.loads(body)})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        return None


def test_the_callback_notifies_through_the_webhook_connection(monkeypatch: pytest.MonkeyPatch):
    from include.airflow_glue.deadlines import notify_deadline_missed

    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hooks/T0KEN"
    monkeypatch.setenv("AIRFLOW_CONN_NOTIFY_WEBHOOK", json.dumps({"conn_type": "http", "host": url}))
    context = {  # what the scheduler hands the callback (airflow.models.deadline.Deadline.handle_miss)
        "dag_run": {"dag_id": "continual_training", "dag_run_id": "manual__slow", "state": "running"},
        "deadline": {"id": "d1", "deadline_time": "2026-12-03T12:00:00+00:00"},
    }
    try:
        _Hook.received.clear()
        out = asyncio.run(notify_deadline_missed(minutes=7.0, context=context))
    finally:
        server.shutdown()
        thread.join(5)
    assert out["channel"] == "webhook"
    (got,) = _Hook.received
    assert got["path"] == "/hooks/T0KEN" and got["json"]["event"] == "training deadline missed"
    assert "manual__slow is still running after 7 minutes" in got["json"]["text"]
    assert got["json"]["summary"]["deadline_minutes"] == 7.0


def test_without_a_webhook_the_callback_logs_and_never_raises(monkeypatch: pytest.MonkeyPatch):
    from include.airflow_glue.deadlines import notify_deadline_missed

    monkeypatch.delenv("AIRFLOW_CONN_NOTIFY_WEBHOOK", raising=False)
    assert asyncio.run(notify_deadline_missed(minutes=1.0, context=None))["channel"] == "log"
