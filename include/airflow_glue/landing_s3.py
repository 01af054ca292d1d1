"""The landing zone's Airflow side: the ``s3`` connection selects the S3 zone, the amazon S3Hook reaches it.

    python -m include.airflow_glue.landing_s3 [validate|quarantine|release ...]   # `make validate-data`

runs the validation CLI (:mod:`include.ops.validation.cli`) on the zone :func:`get_landing` picks; the
``data_validation`` DAG passes the same zone to the validation library.
"""

from __future__ import annotations

import logging
import os
import sys

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from include.ops.settings import Settings, get_settings
from include.ops.validation import cli
from include.ops.validation.landing import Landing, LocalLanding, S3Landing

log = logging.getLogger(__name__)


def s3_configured(conn_id: str) -> bool:
    """True when the Airflow connection ``conn_id`` exists (env ``AIRFLOW_CONN_<ID>`` or the metadata DB)."""
    if os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}"):
        return True
    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return False
    except Exception as exc:  # no metadata DB reachable: treat as not configured, say so
        log.info("connection %r not looked up (%s): using the local landing zone", conn_id, exc)
        return False
    return True


def get_landing(settings: Settings | None = None) -> Landing:
    """The S3 landing zone when the ``CT_S3_CONN_ID`` connection exists, else the local ``landing_dir``."""
    settings = settings or get_settings()
    if not s3_configured(settings.landing_s3_conn_id):
        return LocalLanding(settings.landing_dir)
    # the amazon provider (boto3) loads only when the S3 zone is used
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id=settings.landing_s3_conn_id)
    return S3Landing(hook, settings.landing_s3_uri, settings.quarantine_s3_uri)


def main(argv: list[str] | None = None) -> int:
    """The validation CLI on the landing zone of the ``s3`` connection (local when it does not exist)."""
    return cli.main(argv, landing_for=get_landing)


if __name__ == "__main__":
    sys.exit(main())
