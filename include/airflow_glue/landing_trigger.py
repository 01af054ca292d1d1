"""Event-driven ingestion: the triggers an ``AssetWatcher`` runs in the triggerer, so that a landed file starts
``data_validation`` within seconds instead of at the next 10-minute poll (which stays, as the fallback).

- ``LandingFolderTrigger``: the local landing folder (``CT_LANDING_DIR``). Unlike the standard provider's file
  triggers it never deletes or moves what it sees (the original bytes are the record); it announces each new
  content once, across triggerer restarts (``include.ops.landing_watch``, hashes in ``<state_dir>``).
- ``LandingQueueTrigger``: S3 landing. S3 event notifications go to an SQS queue (``CT_LANDING_SQS_QUEUE_URL``);
  the amazon provider's ``SqsSensorTrigger`` needs aiobotocore, which this project does not pin, so this trigger
  polls SQS with boto3 in ``asyncio.to_thread``. A message is deleted after its event is yielded (at least
  once: a duplicate only makes ``data_validation`` skip content it has validated).

Nothing heavy is imported at module level: DAG parsing builds the triggers, the triggerer runs them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from airflow.sdk import Asset, AssetWatcher
from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from include.ops.landing_watch import SEEN_FILE
from include.ops.settings import Settings

log = logging.getLogger(__name__)

CLASSPATH = __name__


class LandingFolderTrigger(BaseEventTrigger):
    """One event per new file content in ``directory``; the folder is only read."""

    def __init__(self, directory: str, seen_path: str, poll_interval: float = 2.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.directory, self.seen_path, self.poll_interval = (
            str(directory),
            str(seen_path),
            float(poll_interval),
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and kwargs (the triggerer rebuilds the trigger from these)."""
        return (
            f"{CLASSPATH}.LandingFolderTrigger",
            {"directory": self.directory, "seen_path": self.seen_path, "poll_interval": self.poll_interval},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Scan every ``poll_interval`` seconds; yield ``{"source": "local", name, path, sha256, size}``."""
        from include.ops.landing_watch import FolderWatch

        watch = FolderWatch(Path(self.directory), Path(self.seen_path))
        while True:
            for landed in await asyncio.to_thread(watch.scan):
                log.info("landed %s (sha256 %s)", landed.name, landed.sha256[:12])
                yield TriggerEvent({"source": "local", **landed.to_dict()})
            await asyncio.sleep(self.poll_interval)


class LandingQueueTrigger(BaseEventTrigger):
    """One event per object created in S3, read from the SQS queue its event notifications go to."""

    def __init__(
        self, queue_url: str, aws_conn_id: str | None = "s3", region_name: str | None = None,
        endpoint_url: str | None = None, wait_time_seconds: int = 10, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.queue_url, self.aws_conn_id = queue_url, aws_conn_id
        self.region_name, self.endpoint_url, self.wait_time_seconds = (
            region_name,
            endpoint_url,
            int(wait_time_seconds),
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and kwargs (the triggerer rebuilds the trigger from these)."""
        return (
            f"{CLASSPATH}.LandingQueueTrigger",
            {"queue_url": self.queue_url, "aws_conn_id": self.aws_conn_id, "region_name": self.region_name,
             "endpoint_url": self.endpoint_url, "wait_time_seconds": self.wait_time_seconds},
        )  # fmt: skip

    async def client_kwargs(self) -> dict[str, Any]:
        """boto3 client arguments: the Airflow connection's credentials, endpoint and region when it exists,
        else the default AWS chain; the trigger's own region/endpoint win."""
        out: dict[str, Any] = {}
        if self.aws_conn_id:
            from airflow.sdk import BaseHook

            try:
                conn = await BaseHook.aget_connection(self.aws_conn_id)
            except Exception as exc:  # no such connection: the default credential chain
                log.info(
                    "no %r connection (%s): default AWS credentials", self.aws_conn_id, type(exc).__name__
                )
            else:
                extra = conn.extra_dejson or {}
                if conn.login:
                    out.update(aws_access_key_id=conn.login, aws_secret_access_key=conn.password)
                out.update({k: extra[k] for k in ("endpoint_url", "region_name") if extra.get(k)})
        if self.region_name:
            out["region_name"] = self.region_name
        if self.endpoint_url:
            out["endpoint_url"] = self.endpoint_url
        return out

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Long-poll the queue; yield ``{"source": "s3", bucket, key, size, etag, event_time}`` per created
        object, then delete the message (a message with none is deleted too)."""
        import boto3

        from include.ops.landing_watch import s3_records

        kwargs = await self.client_kwargs()
        client = await asyncio.to_thread(boto3.client, "sqs", **kwargs)
        while True:
            reply = await asyncio.to_thread(
                client.receive_message,
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=self.wait_time_seconds,
            )  # fmt: skip
            for message in reply.get("Messages", []):
                for record in s3_records(message.get("Body", "")):
                    log.info("landed s3://%s/%s", record["bucket"], record["key"])
                    yield TriggerEvent({"source": "s3", **record})
                await asyncio.to_thread(
                    client.delete_message, QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )


def landing_trigger(settings: Settings) -> BaseEventTrigger:
    """The trigger for this deployment: the SQS queue when ``CT_LANDING_SQS_QUEUE_URL`` is set, else the folder."""
    if settings.landing_sqs_queue_url:
        return LandingQueueTrigger(
            queue_url=settings.landing_sqs_queue_url, aws_conn_id=settings.landing_s3_conn_id
        )
    return LandingFolderTrigger(
        directory=str(settings.landing_dir),
        seen_path=str(settings.state_dir / SEEN_FILE),
        poll_interval=settings.landing_watch_interval_s,
    )


def landed_file_asset(settings: Settings) -> Asset:
    """The ``landed_task_file`` Asset, watched by :func:`landing_trigger`; ``data_validation`` is scheduled on it."""
    return Asset(
        name="landed_task_file",
        uri="file://continual-transformer/landing",
        watchers=[AssetWatcher(name="landing_watcher", trigger=landing_trigger(settings))],
    )
