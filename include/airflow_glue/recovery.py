"""Airflow side of the backup and recovery DAGs: their Params, connections as plain values, no-retry failures.

Module level imports only ``airflow.sdk`` (the DAG files import this at parse time); the ops library is
imported inside the functions, which tasks call at run time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from airflow.sdk import Param

# include.ops.backup.layout.BACKUP_ID_PATTERN or "latest" (written out: parsing a DAG must not import the
# backup library; tests/ops/backup/test_backup_recovery.py checks the two agree)
BACKUP_ID_PARAM_PATTERN = r"^(latest|\d{8}T\d{6}Z(-\d{1,3})?)$"
API_CONN_ID = "airflow_api"
WEBHOOK_CONN_ID = "notify_webhook"


def backup_id_param(description: str) -> Param:
    """``backup_id``: ``latest`` (the newest complete backup) or an id like ``20261128T214500Z``."""
    return Param("latest", type="string", pattern=BACKUP_ID_PARAM_PATTERN, description=description)


def source_param(description: str) -> Param:
    """``source``: ``local`` (the backup folder) or ``s3`` (through the ``s3_backup`` connection)."""
    return Param("local", type="string", enum=["local", "s3"], description=description)


def connection(conn_id: str) -> Any:
    """The Airflow connection ``conn_id``, or None when it is not configured."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def api_endpoint(conn_id: str = API_CONN_ID) -> Any:
    """The Airflow REST API of the ``airflow_api`` connection as an ``ApiEndpoint``, or None without one."""
    from include.ops.backup.notify import connection_url
    from include.ops.backup.recovery import ApiEndpoint

    conn = connection(conn_id)
    if conn is None:
        return None
    return ApiEndpoint(connection_url(conn, default_scheme="http"), conn.login or "", conn.password or "")


def webhook_url(conn_id: str = WEBHOOK_CONN_ID) -> str | None:
    """The URL of the ``notify_webhook`` connection, or None (notifications then go to the log)."""
    from include.ops.backup.notify import connection_url

    conn = connection(conn_id)
    return connection_url(conn) if conn is not None else None


@contextlib.contextmanager
def fail_without_retry() -> Iterator[None]:
    """Turn a permanent failure (bad id, corrupted or missing backup, lock held) into a failure without retries."""
    from include.airflow_glue.refusals import fail_on_refusal
    from include.ops.backup.recovery import PERMANENT_ERRORS

    with fail_on_refusal(*PERMANENT_ERRORS):
        yield
