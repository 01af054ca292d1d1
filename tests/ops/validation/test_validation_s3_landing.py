"""S3 landing zone through the amazon provider's S3Hook against a real S3 API (moto server on 127.0.0.1):
a good object is validated and stays; a bad one is quarantined locally and moved to the quarantine prefix."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ops.validation.helpers import task_text

BUCKET = "continual-transformer"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free local port for this module; stopped afterwards."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_landing(val_env, s3_endpoint, monkeypatch):
    """Airflow connection `s3` given as AIRFLOW_CONN_S3 (endpoint_url in extra) and an empty bucket."""
    import boto3

    conn = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_S3", json.dumps(conn))
    monkeypatch.setenv("CT_LANDING_S3_URI", f"s3://{BUCKET}/landing/")
    monkeypatch.setenv("CT_QUARANTINE_S3_URI", f"s3://{BUCKET}/quarantine/")
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=BUCKET)
    yield client
    for obj in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    client.delete_bucket(Bucket=BUCKET)


def _keys(client, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


@pytest.mark.integration
def test_s3_landing_validates_and_quarantines(val_env, s3_landing, split_digits):
    from include.airflow_glue.landing_s3 import get_landing
    from include.ops.validation.landing import S3Landing
    from include.ops.validation.zone import staging_dir, validate_landing_zone

    client, settings = s3_landing, val_env
    good = task_text(split_digits, 0).encode()
    lines = task_text(split_digits, 1).splitlines()
    lines[3] = ",".join([*lines[3].split(",")[:64], "7", lines[3].split(",")[65]])  # label 7 is not task_1's
    bad = ("\n".join(lines) + "\n").encode()
    client.put_object(Bucket=BUCKET, Key="landing/manifest.json", Body=split_digits.read_bytes())
    client.put_object(Bucket=BUCKET, Key="landing/task_0.csv", Body=good)
    client.put_object(Bucket=BUCKET, Key="landing/task_1.csv", Body=bad)
    client.put_object(
        Bucket=BUCKET, Key="landing/nested/task_2.csv", Body=task_text(split_digits, 2).encode()
    )
    landing = get_landing()
    assert isinstance(landing, S3Landing)

    results = {r.name: r for r in validate_landing_zone(landing=landing)}

    assert {n: r.status for n, r in results.items()} == {
        "task_0.csv": "validated",
        "task_1.csv": "rejected",
        "nested/task_2.csv": "rejected",
    }
    assert results["task_0.csv"].source == f"s3://{BUCKET}/landing/task_0.csv"
    assert (settings.validated_dir / "task_0.csv").read_bytes() == good
    assert results["task_1.csv"].failed_checks == ["expect_column_values_to_be_in_set"]
    assert results["nested/task_2.csv"].failed_checks == ["precheck.file_name"]

    # landing keeps only the passing object; rejected objects were moved (copied, verified, then deleted)
    assert _keys(client, "landing/") == ["landing/manifest.json", "landing/task_0.csv"]
    moved = _keys(client, "quarantine/")
    assert len(moved) == 2
    q1 = next(k for k in moved if k.endswith("/task_1.csv"))
    assert client.get_object(Bucket=BUCKET, Key=q1)["Body"].read() == bad
    assert results["task_1.csv"].summary["quarantined_object"] == f"s3://{BUCKET}/{q1}"
    assert Path(results["task_1.csv"].path).read_bytes() == bad  # local quarantine copy with the report
    staged = [p.name for p in staging_dir(settings).iterdir()]
    assert staged == ["manifest.json"], "staged copies of batches are removed; the manifest copy is reused"

    again = validate_landing_zone(landing=get_landing())
    assert [(r.name, r.status) for r in again] == [("task_0.csv", "skipped")]
