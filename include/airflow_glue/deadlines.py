"""Deadline alerts (Airflow 3.1+ ``DeadlineAlert``): a ``continual_training`` run still going after
``Settings.training_deadline_minutes`` (``CT_TRAINING_DEADLINE_MINUTES``) since it was queued notifies through
the project's webhook notifier (``include.ops.backup.notify.notify``, the ``notify_webhook`` connection; without
one, a log entry).

The scheduler queues the callback when the deadline passes; the triggerer awaits it (an ``AsyncCallback``),
with the run's simple context (``dag_run`` as the REST API shows it, ``deadline``). The blocking connection
lookup and HTTP POST run in a worker thread so the triggerer's event loop never waits on them.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

from include.ops.settings import Settings

log = logging.getLogger(__name__)

EVENT = "training deadline missed"


def training_deadline(settings: Settings) -> DeadlineAlert | None:
    """The alert for ``continual_training``: ``training_deadline_minutes`` after the run was queued (None: off)."""
    minutes = settings.training_deadline_minutes
    if not minutes:
        return None
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=minutes),
        callback=AsyncCallback(notify_deadline_missed, kwargs={"minutes": minutes}),
        name="training_deadline",
    )


def deadline_summary(context: dict[str, Any] | None, minutes: float) -> dict[str, Any]:
    """What the notification says: which run, since when, the deadline and the configured minutes."""
    run = (context or {}).get("dag_run") or {}
    deadline = (context or {}).get("deadline") or {}
    dag_id, run_id = run.get("dag_id"), run.get("dag_run_id") or run.get("run_id")
    return {
        "ok": False,
        "dag_id": dag_id,
        "run_id": run_id,
        "state": run.get("state"),
        "queued_at": run.get("queued_at"),
        "deadline_time": str(deadline.get("deadline_time")) if deadline.get("deadline_time") else None,
        "deadline_minutes": minutes,
        "problems": [
            f"{dag_id} run {run_id} is still {run.get('state') or 'going'} after {minutes:g} minutes"
        ],
    }


def _send(summary: dict[str, Any]) -> str:
    from include.airflow_glue.recovery import webhook_url
    from include.ops.backup.notify import notify

    try:
        url = webhook_url()
    except Exception as exc:  # connection lookup failed: the alert still goes to the log
        log.warning("notify_webhook connection not read (%s): the deadline alert goes to the log", exc)
        url = None
    return notify(EVENT, summary, url)


async def notify_deadline_missed(minutes: float, context: dict[str, Any] | None = None) -> dict[str, Any]:
    """The deadline's callback: notify through the webhook (else the log); returns the summary and channel."""
    summary = deadline_summary(context, minutes)
    channel = await asyncio.to_thread(_send, summary)
    log.warning("%s: %s (via %s)", EVENT, summary["problems"][0], channel)
    return {**summary, "channel": channel}
