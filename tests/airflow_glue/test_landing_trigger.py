"""Event-driven ingestion (include/airflow_glue/landing_trigger.py): the folder trigger announces new content
once (across restarts) and leaves every file in place; S3 -> SQS event notifications reach the queue and the
queue trigger yields them (moto's server over HTTP); data_validation is scheduled on the watcher or the poll."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

EVENT_TIMEOUT = 20  # seconds: a bound on a hang, never a wait the test relies on


def next_event(agen):
    return asyncio.wait_for(agen.__anext__(), EVENT_TIMEOUT)


def folder_trigger(tmp_path: Path):
    from include.airflow_glue.landing_trigger import LandingFolderTrigger

    return LandingFolderTrigger(
        str(tmp_path / "landing"), str(tmp_path / "state" / "seen.json"), poll_interval=0.01
    )


def test_a_landed_file_is_announced_once_and_left_in_place(tmp_path: Path):
    landing = tmp_path / "landing"
    landing.mkdir()

    async def scenario():
        first = folder_trigger(tmp_path).run()
        (landing / "task_3.csv").write_bytes(b"f0,label\n1,3\n")
        (landing / ".task_4.csv.tmp").write_bytes(b"half written")  # a writer's temp file: never announced
        event = (await next_event(first)).payload
        # the same content again (another name) is no news; the next event is the new content
        (landing / "a_copy.csv").write_bytes(b"f0,label\n1,3\n")
        (landing / "task_4.csv").write_bytes(b"f0,label\n2,4\n")
        second = (await next_event(first)).payload
        await first.aclose()
        # a restarted triggerer (a new trigger on the same state) announces only what is new since
        restarted = folder_trigger(tmp_path).run()
        (landing / "task_5.csv").write_bytes(b"f0,label\n3,5\n")
        third = (await next_event(restarted)).payload
        await restarted.aclose()
        return event, second, third

    event, second, third = asyncio.run(scenario())
    assert (event["source"], event["name"], event["size"]) == ("local", "task_3.csv", 13)
    assert second["name"] == "task_4.csv" and third["name"] == "task_5.csv"
    assert sorted(p.name for p in landing.iterdir()) == [
        ".task_4.csv.tmp", "a_copy.csv", "task_3.csv", "task_4.csv", "task_5.csv",
    ]  # fmt: skip
    assert (landing / "task_3.csv").read_bytes() == b"f0,label\n1,3\n"  # bytes untouched


def test_a_file_still_being_written_waits_for_a_quiet_scan(tmp_path: Path):
    from include.ops.landing_watch import FolderWatch

    landing = tmp_path / "landing"
    landing.mkdir()
    watch = FolderWatch(landing, tmp_path / "seen.json")
    (landing / "task_3.csv").write_bytes(b"f0,label\n")
    assert watch.scan() == []  # first sight
    (landing / "task_3.csv").write_bytes(b"f0,label\n1,3\n")  # grew since
    assert watch.scan() == []
    assert [f.name for f in watch.scan()] == ["task_3.csv"]  # unchanged for one scan: announced
    assert watch.scan() == []
    (landing / "link.csv").symlink_to(
        landing / "task_3.csv"
    )  # links are the poll's business (rejected there)
    assert watch.scan() == [] and watch.scan() == []


def test_s3_records_reads_created_objects_only():
    from include.ops.landing_watch import s3_records

    body = {"Records": [
        {"eventName": "ObjectCreated:Put", "eventTime": "t",
         "s3": {"bucket": {"name": "b"}, "object": {"key": "landing/task+3.csv", "size": 5, "eTag": "e"}}},
        {"eventName": "ObjectRemoved:Delete", "s3": {"bucket": {"name": "b"}, "object": {"key": "x"}}},
    ]}  # fmt: skip
    assert s3_records(json.dumps(body)) == [
        {"bucket": "b", "key": "landing/task 3.csv", "size": 5, "etag": "e", "event_time": "t"}
    ]
    assert s3_records(json.dumps({"Event": "s3:TestEvent"})) == [] and s3_records("not json") == []


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A moto server (S3 + SQS over HTTP) on a free local port for this module."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def queue_depth(sqs, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


@pytest.mark.integration
def test_s3_event_notifications_reach_sqs_and_the_queue_trigger(moto_endpoint: str, monkeypatch):
    import boto3

    from include.airflow_glue.landing_trigger import LandingQueueTrigger

    creds = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, **creds)
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, **creds)
    s3.create_bucket(Bucket="landing-events")
    url = sqs.create_queue(QueueName="landing-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket="landing-events",
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    sqs.purge_queue(QueueUrl=url)  # drop the s3:TestEvent the configuration sends
    s3.put_object(Bucket="landing-events", Key="landing/task_3.csv", Body=b"f0,label\n1,3\n")
    assert queue_depth(sqs, url) == 1  # moto delivers at once (and would swallow a delivery error)

    conn = {"conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": moto_endpoint, "region_name": "us-east-1"}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_S3", json.dumps(conn))
    trigger = LandingQueueTrigger(queue_url=url, aws_conn_id="s3", wait_time_seconds=1)

    async def scenario():
        agen = trigger.run()
        first = (await next_event(agen)).payload
        s3.put_object(Bucket="landing-events", Key="landing/task_4.csv", Body=b"f0,label\n2,4\n")
        second = (await next_event(agen)).payload  # the first message is deleted before the next receive
        depth = queue_depth(sqs, url)
        await agen.aclose()
        return first, second, depth

    first, second, depth = asyncio.run(scenario())
    assert (first["source"], first["bucket"], first["key"], first["size"]) == (
        "s3", "landing-events", "landing/task_3.csv", 13,
    )  # fmt: skip
    assert second["key"] == "landing/task_4.csv" and depth == 1  # only the second is still in flight
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="landing-events")["Contents"]] == [
        "landing/task_3.csv", "landing/task_4.csv",
    ]  # fmt: skip


@pytest.mark.parametrize("queue", [None, "http://127.0.0.1:1/000000000000/landing"], ids=["folder", "sqs"])
def test_data_validation_runs_on_the_watcher_or_the_poll(ct_env: Path, monkeypatch, queue):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import AssetOrTimeSchedule

    from include.airflow_glue.landing_trigger import LandingFolderTrigger, LandingQueueTrigger
    from tests.paths import ROOT

    if queue:
        monkeypatch.setenv("CT_LANDING_SQS_QUEUE_URL", queue)
    bag = DagBag(dag_folder=str(ROOT / "dags" / "data_validation.py"))
    assert not bag.import_errors
    timetable = bag.dags["data_validation"].timetable
    assert isinstance(timetable, AssetOrTimeSchedule)
    assert timetable.timetable.expression == "*/10 * * * *"  # the poll stays as the fallback
    [asset] = timetable.asset_condition.objects
    [watcher] = asset.watchers
    assert asset.name == "landed_task_file" and watcher.name == "landing_watcher"
    if queue:
        assert isinstance(watcher.trigger, LandingQueueTrigger) and watcher.trigger.queue_url == queue
    else:
        assert isinstance(watcher.trigger, LandingFolderTrigger)
        assert watcher.trigger.directory == str(ct_env / "landing")
        assert watcher.trigger.seen_path == str(ct_env / "state" / "landing_seen.json")


def test_without_the_watcher_data_validation_runs_on_the_poll_alone(ct_env: Path, monkeypatch):
    """``CT_LANDING_WATCH=false`` (the e2e bench's poll-only comparison): the cron of CT_VALIDATION_POLL_CRON only."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    from tests.paths import ROOT

    monkeypatch.setenv("CT_LANDING_WATCH", "false")
    monkeypatch.setenv("CT_VALIDATION_POLL_CRON", "* * * * *")
    bag = DagBag(dag_folder=str(ROOT / "dags" / "data_validation.py"))
    assert not bag.import_errors
    timetable = bag.dags["data_validation"].timetable
    assert not isinstance(timetable, AssetOrTimeSchedule)
    assert isinstance(timetable, CronTriggerTimetable) and timetable.expression == "* * * * *"
