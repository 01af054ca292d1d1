"""The backup store from the Airflow ``s3_backup`` connection (S3Hook): the only place backups meet Airflow.

``include.ops.backup`` takes an ``S3Store`` (any boto3 client); this module builds it from the connection,
for the backup DAGs and ``make backup`` (``include.airflow_glue.backup_cli``).
"""

from __future__ import annotations

import logging

from include.ops.backup.s3 import DEFAULT_CONN_ID, S3Store, store_location

log = logging.getLogger(__name__)


def s3_store_from_connection(
    conn_id: str = DEFAULT_CONN_ID, bucket: str | None = None, prefix: str | None = None
) -> S3Store | None:
    """An S3Store for the Airflow connection ``conn_id`` (S3Hook), or None when it is not configured.

    Bucket: ``bucket``, else the connection's ``service_config.s3.bucket_name``, else
    ``include.ops.backup.s3.store_location``'s defaults; likewise the prefix.
    """
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        log.info("no %r connection: backups stay local", conn_id)
        return None
    hook = S3Hook(aws_conn_id=conn_id)
    bucket, prefix = store_location(bucket or hook.service_config.get("bucket_name"), prefix)
    return S3Store(hook.get_conn(), bucket, prefix)


def backup_store(mode: str, conn_id: str = DEFAULT_CONN_ID) -> S3Store | None:
    """The store a DAG param asks for: ``off``/``local`` -> None, ``auto`` -> the connection's if any,
    ``required``/``s3`` -> the connection's, else fail the task without retries."""
    if mode in ("off", "local"):
        return None
    store = s3_store_from_connection(conn_id)
    if store is None and mode in ("required", "s3"):
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"{mode} needs S3, but the {conn_id!r} connection is not configured")
    return store
