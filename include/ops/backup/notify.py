"""Side effects around a recovery: pause/unpause DAGs over the Airflow REST API, notify stakeholders.

Both talk HTTP with httpx and take plain values (URL, user, password) so they stay Airflow-free; the DAG
turns its ``airflow_api`` / ``notify_webhook`` connections into those values. Credentials and webhook URLs
(which often embed a token) are never logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpx

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0
PAUSED_DURING_RECOVERY = ("continual_training", "checkpoint_backup")


class AirflowApiError(RuntimeError):
    """The Airflow REST API refused or failed a request; the message names the DAG and the status."""


def _token(client: httpx.Client, base_url: str, username: str, password: str) -> str:
    resp = client.post(f"{base_url}/auth/token", json={"username": username, "password": password})
    if resp.status_code not in (200, 201):
        raise AirflowApiError(f"Airflow API login as {username!r} failed: HTTP {resp.status_code}")
    return resp.json()["access_token"]


def set_dags_paused(
    base_url: str,
    username: str,
    password: str,
    dag_ids: Iterable[str],
    paused: bool,
    client: httpx.Client | None = None,
) -> dict[str, bool]:
    """Pause (or unpause) each DAG through ``PATCH /api/v2/dags/{id}``; return each DAG's previous ``is_paused``.

    DAGs the API does not know are skipped with a warning (a deployment may lack one of them).
    """
    base_url = base_url.rstrip("/")
    owns = client is None
    client = client or httpx.Client(timeout=TIMEOUT_S)
    previous: dict[str, bool] = {}
    try:
        headers = {"Authorization": f"Bearer {_token(client, base_url, username, password)}"}
        for dag_id in dag_ids:
            got = client.get(f"{base_url}/api/v2/dags/{dag_id}", headers=headers)
            if got.status_code == 404:
                log.warning(
                    "DAG %s is not known to the Airflow API: not %s",
                    dag_id,
                    "paused" if paused else "unpaused",
                )
                continue
            if got.status_code != 200:
                raise AirflowApiError(f"reading DAG {dag_id} failed: HTTP {got.status_code}")
            previous[dag_id] = bool(got.json()["is_paused"])
            resp = client.patch(
                f"{base_url}/api/v2/dags/{dag_id}",
                params={"update_mask": "is_paused"},
                json={"is_paused": paused},
                headers=headers,
            )
            if resp.status_code != 200:
                raise AirflowApiError(
                    f"{'pausing' if paused else 'unpausing'} DAG {dag_id} failed: HTTP {resp.status_code}"
                )
            log.info(
                "DAG %s %s (was %s)",
                dag_id,
                "paused" if paused else "unpaused",
                "paused" if previous[dag_id] else "active",
            )
    finally:
        if owns:
            client.close()
    return previous


def connection_url(conn: Any, default_scheme: str = "https") -> str:
    """URL of an HTTP-style connection object (host may be a full URL; else schema://host:port + extra.endpoint)."""
    host = getattr(conn, "host", None)
    if not host:
        raise ValueError(f"connection {getattr(conn, 'conn_id', '?')!r} has no host")
    if "://" in host:
        base = host
    else:
        schema = getattr(conn, "schema", None)
        scheme = schema if schema in ("http", "https") else default_scheme
        port = getattr(conn, "port", None)
        base = f"{scheme}://{host}" + (f":{port}" if port else "")
    extra = getattr(conn, "extra_dejson", None) or {}
    endpoint = extra.get("endpoint", "")
    return base.rstrip("/") + ("/" + endpoint.lstrip("/") if endpoint else "")


def notify(
    event: str, summary: dict[str, Any], url: str | None = None, client: httpx.Client | None = None
) -> str:
    """POST ``{"text", "event", "summary"}`` to a webhook when ``url`` is given, else log it; return the channel.

    A webhook failure is logged, not raised: the recovery outcome is already decided and recorded.
    """
    ok = summary.get("ok")
    text = f"[continual-transformer] {event}: {'succeeded' if ok else 'FAILED' if ok is False else 'done'}"
    if summary.get("backup_id"):
        text += f" (backup {summary['backup_id']})"
    if summary.get("problems"):
        text += " - " + "; ".join(str(p) for p in summary["problems"][:5])
    payload = {"text": text, "event": event, "summary": summary}
    if not url:
        log.warning("NOTIFY %s", json.dumps(payload, default=str))
        return "log"
    owns = client is None
    client = client or httpx.Client(timeout=TIMEOUT_S)
    host = urlsplit(url).hostname
    try:
        resp = client.post(
            url, content=json.dumps(payload, default=str), headers={"Content-Type": "application/json"}
        )
        resp.raise_for_status()
        log.info("notified webhook at %s: %s", host, text)
        return "webhook"
    except httpx.HTTPError as exc:
        log.error("webhook notification to %s failed (%s); message was: %s", host, type(exc).__name__, text)
        return "log"
    finally:
        if owns:
            client.close()
