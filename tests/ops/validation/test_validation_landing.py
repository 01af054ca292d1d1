"""The landing-zone seam: ``S3Landing`` on an injected client (no Airflow in the ops library), the S3 URI
parser, and the glue that picks the zone from the ``s3`` connection."""

from __future__ import annotations

import json

import pytest


class FakeS3:
    """An in-memory stand-in with the S3Hook calls S3Landing makes."""

    def __init__(self, objects: dict[tuple[str, str], bytes], corrupt_copies: bool = False) -> None:
        self.objects = dict(objects)
        self.corrupt_copies = corrupt_copies

    def check_for_key(self, key, bucket_name=None):
        return (bucket_name, key) in self.objects

    def get_key(self, key, bucket_name=None):
        data = self.objects[(bucket_name, key)]

        class _Object:
            def download_fileobj(self, f):
                f.write(data)

        return _Object()

    def iter_file_metadata(self, prefix, bucket_name=None):
        for (bucket, key), data in sorted(self.objects.items()):
            if bucket == bucket_name and key.startswith(prefix):
                yield {"Key": key, "Size": len(data)}

    def head_object(self, key, bucket_name=None):
        data = self.objects.get((bucket_name, key))
        return None if data is None else {"ContentLength": len(data), "ETag": str(hash(data))}

    def copy_object(self, source_bucket_key, dest_bucket_key, source_bucket_name, dest_bucket_name):
        data = self.objects[(source_bucket_name, source_bucket_key)]
        self.objects[(dest_bucket_name, dest_bucket_key)] = data + b"!" if self.corrupt_copies else data

    def delete_objects(self, bucket, keys):
        for key in keys:
            del self.objects[(bucket, key)]

    def load_file(self, filename, key, bucket_name=None, replace=False):
        with open(filename, "rb") as f:
            self.objects[(bucket_name, key)] = f.read()


def test_parse_s3_uri():
    from include.ops.validation.landing import LandingError, parse_s3_uri

    assert parse_s3_uri("s3://bucket/landing/") == ("bucket", "landing/")
    assert parse_s3_uri("s3://bucket") == ("bucket", "")
    assert parse_s3_uri("s3://bucket/a/b") == ("bucket", "a/b")
    for bad in ("/local/path", "https://bucket/x", "s3:///x"):
        with pytest.raises(LandingError, match="not an s3://bucket/prefix/"):
            parse_s3_uri(bad)


def test_s3_landing_on_an_injected_client(tmp_path):
    from include.ops.validation.landing import LandedFile, LandingError, S3Landing

    with pytest.raises(LandingError, match="must not lie inside the landing prefix"):
        S3Landing(FakeS3({}), "s3://b/landing/", "s3://b/landing/quarantine/")
    client = FakeS3(
        {
            ("b", "landing/manifest.json"): b"{}",
            ("b", "landing/task_0.csv"): b"a,b\n",
            ("b", "landing/.hidden.csv"): b"",
            ("b", "landing/upload.tmp"): b"",
            ("b", "landing/folder/"): b"",
            ("b", "landing/nested/task_1.csv"): b"c\n",
            ("b", "elsewhere/task_2.csv"): b"",
        }
    )
    zone = S3Landing(client, "s3://b/landing", "s3://b/quarantine/")
    assert zone.describe() == "s3://b/landing/" and zone.kind == "s3"
    assert [(i.name, i.location, i.size) for i in zone.list_files()] == [
        ("nested/task_1.csv", "s3://b/landing/nested/task_1.csv", 2),
        ("task_0.csv", "s3://b/landing/task_0.csv", 4),
    ]
    assert zone.fetch_manifest(tmp_path).read_bytes() == b"{}"
    local, staged = zone.fetch(LandedFile("task_0.csv", "s3://b/landing/task_0.csv", 4), tmp_path)
    assert staged and local.read_bytes() == b"a,b\n" and local.parent == tmp_path

    moved = zone.quarantine_source(LandedFile("task_0.csv", "s3://b/landing/task_0.csv", 4), "q1")
    assert moved == "s3://b/quarantine/q1/task_0.csv"
    assert ("b", "landing/task_0.csv") not in client.objects
    assert client.objects[("b", "quarantine/q1/task_0.csv")] == b"a,b\n"

    src = tmp_path / "fixed.csv"
    src.write_bytes(b"fixed\n")
    assert zone.land(src, "task_0.csv") == "s3://b/landing/task_0.csv"
    assert client.objects[("b", "landing/task_0.csv")] == b"fixed\n"

    client.corrupt_copies = True
    with pytest.raises(LandingError, match="differs; source kept"):
        zone.quarantine_source(LandedFile("task_0.csv", "s3://b/landing/task_0.csv", 6), "q2")
    assert client.objects[("b", "landing/task_0.csv")] == b"fixed\n"

    del client.objects[("b", "landing/manifest.json")]
    assert zone.fetch_manifest(tmp_path / "none") is None


def test_glue_picks_the_zone_from_the_connection(val_env, monkeypatch):
    from include.airflow_glue.landing_s3 import get_landing, s3_configured
    from include.ops.validation.landing import LocalLanding, S3Landing

    monkeypatch.setenv("CT_S3_CONN_ID", "landing_s3_test")
    monkeypatch.delenv("AIRFLOW_CONN_LANDING_S3_TEST", raising=False)
    assert s3_configured("landing_s3_test") is False
    local = get_landing()
    assert isinstance(local, LocalLanding) and local.folder == val_env.landing_dir

    monkeypatch.setenv("AIRFLOW_CONN_LANDING_S3_TEST", json.dumps({"conn_type": "aws"}))
    monkeypatch.setenv("CT_LANDING_S3_URI", "s3://bucket-a/in/")
    monkeypatch.setenv("CT_QUARANTINE_S3_URI", "s3://bucket-b/out/")
    zone = get_landing()
    assert isinstance(zone, S3Landing)
    assert (zone.bucket, zone.prefix, zone.q_bucket, zone.q_prefix) == ("bucket-a", "in/", "bucket-b", "out/")


def test_ops_cli_refuses_a_zone_only_the_glue_can_reach(val_env, monkeypatch, capsys):
    from include.ops.validation.cli import main

    monkeypatch.setenv("AIRFLOW_CONN_S3", json.dumps({"conn_type": "aws"}))
    assert main(["validate"]) == 2
    assert "include.airflow_glue.landing_s3" in capsys.readouterr().err


def test_land_task_stream_refuses_a_missing_task_file(tmp_path, split_digits):
    from include.ops.validation.landing import land_task_stream

    manifest = json.loads(split_digits.read_text())
    manifest["tasks"][1]["file"] = "../task_1.csv"
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    (tmp_path / "task_0.csv").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="missing or not a plain name"):
        land_task_stream(path, tmp_path / "landing")
